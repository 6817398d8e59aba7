"""Validation scoring: chunked, and over positive pairs, it gives what one dense pass gives."""

from __future__ import annotations

import numpy as np

from recmeta.learners import base, create
from recmeta.tasks import Sequences, make_batch
from recmeta.training import Trainer
from tests.learners.conftest import split_views


def test_chunked_validation_over_pairs_equals_one_dense_pass(small, monkeypatch):
    _, train, val = split_views(small)
    model = Trainer(create("protonet", dim=8, epochs=1, device="cpu"), seed=0).fit(train, val)
    seq = Sequences.from_data(small)
    users = np.flatnonzero(small.counts_per_user() > 5)
    dense = make_batch(seq, users, 3, small.n_items, 4.0)
    pairs = make_batch(seq, users, 3, small.n_items, 4.0, dense=False)
    whole = base.validation_ndcg(model, dense)
    monkeypatch.setattr(base, "VAL_CHUNK", 7)
    assert base.validation_ndcg(model, pairs) == whole
    assert base.validation_ndcg(model, dense) == whole
    some = np.array([5, 0, 9, 3])
    assert np.array_equal(pairs.rows(some).positives(small.n_items), dense.rows(some).query_pos > 0)
