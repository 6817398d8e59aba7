"""What the three meta-learners share: construction from the data, the episode loss the
trainer (recmeta.training) minimises, growth to new items and users, batched scoring, and
state for checkpoints. No training loop lives here."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from recmeta.errors import ParameterError
from recmeta.learners.backbone import (
    Backbone,
    Episode,
    LossTerms,
    Theta,
    on_scale,
    query_loss,
    rank_logits,
    rating_scale,
    ratings,
)
from recmeta.learners.base import Recommender, check_tensor
from recmeta.learners.baselines import ALS, als_item_factors, liked_matrix
from recmeta.learners.hyper import check_hyper
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch, positive_threshold

OPTIM = "optim/"  # checkpoint tensors under this prefix are the optimiser's state, not the model's

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
    # an epoch scoring this share below the best validation score so far stops training at
    # once: the learner is overfitting its training users, not wandering in noise, and the
    # epochs patience would still wait go to the learners fitted after it (Amazon Beauty:
    # MAML falls 9 % in its second epoch and 21 % by its third; BENCHMARKS.md section 7).
    # Not the first epoch after `hold_epochs`, when the item tables start to learn: it can
    # dip and recover (Meta-LSTM at lr 0.003: 7 % down, then past its first epoch)
    "divergence": 0.05,
    "sampled_above": 20_000,  # catalogues larger than this train on sampled candidates
    "negatives": 2048,  # popularity-sampled candidates per step (besides the batch's own items)
    "max_val_users": 2000,  # validation users scored per support size each epoch
    "update_patience": 1,  # epochs without a better validation score before an update stops
    "replay_share": 0.25,  # share of each update step's users drawn from the replay memory
    "rate_weight": 0.5,
    "rate_loss": "absolute",  # the query's rating error: "absolute" (mae) or "squared" (rmse)
    # item embeddings start from whitened ALS factors of the training users: "tuned" takes
    # them from the run's tuned ALS when it was fitted first (its factors set `dim`), else
    # fits them as "als" does at `dim`, `init_regularization` and `init_alpha`; or "random"
    "item_init": "tuned",
    "init_regularization": 10.0,  # the ALS regularization of that start
    "init_scale": 0.1,  # the start's mean row norm (how strongly the start personalises)
    "init_alpha": 1.0,  # the ALS confidence weight of that start
    # epochs of a fresh training during which the item tables (embeddings, biases) keep
    # their start while the rest learns; the validation users then keep the best epoch,
    # held or not (a tuned start can be worth more than what the tables learn after it)
    "hold_epochs": 1,
    "user_power": 0.0,
    "val_shots": [0, 1, 5, 10],
    "threshold": None,
    "device": "auto",
}


class MetaLearner(Recommender, nn.Module):
    """A backbone plus the learner-specific adaptation `theta(ep, e, c)`."""

    predicts_ratings = True
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, start: ALS | None = None, **params: Any) -> None:
        """`start`: an ALS fitted (and tuned) on the same training users, whose item factors
        the embeddings start from with `item_init="tuned"`."""
        nn.Module.__init__(self)
        unknown = set(params) - set(DEFAULTS) - set(self.defaults) - {"shapes"}
        if unknown:
            raise ParameterError(f"{self.kind}: unknown parameter(s) {sorted(unknown)}")
        check_hyper(params, {**DEFAULTS, **self.defaults})
        Recommender.__init__(self, **{**DEFAULTS, **self.defaults, **params})
        self.backbone: Backbone | None = None
        self.start = start if "dim" not in params else None  # a dimension given wins over ALS's

    # --------------------------------------------------------------- the learner's own part
    def build(self, dim: int) -> None:
        """Create the learner's own modules (called once the backbone exists)."""

    def theta(
        self, ep: Episode, e: Tensor, c: Tensor, b: Tensor | None = None, rb: Tensor | None = None
    ) -> Theta:
        """The user-specific parameters from the support in `ep`; `e`, `b` and `rb` are the
        embeddings, rank biases and rating biases of the items scored (the catalogue, or a
        training step's candidates), the backbone's own biases when not given."""
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
            "scale": rating_scale(vals) if explicit else None,
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

    def loss(
        self,
        ep: Episode,
        candidates: Tensor | None = None,
        logq: Tensor | None = None,
        rows: dict[str, Tensor] | None = None,
    ) -> LossTerms:
        """The episode's query loss (`LossTerms`; `.value()` is the scalar) over the catalogue
        or, with `candidates` (the items the episode's indices point into), a sampled softmax
        over them whose rank biases are corrected by `logq`, the log of each candidate's
        expected count in the sample.
        `rows` (by `item_tables` name) stand in for the candidates' rows of the item tables,
        so that a trainer can update those rows alone."""
        bb = self.backbone
        if candidates is None:
            e, b, rb = bb.items(), bb.item_bias, bb.rate_bias
        else:
            emb, b, rb = (
                (rows[n] for n in self.item_tables)
                if rows is not None
                else (bb.item_emb(candidates), bb.item_bias[candidates], bb.rate_bias[candidates])
            )
            e = bb.encode(emb, candidates)
            b = b - (0.0 if logq is None else logq)
        theta = self.theta(ep, e, bb.context(ep), b=b, rb=rb)
        logits = self.logits(theta, e, b)
        rate_weight = 0.0 if self.params["shapes"]["implicit"] else self.params["rate_weight"]
        pred = ratings(theta, e, rb, bb.mu, ep.query_items) if rate_weight else None
        return query_loss(logits, pred, ep, rate_weight, self.params["user_power"], self.params["rate_loss"])

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

    def rating(self, pred: np.ndarray) -> np.ndarray:
        """`predict`'s values as ratings: on the training log's scale, and, as the absolute
        rating error (the default `rate_loss`) makes them medians, on its stars
        (`on_scale`); unchanged for a model from before scales were recorded."""
        scale = self.params["shapes"].get("scale")
        return pred if scale is None else on_scale(pred, scale, self.params["rate_loss"] == "absolute")

    # --------------------------------------------------------------- set-up and growth
    item_tables: ClassVar[tuple[str, ...]] = (
        "backbone.item_emb.weight",
        "backbone.item_bias",
        "backbone.rate_bias",
    )  # parameters with one row per item, in catalogue order

    def setup(self, train: Interactions, seed: int = 0) -> MetaLearner:
        """Build the modules for `train`'s catalogue and users; item biases start as
        log-popularity of the positive rows and item embeddings as whitened ALS factors: the
        tuned ALS's (`start`, `whiten`) or their own fit's (`als_start`), unless
        `item_init="random"`. The trainer then fits it."""
        p = self.params
        tuned = p["item_init"] == "tuned" and self._adopt_start(train)
        self._construct(
            self._shapes(train), torch.from_numpy(train.item_features), torch.from_numpy(train.user_features)
        )
        self._init_item_bias(train)
        if p["item_init"] != "random":
            reg, scale = self.positive("init_regularization"), self.positive("init_scale")
            alpha = self.positive("init_alpha")
            if tuned:
                start = whiten(self.start.item_factors_, reg, scale)
            else:
                liked = liked_matrix(train, self.threshold)
                start = als_start(liked, p["dim"], reg, alpha, scale, seed) if liked.nnz else None
            if start is not None:
                with torch.no_grad():
                    self.backbone.item_emb.weight.copy_(torch.from_numpy(start))
        self.start = None  # the factors are copied; the ALS is not held on to
        return self

    def _adopt_start(self, train: Interactions) -> bool:
        """Take the tuned ALS's configuration (factors as `dim`, regularization, alpha) for
        the start; False when there is no such ALS for `train`'s catalogue (or its factors
        are not all finite numbers)."""
        als = self.start
        factors = getattr(als, "item_factors_", None)
        if factors is None or len(factors) != train.n_items or not np.isfinite(factors).all():
            return False
        self.params.update(
            dim=int(factors.shape[1]),
            init_regularization=float(als.params["regularization"]),
            init_alpha=float(als.params["alpha"]),
        )
        return True

    def positive(self, name: str) -> float:
        """The parameter `name`, refused unless it is a positive, finite number (not NaN)."""
        value = self.params[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and 0 < value < math.inf):
            raise ParameterError(f"{name} must be a positive, finite number, not {value!r}")
        return float(value)

    @property
    def n_items(self) -> int:
        return self.params["shapes"]["n_items"]

    def _init_item_bias(self, train: Interactions) -> None:
        liked = train.values.data >= self.threshold
        counts = np.bincount(train.values.indices[liked], minlength=train.n_items)
        b = np.log1p(counts)
        with torch.no_grad():
            self.backbone.item_bias.copy_(torch.as_tensor(b - b.mean(), dtype=torch.float32))

    def grow(
        self, item_index: np.ndarray, item_x: np.ndarray, user_x: np.ndarray, values: np.ndarray | None = None
    ) -> None:
        """Re-index to a grown catalogue: new row j is old row `item_index[j]`, or a new item
        (-1), whose id embedding is zero when it has features (it is then its projected
        features) and the mean id embedding when not, with the median item biases. Feature
        rows are replaced by `item_x` and `user_x` (encoded as at training time); `values`,
        the grown log's values, give the ratings their scale (an explicit log's)."""
        self._check_fitted("backbone")
        bb = self.backbone
        if item_x.shape[1] != bb.item_x.shape[1] or user_x.shape[1] != self.user_x_.shape[1]:
            raise ValueError("features must be encoded with the checkpoint's feature spec")
        index = torch.as_tensor(np.asarray(item_index, np.int64), device=self.device)
        with torch.no_grad():
            emb = bb.item_emb.weight
            fill_emb = torch.zeros_like(emb[0]) if bb.item_proj is not None else emb.mean(0)
            tables = {
                "item_emb": remap_rows(emb, index, fill_emb),
                "item_bias": remap_rows(bb.item_bias, index, bb.item_bias.median()),
                "rate_bias": remap_rows(bb.rate_bias, index, bb.rate_bias.median()),
            }
        bb.item_emb = nn.Embedding.from_pretrained(tables["item_emb"], freeze=False)
        bb.item_bias = nn.Parameter(tables["item_bias"])
        bb.rate_bias = nn.Parameter(tables["rate_bias"])
        bb.item_x = torch.as_tensor(item_x, dtype=torch.float32, device=self.device)
        self.user_x_ = torch.as_tensor(user_x, dtype=torch.float32, device=self.device)
        bb._cache.clear()
        shapes = {**self.params["shapes"], "n_items": len(index), "n_users": len(user_x)}
        if values is not None and not shapes["implicit"] and len(values):
            shapes["scale"] = rating_scale(values)
        self.params["shapes"] = shapes

    # --------------------------------------------------------------- state
    def state(self):
        self._check_fitted("backbone")
        return dict(self.params), {k: v.detach().cpu() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, config, tensors):
        config = dict(config)
        shapes = config["shapes"]
        check_scale(shapes.get("scale"))
        model = cls(**config)
        for name in ("backbone.item_x", "user_x_"):
            check_tensor(tensors, name, torch.float32, 2)
        model._construct(shapes, tensors["backbone.item_x"], tensors["user_x_"])
        expected = model.state_dict()
        unexpected = sorted(set(tensors) - set(expected))
        if unexpected:
            raise ValueError(f"tensors the model does not have: {unexpected[:3]}")
        for name, mine in expected.items():
            check_tensor(tensors, name, mine.dtype, mine.dim(), tuple(mine.shape))
        model.load_state_dict(tensors)
        model.to(serving_device(config.get("device", "auto")))
        model.eval()
        return model


