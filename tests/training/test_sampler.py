"""The episode sampler."""

from __future__ import annotations


def test_a_log_without_timestamps_gives_each_training_episode_its_own_support():
    """No time order to respect: the sampler reshuffles a user's rows for every episode (a
    timed log keeps the first rows in time as the support)."""
    import numpy as np

    from recmeta.tasks import Sequences
    from recmeta.training.sampler import EpisodeSampler, Source
    from tests.learners.conftest import synth_data

    data = synth_data(users=40, items=60, seed=2)
    seqs = {"timed": Sequences.from_data(data)}
    data.times.data[:] = 0
    seqs["untimed"] = Sequences.from_data(data)
    assert seqs["timed"].timed and not seqs["untimed"].timed
    supports = {}
    for name, seq in seqs.items():
        sampler = EpisodeSampler(
            [Source.of(seq, np.array([3]), 1)], data.n_items, 1.0, 5, "uniform", np.random.default_rng(0)
        )
        drawn = []
        for _ in range(30):  # an epoch of one user is one episode
            sampler.start_epoch()
            drawn.append(sampler.next_batches()[0])
        assert all(b.users[0] == 3 for b in drawn)
        supports[name] = {b.support_items[0][0] for b in drawn if b.support_mask[0].any()}
        for b in drawn:  # support and query are the user's own rows, apart
            rows = set(seq.items[seq.indptr[3] : seq.indptr[4]])
            support = set(b.support_items[0][b.support_mask[0]])
            assert support <= rows and not support & set(np.flatnonzero(b.query_pos[0]))
    assert len(supports["timed"]) == 1 and len(supports["untimed"]) > 3
