"""The fitting time of a run (`train`, and each seed of `evaluate`): the baselines fit first,
and the meta-learners share what they leave."""

from __future__ import annotations

import logging
import math
import time
from numbers import Real

from recmeta.errors import DataError
from recmeta.learners import meta_fits

log = logging.getLogger(__name__)

TRAIN_BUDGET = 330.0  # seconds a run's fits take by default (BENCHMARKS.md, section 7)
SHORT_SHARE = 0.25  # below this share of the budget left for the meta-learners, a warning


def check_max_time(value) -> None:
    """A run's `max_time`: seconds, 0 or more (0 or None: no limit)."""
    number = isinstance(value, Real) and not isinstance(value, bool)
    if value is not None and not (number and 0 <= value <= math.inf):
        raise DataError(f"max_time must be seconds, 0 or more (0 or None: no limit), not {value!r}")


class Budget:
    """`max_time` seconds for fitting every model of a run. Baselines (closed forms and
    sweeps, each run to its end) fit first, in `fit_order`; each meta-learner then gets
    what is left over how many are left, and stops in time to validate within it. So the
    run's wall time does not grow with the machine's slowness: a slower machine leaves
    the meta-learners less time, not the user a longer wait."""

    def __init__(self, models: tuple[str, ...], max_time: float | None) -> None:
        self.max_time = max_time or None
        self.start = time.perf_counter()
        self.end = None if self.max_time is None else self.start + self.max_time
        self.todo = meta_fits(models)
        self.first = True  # the first share says whether the baselines left enough

    def share(self, kind: str) -> float | None:
        """The seconds `kind` may train for (None: no limit, or not a meta-learner). The
        ensemble, fitted last, gets what is left for the members it has to fit itself."""
        own = list(self.todo) if kind == "ensemble" else [kind] if kind in self.todo else []
        if self.end is None or not own:
            return None
        now = time.perf_counter()
        left = max(self.end - now, 0.0)
        if self.first and left < SHORT_SHARE * self.max_time:
            log.warning(
                "the baselines took %.0f s of the %.0f s budget; the meta-learners share the "
                "%.0f s left. Raise --max-time to give them more",
                now - self.start,
                self.max_time,
                left,
            )
        self.first = False
        share = max(left, 1e-3) * len(own) / len(self.todo)  # spent: one step each, then stop
        self.todo = [k for k in self.todo if k not in own]
        return share
