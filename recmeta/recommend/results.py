"""What a recommendation request takes and gives: a user's history, the filters, the items
recommended with their reasons; `ITEM[:VALUE]` pairs parsed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recmeta.errors import DataError
from recmeta.ingest.ids import clipped


@dataclass
class Item:
    item: str
    title: str | None
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class Recommendations:
    user: str | None
    model: str
    route: str
    interactions: int
    items: list[Item]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dicts (by hand: `dataclasses.asdict` deep-copies every field, and
        a server calls this per request)."""
        return {
            "user": self.user,
            "model": self.model,
            "route": self.route,
            "interactions": self.interactions,
            "items": [
                {"item": it.item, "title": it.title, "score": it.score, "reasons": list(it.reasons)}
                for it in self.items
            ],
            "warnings": list(self.warnings),
        }


@dataclass
class Filters:
    """Items a list may not hold (sold out, already shown) and, when given, the only items it
    may hold (a candidate set)."""

    exclude: frozenset[str] = frozenset()
    candidates: frozenset[str] | None = None
    _last: tuple[list[str], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, exclude=(), candidates=None) -> Filters:
        """From any iterables of item ids (None: every item is a candidate)."""
        return cls(
            frozenset(map(str, exclude)), None if candidates is None else frozenset(map(str, candidates))
        )

    def allowed(self, ids: list[str]) -> np.ndarray:
        """A mask over `ids`, made once per catalogue (a batch asks for it every chunk)."""
        if self._last is not None and self._last[0] is ids:
            return self._last[1]
        ok = np.array([i not in self.exclude for i in ids], bool)
        if self.candidates is not None:
            ok &= np.array([i in self.candidates for i in ids], bool)
        self._last = (ids, ok)
        return ok

    def notes(self, ids: list[str]) -> list[str]:
        """A note when candidates name items the catalogue does not hold (a typo, or items
        added after the model was trained): those cannot be recommended."""
        if self.candidates is None:
            return []
        if not self.candidates:
            return ["the candidate list is empty: there is nothing to recommend from"]
        unknown = sorted(self.candidates.difference(ids))
        if not unknown:
            return []
        return [
            f"{len(unknown):,} candidate item(s) are not in the model's catalogue and cannot be "
            f"recommended, e.g. {unknown[0][:40]!r}"
        ]


def parse_pairs(pairs: list[str]) -> list[tuple[str, float | None]]:
    """`ITEM[:VALUE]` strings (as `recmeta recommend --with` takes them) into (item, value)
    pairs; an item without a value gets None (a like)."""
    out = []
    for raw in pairs:
        item, _, value = str(raw).partition(":")
        try:
            out.append((item, float(value) if value else None))
        except ValueError:
            raise DataError(f"{clipped(raw)}: the value after ':' must be a number") from None
    return out


@dataclass
class History:
    """One user's rows in time order, as external item ids."""

    items: list[str]
    values: list[float]
    times: list[int]

    @classmethod
    def from_rows(cls, rows: list[tuple[str, float, int]]) -> History:
        return cls([str(r[0]) for r in rows], [float(r[1]) for r in rows], [int(r[2]) for r in rows])

    def rows(self) -> list[tuple[str, float, int]]:
        return list(zip(self.items, self.values, self.times, strict=True))

    def __len__(self) -> int:
        return len(self.items)
