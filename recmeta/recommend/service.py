"""The recommendation service: load the active checkpoints, route each user, adapt, score the
catalogue in one batched call, drop what the user has, and explain."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from recmeta import checkpoint, snapshot
from recmeta.errors import CheckpointError, DataError, UnknownItemError, UnknownUserError, is_whole
from recmeta.ingest.ids import check_id, clipped
from recmeta.learners import META_LEARNERS
from recmeta.learners.protonet import ProtoNet
from recmeta.metrics import top_n
from recmeta.recommend.results import Filters, History, Item, Recommendations
from recmeta.routing import rows, served_by
from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.store.models import MAX_VALUE
from recmeta.store.models import Item as ItemRow
from recmeta.tasks import Batch, history_batch

if TYPE_CHECKING:
    import pandas as pd

EXPLAIN_SUPPORT = 50  # explanations weigh at most this many of the user's latest rows


def item_similarities(model, row: int) -> np.ndarray:
    """Similarity of every item of `model`'s catalogue to item `row`."""
    import torch

    if getattr(model, "similarity_", None) is not None:  # item kNN, EASE, episodic: item-item weights
        sims = np.asarray(model.similarity_[row].todense()).ravel().astype(np.float64)  # (1-row band)
        if not sims.any():
            raise DataError(
                f"{model.kind} holds no weights for this item (no item shares its positive rows, "
                "or it is past the items the model was fitted over); use a meta-learner"
            )
        return sims
    if getattr(model, "kind", "") == "ensemble":
        return np.mean([item_similarities(m, row) for m in model.models.values()], axis=0)
    if not hasattr(model, "item_embeddings"):
        raise DataError(
            f"{model.kind} has no item embeddings; use --model maml, protonet, metalstm, itemknn, "
            "ease or episodic"
        )
    model._serving()
    with torch.inference_mode():
        e, _ = model.item_embeddings()
        e = torch.nn.functional.normalize(e.float(), dim=1)
        return (e @ e[row]).cpu().numpy().astype(np.float64)


@dataclass
class Served:
    """A loaded checkpoint and the catalogue it scores: its own items, then the items added
    to the store after training when the model can score them from their features."""

    loaded: checkpoint.Loaded
    ids: list[str]
    new_x: np.ndarray | None = None

    @property
    def new(self) -> int:
        return len(self.ids) - len(self.loaded.item_ids)

    @functools.cached_property
    def item_index(self) -> dict[str, int]:
        """External item id -> the model's row (made once, not per request)."""
        return {i: k for k, i in enumerate(self.loaded.item_ids)}

    @functools.cached_property
    def user_index(self) -> dict[str, int]:
        return {u: k for k, u in enumerate(self.loaded.user_ids)}

    def raw_scores(self, batch: Batch) -> np.ndarray:
        model = self.loaded.model
        return model.score(batch) if self.new_x is None else model.score(batch, new_items=self.new_x)


