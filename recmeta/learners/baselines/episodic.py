"""The episodic weights: item-item weights fitted in closed form on support -> query episodes."""

from __future__ import annotations

import numpy as np

from recmeta.errors import is_whole
from recmeta.learners.base import size_batches, validation_ndcg
from recmeta.learners.baselines.base import log
from recmeta.learners.baselines.ease import EASE, ease_weights, gram_matrix
from recmeta.learners.hyper import check_hyper

EPISODIC_SIZES = (1, 3, 5, 10, 20)  # support sizes with weights of their own
EPISODIC_START = (10**1.5, 10**2.5)  # query rows and penalty the tuning starts from
EPISODIC_STEP = 10**0.5  # the tuning's step, a factor, up or down
EPISODIC_MAX_FITS = 24  # settings the tuning tries at most
EPISODIC_USERS = 1000  # validation users scored per support size at most (a seeded draw beyond)


class Episodic(EASE):
    """Item-item weights meta-trained on support -> query episodes, in closed form: the B
    that best predicts each training user's query rows from their support rows (a user
    scored as the sum of their support items' rows of B, as EASE scores), in expectation
    over episodes whose support holds each row with probability K / (K + `query_rows`). A
    user with K rows is scored with the weights of the largest size of `sizes` at or below
    K, each fitted for its K (few rows: the weights of a small support; more: of a larger
    one). EASE rebuilds every row from all the others; these weights learn what a few rows
    say of the rest, as the protocol asks. The closest published model is Steck's
    emphasised denoising linear autoencoder (EDLAE, NeurIPS 2020), whose loss also counts
    the rows kept. `query_rows` and `regularization`, unless given, are picked on the
    validation users (their mean ndcg@10 over the sizes) with the weights fitted over the
    `tune_items` most liked items, then fitted over `max_items`, as EASE's penalty is."""

    kind = "episodic"

    def __init__(
        self,
        regularization: float | None = None,
        query_rows: float | None = None,
        sizes: tuple[int, ...] | list[int] = EPISODIC_SIZES,
        max_items: int = 10_000,
        neighbours: int = 100,
        tune_items: int = 2_500,
        threshold: float | None = None,
    ) -> None:
        check_hyper({"query_rows": query_rows}, {"query_rows": None})
        ok = isinstance(sizes, list | tuple) and all(is_whole(k) and k >= 1 for k in sizes)
        if not ok or not sizes or list(sizes) != sorted(set(sizes)):
            raise ValueError(f"sizes must be increasing whole numbers, 1 or more, not {sizes!r}")
        super().__init__(regularization, max_items, neighbours, tune_items, threshold)
        self.params.update(query_rows=query_rows, sizes=list(sizes))

    def _bands(self) -> int:
        """One weight matrix per support size."""
        return len(self.params["sizes"])

    def fit(self, train, validation=None, *, progress=None, seed=0):
        import scipy.sparse as sp

        keep, head, x = self._items(train)
        gram = gram_matrix(x)
        p = self.params
        untuned = p["regularization"] is None or p["query_rows"] is None
        if untuned and validation is not None and validation.values.nnz:
            self._pick_episodes(validation, gram[np.ix_(head, head)], keep[head], seed, progress)
        start_rows, start_penalty = EPISODIC_START  # what an untuned fit takes
        p["regularization"] = float(p["regularization"] or start_penalty)
        p["query_rows"] = float(start_rows if p["query_rows"] is None else p["query_rows"])
        bands = []
        for i, k in enumerate(p["sizes"]):
            # X'X becomes the last band's B in place (rebuilt only for the general inverse)
            rebuild = (lambda: gram_matrix(x)) if i == len(p["sizes"]) - 1 else None
            b = ease_weights(gram, p["regularization"], rebuild, p["query_rows"] / k) if len(keep) else gram
            bands.append(self._keep_top(b, keep, train.n_items).similarity_)
            del b
        del gram
        self.similarity_ = sp.vstack(bands, format="csr")
        return self

    def _pick_episodes(self, validation, gram, keep, seed: int, progress) -> None:
        """The query rows and penalty (those not given) whose weights rank the validation
        users best, mean ndcg@10 over `sizes` (each size scored with its own weights)."""
        p, n_items = self.params, len(self.counts_)
        batches = size_batches(validation, p["sizes"], p["threshold"], seed, EPISODIC_USERS)
        names = ("query_rows", "regularization")
        free = [i for i, name in enumerate(names) if p[name] is None]
        seen: dict[tuple[int, int], float] = {}

        def setting(at: tuple[int, int]) -> tuple[float, float]:
            """Grid steps from the start -> (query rows, penalty); a given one stays."""
            return tuple(
                EPISODIC_START[i] * EPISODIC_STEP ** at[i] if i in free else float(p[n])
                for i, n in enumerate(names)
            )

        def ndcg(at: tuple[int, int]) -> float:
            if at not in seen:
                r, lam = setting(at)
                scores = []
                for k, batch in batches.items():
                    b = ease_weights(gram, lam, query_share=r / k) if len(keep) else gram
                    self._keep_top(b, keep, n_items)
                    scores.append(validation_ndcg(self, batch))
                seen[at] = float(np.mean(scores)) if scores else 0.0
                if progress:
                    progress({"config": setting(at), "val_ndcg@10": seen[at]})
            return seen[at]

        # a climb on a x3.16 grid: each step moves a free setting to the better of its two
        # neighbours while that is better, until nothing moves or the fits run out
        best, moved = (0, 0), True
        while moved and len(seen) < EPISODIC_MAX_FITS:
            moved = False
            for i in free:
                for d in (1, -1):
                    step = tuple(v + d if j == i else v for j, v in enumerate(best))
                    if ndcg(step) > ndcg(best):
                        best, moved = step, True
        p["query_rows"], p["regularization"] = setting(best)
        log.info("%s: picked %s (val ndcg@10 %.4f)", self.kind, setting(best), seen[best])

    def score(self, batch):
        self._check_fitted("similarity_")
        n = len(self.counts_)
        if self.similarity_.shape[0] == n:  # one band (scoring while tuning)
            return super().score(batch)
        rows = batch.support_mask.sum(1)
        band = np.maximum(np.searchsorted(self.params["sizes"], rows, side="right") - 1, 0)
        liked = self._liked_support(batch)
        out = np.empty((len(rows), n), dtype=np.float32)
        for i in np.unique(band):
            users = np.flatnonzero(band == i)
            out[users] = (liked[users] @ self.similarity_[i * n : (i + 1) * n]).toarray()
        return out + self._tie_break()
