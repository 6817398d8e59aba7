"""The router that `recmeta train` stores: for each support size validated, the model best
around it serves users with that many rows up to the next size."""

from __future__ import annotations

import numpy as np
import pytest

from recmeta.routing import band_of, describe_bands, paired_noise, reference_model, routing, served_by


def test_the_best_model_around_each_validated_size_serves_from_there():
    route = routing(
        {
            "maml": {"K0": 0.40, "K1": 0.40, "K5": 0.39, "K10": 0.38, "K20": 0.37, "K50": 0.36, "K100": 0.33},
            "protonet": {"K0": 0.41, "K1": 0.41, "K5": 0.38, "K10": 0.36, "K20": 0.34, "K50": 0.30},
            "itemknn": {"K1": 0.30, "K5": 0.34, "K10": 0.37, "K20": 0.38, "K50": 0.40, "K100": 0.41},
            "als": {"K1": 0.35, "K5": 0.36, "K10": 0.385, "K20": 0.36, "K50": 0.37, "K100": 0.36},
        }
    )
    # K0 alone: protonet; from 1 row maml has the best mean over each size and its
    # neighbours (tied with protonet at 1 and 5 rows: the first name) until 20 rows, where
    # item kNN's 10-20-50 mean wins; als's best figure at 10 rows alone is a blip
    assert route["bands"] == [[0, "protonet"], [1, "maml"], [20, "itemknn"]]
    assert (route["cold"], route["warm"], route["threshold"]) == ("protonet", "itemknn", 20)
    served = [served_by(route, n) for n in (0, 1, 19, 20, 500)]
    assert served == ["protonet", "maml", "maml", "itemknn", "itemknn"]
    assert band_of(route, 7) == (1, "maml")


def test_a_win_at_one_size_between_losses_does_not_take_a_band():
    route = routing(
        {
            "ensemble": {"K0": 0.42, "K1": 0.41, "K3": 0.41, "K5": 0.41, "K10": 0.40},
            "metalstm": {"K0": 0.41, "K1": 0.39, "K3": 0.42, "K5": 0.38, "K10": 0.37},
        }
    )
    assert route["bands"] == [[0, "ensemble"]]


def test_a_baseline_best_from_one_row_serves_everyone_with_a_row():
    # the Amazon Beauty case: ALS beats every meta-learner at every size it can score; users
    # with no row still go to the best model that needs no support
    route = routing(
        {
            "ensemble": {"K0": 0.026, "K1": 0.090, "K5": 0.083, "K20": 0.063},
            "popular": {"K0": 0.027, "K1": 0.027, "K5": 0.022, "K20": 0.010},
            "als": {"K1": 0.114, "K5": 0.161, "K20": 0.129},
        }
    )
    assert route["bands"] == [[0, "popular"], [1, "als"]]
    assert [served_by(route, n) for n in (0, 1, 100)] == ["popular", "als", "als"]


def test_ties_go_to_a_meta_learner_and_one_band_has_no_threshold():
    route = routing({"maml": {"K1": 0.40, "K5": 0.40}, "als": {"K1": 0.40, "K5": 0.30}})
    assert route["bands"] == [[0, "maml"]] and route["threshold"] is None
    assert served_by(route, 1000) == "maml"


def test_a_router_stored_before_bands_serves_as_it_did():
    old = {"cold": "protonet", "warm": "als", "threshold": 3}
    assert [served_by(old, n) for n in (0, 2, 3, 50)] == ["protonet", "protonet", "als", "als"]
    assert served_by({"cold": "maml", "warm": "maml", "threshold": None}, 10) == "maml"


def test_without_validation_figures_a_meta_learner_serves():
    route = routing({"als": {}, "maml": {}, "popular": {}})
    assert route["bands"] == [[0, "maml"]] and served_by(route, 5) == "maml"
    assert routing({"als": {}})["bands"] == [[0, "als"]]


def test_a_lead_inside_the_noise_leaves_the_band_to_the_ensemble():
    validation = {
        "ensemble": {"K0": 0.42, "K1": 0.41, "K5": 0.40, "K10": 0.39},
        "metalstm": {"K0": 0.41, "K1": 0.40, "K5": 0.41, "K10": 0.40},
        "als": {"K1": 0.30, "K5": 0.35, "K10": 0.50},
    }
    # without noise figures metalstm's window lead from 5 rows takes a band, als's at 10
    assert routing(validation)["bands"] == [[0, "ensemble"], [5, "metalstm"], [10, "als"]]
    noise = {
        # metalstm leads by 0.003 over 1-10 rows, where 2 SE are 2 x 0.01 x sqrt(3) / 3 = 0.012
        "metalstm": {"K0": 0.01, "K1": 0.01, "K5": 0.01, "K10": 0.01},
        "als": {"K1": 0.01, "K5": 0.01, "K10": 0.01},  # 0.03 over 5-10 rows, past 2 SE (0.014)
    }
    route = routing(validation, noise)
    assert route["bands"] == [[0, "ensemble"], [10, "als"]]
    assert route["noise"] == noise


