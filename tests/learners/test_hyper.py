"""Hyper-parameters are checked where they enter a model: a value outside its type, range or
choices is a ValueError naming it, whatever path it came by (config file, Python API,
checkpoint config)."""

from __future__ import annotations

import math

import pytest

from recmeta.learners import REGISTRY, create

BAD = [
    ("maml", "dim", 0),
    ("maml", "dim", 10**8),
    ("maml", "lr", math.nan),
    ("maml", "lr", "fast"),
    ("maml", "epochs", 2.5),
    ("maml", "inner_steps", 10**7),
    ("maml", "first_order", 1),
    ("maml", "inner_grad", "numeric"),
    ("protonet", "pull", -1.0),
    ("protonet", "replay_share", 1.5),
    ("metalstm", "hidden", -4),
    ("metalstm", "val_shots", [1, -1]),
    ("metalstm", "item_init", "zeros"),
    ("metalstm", "max_time", -1),
    ("metalstm", "threshold", math.nan),
    ("als", "factors", 0),
    ("als", "regularization", 0.0),
    ("als", "alpha", math.inf),
    ("als", "iterations", True),
    ("itemknn", "neighbours", -1),
    ("ease", "regularization", -5),
    ("ease", "max_items", 0),
    ("episodic", "tune_items", 1.5),
    ("popular", "threshold", math.inf),
]


@pytest.mark.parametrize(("kind", "name", "value"), BAD, ids=[f"{k}-{n}-{v}" for k, n, v in BAD])
def test_a_value_outside_its_range_names_the_parameter(kind, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        create(kind, **{name: value})


@pytest.mark.parametrize("kind", [k for k in REGISTRY if k != "ensemble"])
def test_defaults_none_and_an_implicit_threshold_pass(kind):
    """What `train` and a checkpoint pass: the defaults, None where None means tuned or no
    limit, and -inf as the threshold of an implicit log (every row positive)."""
    create(kind)
    create(kind, threshold=None)
    create(kind, threshold=-math.inf)
    if kind in ("maml", "protonet", "metalstm"):
        create(kind, max_time=None, dim=4096, epochs=1, replay_share=0.0)
