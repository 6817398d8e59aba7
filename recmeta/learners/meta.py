"""What the three meta-learners share: construction from the data, episodic meta-training with
early stopping on validation users, batched scoring, and state for checkpoints."""

from __future__ import annotations

import copy
import math
import time
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from recmeta.learners.backbone import Backbone, Episode, Theta, query_loss, rank_logits, ratings
from recmeta.learners.base import Progress, Recommender, validation_ndcg
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch, Sequences, make_batch, positive_threshold

DEFAULTS: dict[str, Any] = {
    "dim": 64,
    "epochs": 200,
    "max_time": None,  # seconds; stops training early when set
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "max_support": 20,
    "support_sampling": "log",  # small supports drawn more often; or "uniform" over 0..max_support
    "patience": 8,
    "rate_weight": 0.5,
    "user_power": 0.0,
    "val_shots": [0, 1, 5, 10],
    "threshold": None,
    "device": "auto",
}


def support_sizes(rng: np.random.Generator, n: int, most: int, how: str) -> np.ndarray:
    """Support sizes of a meta-batch: uniform over 0..most, or log-uniform (more small ones)."""
    if how == "log":
        return np.floor(np.exp(rng.uniform(0, np.log(most + 2), n))).astype(np.int64) - 1
    return rng.integers(0, most + 1, n)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class MetaLearner(Recommender, nn.Module):
    """A backbone plus the learner-specific adaptation `theta(ep, e, c)`."""

    predicts_ratings = True
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        nn.Module.__init__(self)
        unknown = set(params) - set(DEFAULTS) - set(self.defaults) - {"shapes"}
        if unknown:
            raise ValueError(f"{self.kind}: unknown parameter(s) {sorted(unknown)}")
        Recommender.__init__(self, **{**DEFAULTS, **self.defaults, **params})
        self.backbone: Backbone | None = None

    # --------------------------------------------------------------- the learner's own part
    def build(self, dim: int) -> None:
        """Create the learner's own modules (called once the backbone exists)."""

    def theta(self, ep: Episode, e: Tensor, c: Tensor) -> Theta:
        """The user-specific parameters from the support in `ep`."""
        raise NotImplementedError

    def logits(self, theta: Theta, e: Tensor, b: Tensor) -> Tensor:
        return rank_logits(theta, e, b)

    # --------------------------------------------------------------- construction
    def _construct(self, shapes: dict[str, Any], item_x: Tensor, user_x: Tensor) -> None:
        self.params["shapes"] = shapes
        self.backbone = Backbone(
            shapes["n_items"],
            item_x,
            user_x.shape[1],
            self.params["dim"],
            tuple(shapes["time_range"]),
            shapes["mu"],
            shapes["sd"],
        )
        self.register_buffer("user_x_", user_x.float())
        self.build(self.params["dim"])

    def _shapes(self, train: Interactions) -> dict[str, Any]:
        vals, times = train.values.data, train.times.data
        explicit = not train.implicit
        return {
            "n_items": train.n_items,
            "n_users": train.n_users,
            "time_range": [float(times.min()), float(times.max())] if len(times) else [0.0, 1.0],
            "mu": float(vals.mean()) if explicit and len(vals) else 0.0,
            "sd": float(vals.std()) if explicit and len(vals) and vals.std() > 0 else 1.0,
            "implicit": train.implicit,
            "threshold": positive_threshold(train, self.params["threshold"]),
        }

    @property
    def device(self) -> torch.device:
        return self.backbone.item_bias.device

    @property
    def threshold(self) -> float:
        return self.params["shapes"]["threshold"]

    # --------------------------------------------------------------- forward
    def episode(self, batch: Batch, user_x: np.ndarray | None = None) -> Episode:
        if user_x is None:
            ux = self.user_x_.cpu().numpy()
            known = (batch.users >= 0) & (batch.users < len(ux))
            user_x = np.where(known[:, None], ux[np.clip(batch.users, 0, len(ux) - 1)], 0.0)
        return Episode.from_batch(batch, user_x, self.threshold, self.device)

    def forward_episode(
        self, ep: Episode, new_items: Tensor | np.ndarray | None = None
    ) -> tuple[Theta, Tensor, Tensor]:
        """(theta, item embeddings, logits). `new_items` (M, item features): items added after
        training, embedded from their features alone with the median item bias, scored after
        the N known ones."""
        bb = self.backbone
        theta = self.theta(ep, bb.items(), bb.context(ep))
        e, b = self.item_embeddings(new_items)
        return theta, e, self.logits(theta, e, b)

    def item_embeddings(self, new_items: Tensor | np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """(embeddings, biases) of the catalogue, followed by items added after training
        (embedded from their features alone, with the median item bias)."""
        bb = self.backbone
        e, b = bb.items(), bb.item_bias
        if new_items is not None and len(new_items) and bb.item_proj is not None:
            x = torch.as_tensor(new_items, dtype=e.dtype, device=e.device)
            e = torch.cat([e, bb.item_proj(x)])
            b = torch.cat([b, b.median().expand(len(x))])
        return e, b

    @property
    def scores_new_items(self) -> bool:
        """Whether items added after training can be scored from their features."""
        return self.backbone is not None and self.backbone.item_proj is not None

    def _serving(self) -> None:
        """Eval mode (a no-op when already there: `eval()` walks every submodule)."""
        if self.training:
            self.eval()

    def loss(self, ep: Episode) -> Tensor:
        theta, e, logits = self.forward_episode(ep)
        rate_weight = 0.0 if self.params["shapes"]["implicit"] else self.params["rate_weight"]
        pred = (
            ratings(theta, e, self.backbone.rate_bias, self.backbone.mu, ep.query_items)
            if rate_weight
            else None
        )
        return query_loss(logits, pred, ep, rate_weight, self.params["user_power"])

    def score(
        self, batch: Batch, user_x: np.ndarray | None = None, new_items: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, N) scores, or (B, N + M) with the feature rows of M items added after training."""
        self._check_fitted("backbone")
        self._serving()
        with torch.inference_mode():
            _, _, logits = self.forward_episode(self.episode(batch, user_x), new_items)
        return logits.float().cpu().numpy()

    def predict(self, batch: Batch, items: np.ndarray, user_x: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted("backbone")
        self._serving()
        with torch.inference_mode():
            ep = self.episode(batch, user_x)
            theta, e, _ = self.forward_episode(ep)
            idx = torch.as_tensor(items, dtype=torch.long, device=self.device)
            pred = ratings(theta, e, self.backbone.rate_bias, self.backbone.mu, idx)
        return pred.float().cpu().numpy()

    # --------------------------------------------------------------- training
    def fit(
        self,
        train: Interactions,
        validation: Interactions | None = None,
        *,
        progress: Progress | None = None,
        seed: int = 0,
    ) -> MetaLearner:
        """Episodic meta-training: every step is a meta-batch of training users, each with a
        time-ordered support of random size (0..max_support) and the rest as query."""
        p = self.params
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        shapes = self._shapes(train)
        self._construct(shapes, torch.from_numpy(train.item_features), torch.from_numpy(train.user_features))
        self.to(pick_device(p["device"]))
        self._init_item_bias(train)
        seq = Sequences.from_data(train)
        users = np.flatnonzero(seq.lengths(np.arange(train.n_users)) >= 2)
        if len(users) == 0:
            raise ValueError("no training user has two or more interactions")
        val_batches = self._validation_batches(validation)
        opt = torch.optim.Adam(self.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        best = (-math.inf, copy.deepcopy(self.state_dict()), 0)
        start, bad_epochs, tasks = time.perf_counter(), 0, 0
        for epoch in range(1, p["epochs"] + 1):
            self.train()
            order = rng.permutation(users)
            losses = []
            for lo in range(0, len(order), p["batch_size"]):
                chunk = order[lo : lo + p["batch_size"]]
                n = seq.lengths(chunk)
                k = np.minimum(support_sizes(rng, len(chunk), p["max_support"], p["support_sampling"]), n - 1)
                batch = make_batch(seq, chunk, k, train.n_items, shapes["threshold"], rng=rng)
                loss = self.loss(self.episode(batch))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.parameters(), 10.0)
                opt.step()
                losses.append(loss.item())
                tasks += len(chunk)
            elapsed = time.perf_counter() - start
            per_shot = self.validation_scores(val_batches)
            val = float(np.mean(list(per_shot.values()))) if per_shot else -float(np.mean(losses))
            if val > best[0]:
                best, bad_epochs = (val, copy.deepcopy(self.state_dict()), epoch), 0
            else:
                bad_epochs += 1
            if progress:
                progress(
                    {
                        "epoch": epoch,
                        "loss": float(np.mean(losses)),
                        "val_ndcg@10": val,
                        **{f"val_K{k}": v for k, v in per_shot.items() if k == 5},
                        "best": best[0],
                        "tasks_per_s": tasks / max(elapsed, 1e-9),
                    }
                )
            if bad_epochs >= p["patience"] or (p["max_time"] and elapsed > p["max_time"]):
                break
        self.load_state_dict(best[1])
        self.best_epoch_, self.val_score_ = best[2], best[0]
        self.eval()
        return self

    def _init_item_bias(self, train: Interactions) -> None:
        liked = train.values.data >= self.threshold
        counts = np.bincount(train.values.indices[liked], minlength=train.n_items)
        b = np.log1p(counts)
        with torch.no_grad():
            self.backbone.item_bias.copy_(torch.as_tensor(b - b.mean(), dtype=torch.float32))

    def _validation_batches(self, validation: Interactions | None) -> dict[int, Batch]:
        if validation is None or validation.values.nnz == 0:
            return {}
        seq = Sequences.from_data(validation)
        out = {}
        for k in self.params["val_shots"]:
            users = np.flatnonzero(validation.counts_per_user() > k)
            if len(users):
                out[k] = make_batch(seq, users, k, validation.n_items, self.threshold)
        return out

    def validation_scores(self, batches: dict[int, Batch]) -> dict[int, float]:
        """ndcg@10 at each validation shot (support items removed); their mean selects the epoch."""
        return {k: validation_ndcg(self, b) for k, b in batches.items()}

    # --------------------------------------------------------------- state
    def state(self):
        self._check_fitted("backbone")
        return dict(self.params), {k: v.detach().cpu() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, config, tensors):
        config = dict(config)
        shapes = config["shapes"]
        model = cls(**config)
        model._construct(shapes, tensors["backbone.item_x"], tensors["user_x_"])
        model.load_state_dict(tensors)
        model.to(pick_device(config.get("device", "auto")))
        model.eval()
        return model