def test_a_band_taken_from_the_ensemble_is_not_handed_back_on_a_lead_inside_the_noise():
    """Amazon Beauty seed 0: the episodic weights took 5 and 10 rows past the noise, and
    20 rows went back to the ensemble because their lead there (0.011 over 10-20 rows) was
    inside it, though the ensemble led nowhere from 3 rows. The incumbent keeps a band
    unless a challenger clears the noise against it."""
    validation = {
        "ensemble": {"K0": 0.027, "K1": 0.159, "K3": 0.171, "K5": 0.181, "K10": 0.168, "K20": 0.143},
        "episodic": {"K1": 0.142, "K3": 0.184, "K5": 0.192, "K10": 0.183, "K20": 0.151},
        "ease": {"K1": 0.135, "K3": 0.174, "K5": 0.186, "K10": 0.179, "K20": 0.143},
    }
    noise = {
        "episodic": {"K1": 0.008, "K3": 0.008, "K5": 0.008, "K10": 0.008, "K20": 0.009},
        "ease": {"K1": 0.008, "K3": 0.008, "K5": 0.008, "K10": 0.007, "K20": 0.008},
    }
    route = routing(validation, noise)
    assert route["bands"] == [[0, "ensemble"], [5, "episodic"]]
    # the ensemble takes a band back only past the noise
    comeback = {**validation, "ensemble": {**validation["ensemble"], "K20": 0.200}}
    assert routing(comeback, noise)["bands"] == [[0, "ensemble"], [5, "episodic"], [20, "ensemble"]]
    # a model other than the ensemble against the incumbent: the noise of their difference
    # is bounded by the sum of each one's against the ensemble: over 10-20 rows 2 SE are
    # 2 x sqrt(0.015^2 + 0.017^2) / 2 = 0.023; a lead of 0.015 keeps the incumbent
    close = {**validation, "ease": {**validation["ease"], "K20": 0.185}}
    assert routing(close, noise)["bands"] == [[0, "ensemble"], [5, "episodic"]]
    far = {**validation, "ease": {**validation["ease"], "K20": 0.210}}
    assert routing(far, noise)["bands"] == [[0, "ensemble"], [5, "episodic"], [20, "ease"]]


def test_paired_noise_is_the_standard_error_of_each_models_difference_from_the_ensemble():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 400)
    per_user = {
        "ensemble": {"K1": base, "K5": base[:50]},
        "maml": {"K1": base + 0.01, "K5": base[:50] + rng.normal(0, 0.1, 50)},
        "als": {"K5": base[:50] - 0.2},
    }
    noise = paired_noise(per_user)
    assert set(noise) == {"maml", "als"}
    assert noise["maml"]["K1"] == pytest.approx(0.0, abs=1e-9)  # the same users' easy and hard cancel
    expected = np.std(per_user["maml"]["K5"] - base[:50], ddof=1) / np.sqrt(50)
    assert noise["maml"]["K5"] == pytest.approx(expected, abs=1e-6)
    assert noise["als"] == {"K5": pytest.approx(0.0, abs=1e-9)}
    assert reference_model(["als", "maml", "protonet"]) == "maml"
    assert paired_noise({"als": {"K1": base}}) == {}
    # the router's reference decides: a run that refitted maml and als alone, with the
    # ensemble's figures from the store, has no paired figures against it
    assert paired_noise({"maml": per_user["maml"], "als": per_user["als"]}, "ensemble") == {}
    assert set(paired_noise(per_user, "maml")) == {"ensemble", "als"}


def test_the_bands_in_words():
    route = {"bands": [[0, "ensemble"], [1, "maml"], [50, "itemknn"]]}
    assert describe_bands(route) == "ensemble from 0 rows, maml from 1 row, itemknn from 50 rows"
    assert (
        describe_bands({"cold": "maml", "warm": "als", "threshold": 3}) == "maml from 0 rows, als from 3 rows"
    )