def check_scale(scale: Any) -> None:
    """Refuse (ValueError) a checkpoint's rating scale unless it is None or [lowest, highest,
    step] of finite numbers, lowest <= highest, the step positive or None."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))

    if scale is None:
        return
    if not (
        isinstance(scale, list)
        and len(scale) == 3
        and number(scale[0])
        and number(scale[1])
        and scale[0] <= scale[1]
        and (scale[2] is None or (number(scale[2]) and scale[2] > 0))
    ):
        raise ValueError(f"the rating scale must be [lowest, highest, step or null], not {scale!r}")


def als_start(liked, dim: int, regularization: float, alpha: float, scale: float, seed: int) -> np.ndarray:
    """(items, dim) item embeddings to start meta-training from: ALS item factors of the
    positive rows (15 sweeps), `whiten`ed."""
    return whiten(als_item_factors(liked, dim, regularization, alpha, 15, seed), regularization, scale)


def whiten(factors: np.ndarray, regularization: float, scale: float) -> np.ndarray:
    """ALS item factors Y whitened as Y (Y'Y + reg I)^-1/2, so that a user vector summing
    the liked items' rows scores the catalogue as ALS's least-squares fold-in does (up to
    the support's own confidence terms), scaled to a mean row norm of `scale`."""
    y = np.asarray(factors, dtype=np.float64)
    dim = y.shape[1]
    vals, vecs = np.linalg.eigh(y.T @ y + regularization * np.eye(dim))
    white = y @ (vecs / np.sqrt(vals)) @ vecs.T
    norm = np.linalg.norm(white, axis=1).mean()
    return (white * (scale / max(norm, 1e-12))).astype(np.float32)


def serving_device(name: str) -> torch.device:
    """Where a loaded model runs: the device it names when this machine has it, else the CPU
    (a model trained on a GPU serves on a machine without one)."""
    if name == "auto" or str(name).startswith("cuda"):
        if torch.cuda.is_available():
            index = torch.device(name if name != "auto" else "cuda").index or 0
            if index < torch.cuda.device_count():
                return torch.device(name if name != "auto" else "cuda")
        return torch.device("cpu")
    return torch.device(name)


def remap_rows(table: Tensor, index: Tensor, fill: Tensor) -> Tensor:
    """Rows of `table` picked by `index`; -1 picks `fill` (a row, or a scalar for a vector)."""
    out = table[index.clamp(min=0)].clone()
    out[index < 0] = fill.to(out.dtype)
    return out
