"""The meta-training time of a run, shared by its meta-learners (`train` and `evaluate`)."""

from __future__ import annotations

import time

from recmeta.learners import META_LEARNERS

TRAIN_BUDGET = (
    270.0  # seconds of meta-training a `recmeta train` run takes at most (BENCHMARKS.md, section 7)
)


class Budget:
    """`max_time` seconds for the whole run, shared by the meta-learners still to fit: each
    gets what is left over how many are left (and stops in time to validate within it)."""

    def __init__(self, models: tuple[str, ...], max_time: float | None) -> None:
        self.end = None if not max_time else time.perf_counter() + max_time
        todo = [k for k in models if k in META_LEARNERS and k != "ensemble"]
        if "ensemble" in models:
            todo += [m for m in ("maml", "protonet", "metalstm") if m not in todo]
        self.todo = todo

    def share(self, kind: str) -> float | None:
        if self.end is None or kind not in self.todo:
            return None
        left = max(self.end - time.perf_counter(), 1e-3)  # spent: one step each, then stop
        share = left / len(self.todo)
        self.todo.remove(kind)
        return share
