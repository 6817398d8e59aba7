"""The router that `recmeta train` stores: cold model, warm model and threshold from validation."""

from __future__ import annotations

from pathlib import Path

from recmeta.train import Trained, routing


def trained(kind: str, **ndcg: float) -> Trained:
    return Trained(kind=kind, model=None, path=Path(), seconds=0.0, validation=dict(ndcg))


def test_a_baseline_that_wins_from_some_history_length_on_serves_from_there():
    route = routing(
        [
            trained("maml", K0=0.40, K1=0.40, K5=0.39, K10=0.38, K20=0.37, K50=0.36, K100=0.33),
            trained("protonet", K0=0.41, K1=0.41, K5=0.38, K10=0.36, K20=0.34, K50=0.30, K100=0.28),
            trained("itemknn", K1=0.30, K5=0.34, K10=0.37, K20=0.38, K50=0.40, K100=0.41),
            trained("als", K1=0.35, K5=0.36, K10=0.36, K20=0.36, K50=0.37, K100=0.36),
        ]
    )
    # maml has the best mean up to 20 rows; itemknn the best from 10 rows up, and it beats
    # maml at 20, 50 and 100 rows (not at 10)
    assert (route["cold"], route["warm"], route["threshold"]) == ("maml", "itemknn", 20)


def test_a_win_that_does_not_last_does_not_route():
    route = routing(
        [
            trained("maml", K1=0.40, K5=0.40, K10=0.38, K20=0.37, K50=0.42),
            trained("als", K1=0.30, K5=0.36, K10=0.39, K20=0.38, K50=0.35),
        ]
    )
    assert (route["cold"], route["warm"], route["threshold"]) == ("maml", "maml", None)


def test_sizes_without_enough_validation_users_are_ignored():
    # no K100 figure for the cold model (too few users had that many rows): the threshold
    # comes from the sizes both were validated on
    route = routing(
        [
            trained("protonet", K1=0.40, K10=0.35, K50=0.30),
            trained("itemknn", K1=0.20, K10=0.36, K50=0.40, K100=0.5),
        ]
    )
    assert (route["warm"], route["threshold"]) == ("itemknn", 10)
