"""Small fitted data for learner tests: a synthetic log with planted taste groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recmeta import snapshot
from recmeta.datasets import SynthConfig, synth
from recmeta.snapshot import Interactions


def synth_data(users: int = 240, items: int = 80, seed: int = 1, implicit: bool = False) -> Interactions:
    log, items_df, users_df = synth(
        SynthConfig(
            users=users, items=items, seed=seed, implicit=implicit, mean_interactions=30, min_interactions=8
        )
    )
    frame = pd.DataFrame(
        {
            "user_id": log.user,
            "item_id": log["item"],
            "value": log.value.astype(float),
            "timestamp": log.timestamp,
        }
    )
    users_tab = pd.DataFrame(
        {
            "id": users_df.user,
            "external_id": users_df.user.astype(str),
            "features": [
                {"age": int(a), "segment": s} for a, s in zip(users_df.age, users_df.segment, strict=True)
            ],
        }
    )
    items_tab = pd.DataFrame(
        {
            "id": items_df["item"],
            "external_id": items_df["item"].astype(str),
            "title": items_df.title,
            "genres": items_df.genres,
            "year": items_df.year,
            "features": [None] * len(items_df),
        }
    )
    return snapshot.from_frames(frame, users_tab, items_tab, implicit=implicit)


@pytest.fixture(scope="session")
def small() -> Interactions:
    return synth_data()


@pytest.fixture(scope="session")
def small_implicit() -> Interactions:
    return synth_data(users=150, items=60, seed=2, implicit=True)


def split_views(data: Interactions, seed: int = 0):
    from recmeta.tasks import split_users

    split = split_users(data, seed=seed, min_interactions=10, fractions=(0.15, 0.15))
    return split, snapshot.restrict(data, split.train), snapshot.restrict(data, split.validation)


def rng_users(data: Interactions, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.flatnonzero(data.counts_per_user() >= 12), n, replace=False)
