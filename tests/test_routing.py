"""The router that `recmeta train` stores: cold model, warm model and threshold from validation."""

from __future__ import annotations

from recmeta.routing import routing, served_by


def test_a_baseline_that_wins_from_some_history_length_on_serves_from_there():
    route = routing(
        {
            "maml": {"K0": 0.40, "K1": 0.40, "K5": 0.39, "K10": 0.38, "K20": 0.37, "K50": 0.36, "K100": 0.33},
            "protonet": {
                "K0": 0.41,
                "K1": 0.41,
                "K5": 0.38,
                "K10": 0.36,
                "K20": 0.34,
                "K50": 0.30,
                "K100": 0.28,
            },
            "itemknn": {"K1": 0.30, "K5": 0.34, "K10": 0.37, "K20": 0.38, "K50": 0.40, "K100": 0.41},
            "als": {"K1": 0.35, "K5": 0.36, "K10": 0.36, "K20": 0.36, "K50": 0.37, "K100": 0.36},
        }
    )
    # maml has the best mean up to 20 rows; itemknn the best from 10 rows up, and it beats
    # maml at 20, 50 and 100 rows (not at 10)
    assert (route["cold"], route["warm"], route["threshold"]) == ("maml", "itemknn", 20)
    assert [served_by(route, n) for n in (0, 19, 20, 500)] == ["maml", "maml", "itemknn", "itemknn"]


def test_a_win_that_does_not_last_does_not_route():
    route = routing(
        {
            "maml": {"K1": 0.40, "K5": 0.40, "K10": 0.38, "K20": 0.37, "K50": 0.42},
            "als": {"K1": 0.30, "K5": 0.36, "K10": 0.39, "K20": 0.38, "K50": 0.35},
        }
    )
    assert (route["cold"], route["warm"], route["threshold"]) == ("maml", "maml", None)
    assert served_by(route, 1000) == "maml"


def test_sizes_without_enough_validation_users_are_ignored():
    # no K100 figure for the cold model (too few users had that many rows): the threshold
    # comes from the sizes both were validated on
    route = routing(
        {
            "protonet": {"K1": 0.40, "K10": 0.35, "K50": 0.30},
            "itemknn": {"K1": 0.20, "K10": 0.36, "K50": 0.40, "K100": 0.5},
        }
    )
    assert (route["warm"], route["threshold"]) == ("itemknn", 10)


def test_every_baseline_is_weighed_not_only_the_best_on_average():
    # als is the best baseline on average from 10 rows but never beats the ensemble for good;
    # itemknn does from 50 rows: it serves from there
    route = routing(
        {
            "ensemble": {"K1": 0.40, "K10": 0.39, "K20": 0.38, "K50": 0.501},
            "als": {"K1": 0.39, "K10": 0.385, "K20": 0.39, "K50": 0.45},
            "itemknn": {"K1": 0.30, "K10": 0.33, "K20": 0.34, "K50": 0.511},
        }
    )
    assert (route["cold"], route["warm"], route["threshold"]) == ("ensemble", "itemknn", 50)
