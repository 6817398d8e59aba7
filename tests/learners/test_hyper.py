"""Hyper-parameters are checked where they enter a model: a value outside its type, range or
choices is a ValueError naming it, whatever path it came by (config file, Python API,
checkpoint config)."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _names() -> list[tuple[str, str]]:
    from recmeta.learners.hyper import defaults_of
    from recmeta.learners.meta import DEFAULTS

    out = []
    for kind, cls in REGISTRY.items():
        if kind == "ensemble":
            continue
        names = (
            {**DEFAULTS, **cls.defaults}
            if kind in ("maml", "protonet", "metalstm")
            else defaults_of(cls.__init__)
        )
        out += [(kind, n) for n in names if n not in ("device",)]
    return out


toml_value = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-5, 50), max_size=4),
)


@settings(max_examples=int(os.environ.get("RECMETA_FUZZ_EXAMPLES", "25")) * 4, deadline=None)
@given(pick=st.sampled_from(_names()), value=toml_value)
def test_any_value_of_any_parameter_is_taken_or_refused_with_a_value_error(pick, value):
    """What a --config file can hold, for every parameter of every model: the model is made,
    or a ValueError names the parameter (read_config turns it into a one-line error)."""
    kind, name = pick
    try:
        create(kind, **{name: value})
    except ValueError as exc:
        assert name in str(exc) or "members" in str(exc)
