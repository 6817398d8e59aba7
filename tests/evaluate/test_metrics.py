"""Each metric against hand-computed cases."""

import math

import numpy as np

from recmeta.metrics import graded_ndcg, ranking_metrics, rating_errors, top_n


def rel(n_items, *items):
    r = np.zeros((1, n_items), bool)
    r[0, list(items)] = True
    return r


def test_top_n_orders_by_score_then_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -np.inf]])
    assert top_n(scores, 3).tolist() == [[1, 3, 2]]


def test_top_n_equals_a_full_sort_with_ties_infinities_and_nan():
    """The fast path (torch's top-k) and its fallback give the full sort's order: score
    descending, lower index first on ties, NaN after everything."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        scores = rng.integers(0, 6, (200, 50)).astype(dtype)  # ties everywhere
        scores[:100] += rng.random((100, 50)).astype(dtype)  # no ties in half of the rows
        scores[5, :] = -np.inf
        scores[6, 3] = np.nan
        scores[7, :45] = np.nan
        for n in (1, 10, 50):
            key = np.where(np.isnan(scores), np.inf, -scores)
            want = np.lexsort((np.broadcast_to(np.arange(50), scores.shape), key), axis=1)[:, :n]
            assert np.array_equal(top_n(scores, n), want), (dtype, n)


def test_binary_ndcg_recall_hr_mrr():
    top = np.array([[4, 2, 7, 1, 0]])
    m = ranking_metrics(top, rel(10, 2, 1, 9), n=5)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert math.isclose(m["ndcg@5"][0], dcg / idcg)
    assert math.isclose(m["recall@5"][0], 2 / 3)
    assert m["hr@5"][0] == 1.0
    assert math.isclose(m["mrr@5"][0], 1 / 2)


def test_recall_is_truncated_at_n():
    top = np.array([[0, 1]])
    m = ranking_metrics(top, rel(10, 0, 1, 2, 3, 4), n=2)
    assert m["recall@2"][0] == 1.0  # 2 hits / min(2, 5)
    assert math.isclose(m["ndcg@2"][0], 1.0)


def test_no_hit_scores_zero():
    m = ranking_metrics(np.array([[5, 6]]), rel(10, 1), n=2)
    assert m["ndcg@2"][0] == 0 and m["hr@2"][0] == 0 and m["mrr@2"][0] == 0


def test_graded_qndcg_at_3():
    pred = np.array([[3.0, 5.0, 1.0, 4.0]])
    truth = np.array([[5.0, 3.0, 4.0, 1.0]])
    mask = np.ones_like(pred, bool)
    # ranked by pred: items 1 (r=3), 3 (r=1), 0 (r=5)
    dcg = (2**3 - 1) / 1 + (2**1 - 1) / math.log2(3) + (2**5 - 1) / 2
    idcg = (2**5 - 1) + (2**4 - 1) / math.log2(3) + (2**3 - 1) / 2
    assert math.isclose(graded_ndcg(pred, truth, mask, 3)[0], dcg / idcg)


def test_graded_qndcg_ignores_padding():
    pred = np.array([[1.0, 9.0]])
    truth = np.array([[4.0, 0.0]])
    mask = np.array([[True, False]])
    assert graded_ndcg(pred, truth, mask, 3)[0] == 1.0


def test_mae_rmse_over_masked_rows():
    pred = np.array([[4.0, 2.0, 9.0]])
    truth = np.array([[5.0, 4.0, 0.0]])
    mask = np.array([[True, True, False]])
    e = rating_errors(pred, truth, mask)
    assert math.isclose(e["mae"][0], 1.5) and math.isclose(e["rmse"][0], math.sqrt(2.5))