class RecommendationService:
    """Serves recommendations from the store's active checkpoints.

    Checkpoints load lazily and once; the catalogue and a user's rows are read per request.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with session_scope(engine) as session:
            self.registry = repo.active_models(session)
            self.catalogue = repo.catalogue(session)
            self.low_value, top = repo.value_range(session)
            self.top_value = top or 1.0
            self.implicit = repo.log_is_implicit(session)
        if not self.catalogue:
            raise CheckpointError(
                "the store holds no items, so no model; run `recmeta ingest`, then `recmeta train`"
            )
        self._served: dict[str, Served] = {}
        # PROTOCOL.md's like rule: every row of an implicit log, else the top quarter of the scale
        low = self.low_value if self.low_value is not None else self.top_value
        self.like_threshold = -math.inf if self.implicit else low + 0.75 * (self.top_value - low)
        router = self.registry.get("router")
        self.router = router.config if router is not None else {}

    # ------------------------------------------------------------ models and routes
    def load(self, name: str) -> Served:
        if name not in self._served:
            row = self.registry.get(name)
            if row is None:
                trained = sorted(k for k in self.registry if k != "router")
                raise CheckpointError(
                    f"no trained {name!r} model in this store"
                    + (f" (trained: {', '.join(trained)})" if trained else "")
                    + f"; run `recmeta train --model {name}`"
                )
            self._served[name] = self._serve(checkpoint.load(Path(row.path), self.catalogue.keys()))
        return self._served[name]

    def _serve(self, loaded: checkpoint.Loaded) -> Served:
        known = set(loaded.item_ids)
        new_ids = [i for i in self.catalogue if i not in known]
        spec = loaded.manifest.get("item_feature_spec")
        if not new_ids or not spec or not getattr(loaded.model, "scores_new_items", False):
            return Served(loaded, list(loaded.item_ids))
        with session_scope(self.engine) as session:
            rows = repo.entities_frame(session, ItemRow)
        rows = rows.set_index("external_id").loc[new_ids].reset_index()
        new_x, _, _ = snapshot.item_feature_matrix(rows, spec)
        return Served(loaded, [*loaded.item_ids, *new_ids], new_x)

    def route(self, n_rows: int, model: str) -> tuple[str, str]:
        """(model name, route description) for a user with `n_rows` interactions."""
        if model != "auto":
            return model, f"requested model {model}"
        if not self.router:
            trained = [k for k in ("protonet", "metalstm", "maml", "als", "popular") if k in self.registry]
            if not trained:
                raise CheckpointError("no trained model in this store; run `recmeta train`")
            return trained[0], f"{trained[0]} (no routing trained; run `recmeta train --model all`)"
        name = served_by(self.router, n_rows)
        if n_rows == 0:
            return name, f"prior: no interactions yet, {name}'s population prior"
        why = "the best" if self._leads(name, n_rows) else "no model led it by more than the noise"
        kind = "meta-learner" if name in META_LEARNERS else "baseline"
        return name, (
            f"{kind}: {n_rows} interaction{'' if n_rows == 1 else 's'}, served by {name}, "
            f"{why} on validation users with about as many{self._validation_figures(name, n_rows)}"
        )

    def _validation_size(self, name: str, n_rows: int) -> str | None:
        """The key ("K5") of the largest support size validated for `name` up to `n_rows`
        (the smallest when none is that small); None without figures."""
        sizes = sorted(int(k[1:]) for k in self.router.get("validation", {}).get(name, {}))
        return f"K{max((k for k in sizes if k <= n_rows), default=sizes[0])}" if sizes else None

    def _leads(self, name: str, n_rows: int) -> bool:
        """Whether `name` has the best validation figure at that size (True without figures)."""
        table, key = self.router.get("validation", {}), self._validation_size(name, n_rows)
        return key is None or table[name][key] >= max(v[key] for v in table.values() if key in v)

    def _validation_figures(self, name: str, n_rows: int) -> str:
        """' (ndcg@10 at 5 rows: ensemble 0.501, itemknn 0.511, ...)': every model's
        validation figure at the largest support size validated for `name` up to `n_rows`."""
        table, key = self.router.get("validation", {}), self._validation_size(name, n_rows)
        if key is None:
            return ""
        figures = ", ".join(f"{m} {v[key]:.3f}" for m, v in table.items() if key in v)
        return f" (ndcg@10 at {rows(int(key[1:]))}: {figures})"

    # ------------------------------------------------------------ items like an item
    def similar(self, item: str, n: int = 10, model: str = "auto") -> Recommendations:
        """Items most like `item`: cosine similarity of a meta-learner's item embeddings (an
        ensemble averages its members'), or item kNN's neighbour weights. `auto`: the router's
        cold meta-learner, else any meta-learner trained, else item kNN."""
        if item not in self.catalogue:
            raise UnknownItemError(f"item {clipped(item)} is not in the catalogue; check the id")
        if model == "auto":
            cold = self.router.get("cold")
            trained = [
                k for k in ("ensemble", "maml", "protonet", "metalstm", "itemknn") if k in self.registry
            ]
            model = cold if cold in trained else (trained[0] if trained else "itemknn")
        served = self.load(model)
        index = served.item_index
        if item not in index:
            raise DataError(
                f"item {clipped(item)} was added after {model} was trained; retrain with `recmeta train`"
            )
        sims = item_similarities(served.loaded.model, index[item])
        sims[index[item]] = -np.inf
        top, notes = self._top(sims, n)
        items = [
            Item(item=served.ids[i], title=self._title(served.ids[i]), score=float(sims[i])) for i in top
        ]
        route = f"items like {item} by {model}" + (
            {
                "itemknn": " (co-liked)",
                "ease": " (item-item weights)",
                "episodic": " (item-item weights)",
            }.get(model, " (item embeddings)")
        )
        return Recommendations(
            user=None, model=model, route=route, interactions=0, items=items, warnings=notes
        )

    # ------------------------------------------------------------ requests
    def user_history(self, user: str) -> History:
        with self.engine.connect() as conn:
            rows = repo.user_interactions(conn, str(user))
        if rows is None:
            raise UnknownUserError(
                f"user {clipped(user)} is not in the store; to recommend for someone new, pass their "
                "first interactions (recmeta recommend --with ITEM[:VALUE] ..., or POST /recommend)"
            )
        return History.from_rows(rows)

    def for_user(
        self,
        user: str,
        n: int = 10,
        model: str = "auto",
        explain: bool = False,
        filters: Filters | None = None,
    ) -> Recommendations:
        return self.for_history(
            self.user_history(user), n=n, model=model, explain=explain, user=str(user), filters=filters
        )

    def for_history(
        self,
        history: History,
        n: int = 10,
        model: str = "auto",
        explain: bool = False,
        user: str | None = None,
        filters: Filters | None = None,
    ) -> Recommendations:
        name, route = self.route(len(history), model)
        served = self.load(name)
        batch, notes = self._batch([history], [user], served)
        scores = self._scores(served, batch, filters)[0]
        top, notes2 = self._top(scores, n)
        items = [
            Item(item=served.ids[i], title=self._title(served.ids[i]), score=float(scores[i])) for i in top
        ]
        if explain:
            self._explain(items, top, batch, served)
        return Recommendations(
            user=user,
            model=name,
            route=route,
            interactions=len(history),
            items=items,
            warnings=notes + (filters.notes(served.ids) if filters else []) + notes2,
        )

    def remember(self, user: str, history: History) -> int:
        """Store a request's interactions as a new user's rows."""
        check_id(str(user), "--remember")
        with session_scope(self.engine) as session:
            if repo.user_interactions(session, user) is not None:
                raise DataError(f"user {clipped(user)} exists already; --remember takes a new user id")
            return repo.add_user_interactions(session, user, history.rows())

    def history_of(self, pairs: list[tuple[str, float | None]]) -> History:
        """(item, value) pairs into a history stamped now, in order; a value of None counts as
        the store's top value (a like). Every item must be in the catalogue."""
        known = self.catalogue
        items, values = [], []
        for item, value in pairs:
            item = str(item)
            if item not in known:
                raise UnknownItemError(
                    f"item {clipped(item)} is not in the catalogue; check the id "
                    "(recmeta stats shows how many items there are)"
                )
            raw = item if value is None else f"{item}:{value}"
            try:
                number = float(self.top_value) if value is None else float(value)
            except (TypeError, ValueError):
                raise DataError(f"{clipped(raw)}: the value must be a number") from None
            values.append(self._checked(raw, number))
            items.append(item)
        now = int(time.time())
        return History(items, values, [now + i for i in range(len(items))])

    def preload(self) -> None:
        """Load every active model and score once with each, so that the first request after a
        model switch pays for neither."""
        empty = History([], [], [])
        for name in self.registry:
            if name != "router":
                served = self.load(name)
                self._scores(served, self._batch([empty], [None], served)[0])

    def _checked(self, raw: str, value: float) -> float:
        """A --with value enters the math only when finite and on the store's scale: within
        the range of stored values for ratings, a count of 0 or more for an implicit log."""
        if not math.isfinite(value):
            raise DataError(f"{clipped(raw)}: the value must be a finite number")
        if self.implicit:
            if not 0 <= value <= MAX_VALUE:
                raise DataError(f"{clipped(raw)}: counts in this implicit log run from 0 to {MAX_VALUE:g}")
        elif self.low_value is not None and not self.low_value <= value <= self.top_value:
            raise DataError(
                f"{clipped(raw)}: values in this store run from {self.low_value:g} to {self.top_value:g}"
            )
        return value

    def batch_users(
        self,
        users: list[str],
        n: int = 10,
        model: str = "auto",
        progress=None,
        chunk: int = 256,
        filters: Filters | None = None,
    ) -> tuple[pd.DataFrame, list[str]]:
        """Top-n for many users, batched by route: a frame (user, rank, item, title, score,
        model) and the ids that are not in the store (skipped)."""
        import pandas as pd

        with session_scope(self.engine) as session:
            found = repo.user_histories(session, users)
        histories = {u: History.from_rows(found[u]) if u in found else None for u in map(str, users)}
        missing = [u for u, h in histories.items() if h is None]
        if progress and missing:
            progress(len(missing))
        groups: dict[str, list[str]] = {}
        routes = {}
        for u, h in histories.items():
            if h is not None:
                name, routes[u] = self.route(len(h), model)
                groups.setdefault(name, []).append(u)
        out = []
        for name, members in groups.items():
            served = self.load(name)
            for lo in range(0, len(members), chunk):
                part = members[lo : lo + chunk]
                batch, _ = self._batch([histories[u] for u in part], part, served)
                scores = self._scores(served, batch, filters)
                top = top_n(scores, min(n, scores.shape[1]))
                for r, u in enumerate(part):
                    for rank, i in enumerate(top[r], start=1):
                        if np.isfinite(scores[r, i]):
                            out.append(
                                (
                                    u,
                                    rank,
                                    served.ids[i],
                                    self._title(served.ids[i]),
                                    float(scores[r, i]),
                                    name,
                                )
                            )
                if progress:
                    progress(len(part))
        return pd.DataFrame(out, columns=["user", "rank", "item", "title", "score", "model"]), missing

    # ------------------------------------------------------------ internals
    def _title(self, item: str) -> str | None:
        t = self.catalogue.get(item)
        return t if isinstance(t, str) else None

    def _batch(
        self, histories: list[History], users: list[str | None], served: Served
    ) -> tuple[Batch, list[str]]:
        index, user_index = served.item_index, served.user_index
        notes = []
        items, values, times = [], [], []
        for h in histories:
            keep = [k for k, i in enumerate(h.items) if i in index]
            if len(keep) < len(h):
                notes.append(
                    f"{len(h) - len(keep)} of the user's items were added after training "
                    "and are not used; retrain with `recmeta train` to include them"
                )
            items.append(np.array([index[h.items[k]] for k in keep], np.int64))
            values.append(np.array([h.values[k] for k in keep], np.float32))
            times.append(np.array([h.times[k] for k in keep], np.int64))
        dense = np.array([user_index.get(u, -1) if u is not None else -1 for u in users], np.int64)
        new_items = len(self.catalogue) - len(index)
        if served.new:
            notes.append(
                f"{served.new} item(s) added after training are scored from their features "
                "alone; retrain with `recmeta train` to learn them fully"
            )
        elif new_items > 0:
            notes.append(
                f"{new_items} item(s) were ingested after training and cannot be recommended by this "
                "model (it has no item features); retrain with `recmeta train`"
            )
        return history_batch(items, values, times, dense), notes

    @staticmethod
    def _scores(served: Served, batch: Batch, filters: Filters | None = None) -> np.ndarray:
        scores = served.raw_scores(batch).astype(np.float64)
        rows = np.arange(len(scores))[:, None]
        scores[rows, batch.support_items] = np.where(
            batch.support_mask, -np.inf, scores[rows, batch.support_items]
        )
        if filters is not None and (filters.exclude or filters.candidates is not None):
            scores[:, ~filters.allowed(served.ids)] = -np.inf
        return scores

    @staticmethod
    def _top(scores: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
        if not is_whole(n) or n < 1:
            raise DataError(f"n must be a whole number, 1 or more, not {n!r}")
        available = int(np.isfinite(scores).sum())
        notes = []
        if n > available:
            notes.append(f"asked for {n} items but only {available} are left to recommend")
            n = available
        return top_n(scores[None], n)[0] if n else np.array([], np.int64), notes

    def _explain(
        self,
        items: list[Item],
        top: np.ndarray,
        batch: Batch,
        served: Served,
    ) -> None:
        """Reasons per item: the support rows whose removal lowers its score most (one batched
        call over leave-one-out supports) and the nearest prototype for ProtoNet. The route,
        the same for every item, is said once by `Recommendations.route`."""
        model = served.loaded.model
        s = int(batch.support_mask[0].sum())
        if s == 0:
            for it in items:
                it.reasons = ["liked by many users like you (no interactions yet)"]
            return
        first = max(0, s - EXPLAIN_SUPPORT)
        cols = np.arange(first, s)
        keep = np.ones((len(cols), s), bool)
        keep[np.arange(len(cols)), cols] = False
        its, vals, ts = (batch.support_items[0, :s], batch.support_values[0, :s], batch.support_times[0, :s])
        loo = history_batch(
            [its[k] for k in keep],
            [vals[k] for k in keep],
            [ts[k] for k in keep],
            np.repeat(batch.users[:1], len(cols)),
        )
        full = served.raw_scores(batch)[0]
        without = served.raw_scores(loo)
        delta = full[None, top] - without[:, top]  # (support rows, recommended items)
        # ProtoNet, alone or as a member of the ensemble, also says which prototype is nearer
        proto = model if isinstance(model, ProtoNet) else getattr(model, "models", {}).get("protonet")
        protos = self._prototype_reasons(proto, batch, top, served.new_x, self.implicit) if proto else {}
        # a reason cites only rows the user liked: a disliked item is never why something is shown
        liked = vals[cols] >= self.like_threshold
        for j, it in enumerate(items):
            order = [o for o in np.argsort(-delta[:, j]) if delta[o, j] > 0 and liked[o]][:2]
            reasons = []
            for o in order:
                src = served.ids[its[cols[o]]]
                title = self._title(src) or f"item {src}"
                reasons.append(
                    f"because you have {title}"
                    if self.implicit
                    else f"because you rated {title} {vals[cols[o]]:g}"
                )
            if not reasons:
                reasons.append("popular overall; none of your items pushed it up")
            if j in protos:
                reasons.append(protos[j])
            it.reasons = reasons

    @staticmethod
    def _prototype_reasons(
        model: ProtoNet, batch: Batch, top: np.ndarray, new_x: np.ndarray | None, implicit: bool
    ) -> dict[int, str]:
        import torch

        ep = model.episode(batch)
        theta = model.prototypes(ep)
        with torch.no_grad():
            e = model.item_embeddings(new_x)[0][torch.as_tensor(top)]
            d_like = torch.cdist(theta["like"], e)[0]
            d_dislike = torch.cdist(theta["dislike"], e)[0]
        # without a disliked support row the disliked prototype is the population's prior
        disliked = "your" if float((ep.mask - ep.liked).sum()) > 0 else "the usual"
        out = {}
        for j in range(len(top)):
            like, dislike = float(d_like[j]), float(d_dislike[j])
            if implicit:  # a click log has no dislikes to compare with
                out[j] = f"close to what you have (distance {like:.2f} to your prototype)"
                continue
            if like < dislike:  # nearer the disliked prototype is no reason to recommend it
                out[j] = (
                    f"close to what you liked (distance {like:.2f} to your liked prototype, "
                    f"{dislike:.2f} to {disliked} disliked one)"
                )
        return out
