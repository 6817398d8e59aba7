"""The scoring backbone all three meta-learners share.

An item encoder (id embedding plus projected item features), an item bias that carries
popularity, a user context (user features plus the time of the support), and a prior that
maps the context to the user-specific parameters theta = (u, v, bu):

    rank score   s_ui = b_i + <u, e_i>
    rating       r_ui = mu + c_i + bu + <v, e_i>

A meta-learner differs only in how it turns a support set into theta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from recmeta.tasks import Batch

TIME_BUCKETS = 16
RATE_LOSSES = ("absolute", "squared")  # the query rating error a meta-learner minimises
Theta = dict[str, Tensor]


@dataclass
class Episode:
    """A `Batch` as tensors on one device."""

    items: Tensor  # (B, S) long
    values: Tensor  # (B, S) float, raw values
    liked: Tensor  # (B, S) float 0/1
    mask: Tensor  # (B, S) float 0/1
    times: Tensor  # (B, S) float, unix seconds
    user_x: Tensor  # (B, Fu)
    query_pos: Tensor | None = None  # (B, N)
    query_items: Tensor | None = None
    query_values: Tensor | None = None
    query_mask: Tensor | None = None

    @classmethod
    def from_batch(cls, batch: Batch, user_x: np.ndarray, threshold: float, device: torch.device) -> Episode:
        def t(a, dtype=torch.float32):
            return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        mask = batch.support_mask.astype(np.float32)
        liked = (batch.support_values >= threshold).astype(np.float32) * mask
        return cls(
            items=t(batch.support_items, torch.long),
            values=t(batch.support_values),
            liked=t(liked),
            mask=t(mask),
            times=t(batch.support_times.astype(np.float64)),
            user_x=t(user_x),
            query_pos=t(batch.query_pos),
            query_items=t(batch.query_items, torch.long),
            query_values=t(batch.query_values),
            query_mask=t(None if batch.query_mask is None else batch.query_mask.astype(np.float32)),
        )


class Backbone(nn.Module):
    """Item encoder, item biases, user context and the context -> theta prior."""

    def __init__(
        self,
        n_items: int,
        item_x: Tensor,
        n_user_x: int,
        dim: int,
        time_range: tuple[float, float],
        mu: float,
        sd: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.item_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.item_emb.weight, std=0.01)
        self.register_buffer("item_x", item_x.float())
        self.item_proj = nn.Linear(item_x.shape[1], dim, bias=False) if item_x.shape[1] else None
        if self.item_proj is not None:
            nn.init.normal_(self.item_proj.weight, std=0.01)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.rate_bias = nn.Parameter(torch.zeros(n_items))
        self.time_emb = nn.Embedding(TIME_BUCKETS + 1, dim)
        nn.init.normal_(self.time_emb.weight, std=0.05)
        self.user_proj = nn.Linear(n_user_x, dim) if n_user_x else None
        self.prior = nn.Linear(dim, 2 * dim + 1)
        nn.init.normal_(self.prior.weight, std=0.01)
        nn.init.zeros_(self.prior.bias)
        self.register_buffer("stats", torch.tensor([*time_range, mu, sd], dtype=torch.float64))
        self._cache: dict[str, Any] = {}  # derived values while recommending; not state

    def _stats(self) -> tuple[float, ...]:
        """(first time, last time, mu, sd) as Python floats (read once, not per request)."""
        if "stats" not in self._cache:
            self._cache["stats"] = tuple(self.stats.tolist())
        return self._cache["stats"]

    @property
    def mu(self) -> float:
        return self._stats()[2]

    @property
    def sd(self) -> float:
        return self._stats()[3]

    def items(self, index: Tensor | None = None) -> Tensor:
        """(N, d) embeddings of the whole catalogue, or of the items `index` (training on
        sampled candidates); the whole catalogue is computed once while recommending (eval
        mode, no gradient), on every call while training."""
        if index is not None:
            return self.encode(self.item_emb(index), index)
        if self.training or torch.is_grad_enabled():
            self._cache.pop("items", None)
            return self._encode()
        if "items" not in self._cache:
            self._cache["items"] = self._encode().detach()  # a plain tensor, never a Parameter
        return self._cache["items"]

    def encode(self, emb: Tensor, index: Tensor) -> Tensor:
        """Embeddings of the items `index` whose id embeddings are `emb`."""
        return emb + self.item_proj(self.item_x[index]) if self.item_proj is not None else emb

    def _encode(self) -> Tensor:
        e = self.item_emb.weight
        return e + self.item_proj(self.item_x) if self.item_proj is not None else e

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._cache.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def context(self, ep: Episode) -> Tensor:
        """(B, d) user context: user features and the time of the first support row."""
        lo, hi = self._stats()[:2]
        first = ep.times[:, 0]
        frac = ((first - lo) / max(hi - lo, 1.0)).clamp(0, 1)
        bucket = 1 + (frac * (TIME_BUCKETS - 1)).round().long()
        bucket = torch.where(ep.mask[:, 0] > 0, bucket, torch.zeros_like(bucket))
        c = self.time_emb(bucket)
        if self.user_proj is not None and ep.user_x.shape[1]:
            c = c + self.user_proj(ep.user_x)
        return torch.tanh(c)

    def theta0(self, c: Tensor) -> Theta:
        """The population prior of the user-specific parameters, given the context."""
        out = self.prior(c)
        d = self.dim
        return {"u": out[:, :d], "v": out[:, d : 2 * d], "bu": out[:, 2 * d]}

    def norm_values(self, values: Tensor) -> Tensor:
        return (values - self.mu) / self.sd


def weighted_sq_distances(e: Tensor, *terms: tuple[Tensor, Tensor]) -> Tensor:
    """(B, N) sum over (p, w) in `terms` of w * |e_i - p_b|^2, for prototypes p (B, d) and
    items e (N, d), in one matrix product: |e|^2 sum(w) - 2 e.(sum w p) + sum w |p|^2."""
    ws = sum(w for _, w in terms)
    wp = sum(w * p for p, w in terms)
    wpp = sum(w * (p * p).sum(1, keepdim=True) for p, w in terms)
    return ws * (e * e).sum(1) - 2 * wp @ e.T + wpp


def rank_logits(theta: Theta, e: Tensor, b: Tensor) -> Tensor:
    """(B, N) scores of the catalogue from the user vectors u."""
    return b + theta["u"] @ e.T


def ratings(theta: Theta, e: Tensor, rb: Tensor, mu: float, items: Tensor) -> Tensor:
    """(B, Q) predicted values of `items` (B, Q)."""
    return mu + rb[items] + theta["bu"][:, None] + (e[items] * theta["v"][:, None, :]).sum(-1)


SCALE_LEVELS = 20  # a log with more distinct values than this has no star scale


def rating_scale(values: np.ndarray) -> list[float | None]:
    """[lowest, highest, step] of a log's values; `step` is the spacing of a star scale
    (every value the lowest plus a whole number of steps, at most SCALE_LEVELS of them:
    1-5 stars, 0.5-5 in halves), None when the values lie on no such grid."""
    levels = np.unique(np.asarray(values, dtype=np.float64))
    if len(levels) == 0:
        return [0.0, 0.0, None]
    lo, hi = float(levels[0]), float(levels[-1])
    step = float(np.diff(levels).min()) if len(levels) > 1 else None
    if step is None or len(levels) > SCALE_LEVELS:
        return [lo, hi, None]
    units = (levels - lo) / step
    on_grid = np.allclose(units, np.round(units), atol=1e-6) and (hi - lo) / step <= SCALE_LEVELS
    return [lo, hi, step if on_grid else None]


def on_scale(pred: np.ndarray, scale: Sequence[float | None], median: bool) -> np.ndarray:
    """Predicted values as a rating: within the log's [lowest, highest], and, for a `median`
    (what an absolute error is minimised by) on a star scale, the nearest star, since the
    median of ratings on a scale is itself a point of the scale."""
    lo, hi, step = scale
    out = np.clip(pred, lo, hi)
    if median and step:
        out = lo + np.round((out - lo) / step) * step
    return out


@dataclass
class LossTerms:
    """An episode's query loss as sums and their normalisers, so that a data-parallel step
    can divide each worker's sums by the normalisers of the whole meta-batch."""

    rank: Tensor  # weighted negative log-likelihood of the positive query pairs, summed
    rank_weight: Tensor  # the weights' sum
    rate: Tensor  # rating errors of the query rows (absolute or squared), summed
    rate_rows: Tensor  # how many rows
    rate_weight: float

    def value(self, normalisers: tuple[float, float] | None = None) -> Tensor:
        """The loss: mean over positive pairs plus `rate_weight` x the mean rating error,
        with these terms' own normalisers or given ones (the whole meta-batch's, when
        these terms are one worker's share of it; `loss_normalisers`)."""
        w, m = (self.rank_weight, self.rate_rows) if normalisers is None else normalisers
        loss = self.rank / max(float(w), 1e-9)
        if self.rate_weight:
            loss = loss + self.rate_weight * self.rate / max(float(m), 1.0)
        return loss


def loss_normalisers(query_pos, query_mask, user_power: float):
    """(the positive pairs' summed weight, the query rows) that `query_loss` divides by, of
    a batch's `query_pos` multi-hot and `query_mask` (tensors, or numpy arrays)."""
    n_pos = query_pos.sum(1)
    return (n_pos * n_pos.clip(min=1) ** -user_power).sum(), query_mask.sum()


def query_loss(
    logits: Tensor,
    pred: Tensor | None,
    ep: Episode,
    rate_weight: float,
    user_power: float = 0.0,
    rate_loss: str = "absolute",
) -> LossTerms:
    """Multinomial log-likelihood of the positive query items over the catalogue minus the
    support (averaged over positive pairs), plus `rate_weight` times the rating error on the
    query rows, absolute (its minimiser is the median rating: what mae rewards) or squared
    (the mean: what rmse rewards); as `LossTerms`."""
    support = torch.zeros_like(logits, dtype=torch.bool)
    support.scatter_(1, ep.items, ep.mask > 0)
    logp = F.log_softmax(logits.masked_fill(support, float("-inf")), dim=1)
    pos = ep.query_pos
    # One average over all positive (user, item) pairs: at K = 0 its optimum is each item's
    # share of users who like it, i.e. popularity, which is what hit-based metrics reward.
    # With user_power > 0 a user's pairs weigh n_pos ** -user_power (1: every user equal).
    n_pos = pos.sum(1, keepdim=True)
    w = pos * n_pos.clamp(min=1) ** -user_power
    rank = -(torch.where(pos > 0, logp, torch.zeros_like(logp)) * w).sum()
    m = ep.query_mask if ep.query_mask is not None else logits.new_zeros((1,))
    weight, rows = loss_normalisers(pos, m, user_power)
    if pred is None or rate_weight == 0:
        return LossTerms(rank, weight, logits.new_zeros(()), rows, 0.0)
    err = pred - ep.query_values
    err = err.abs() if rate_loss == "absolute" else err**2
    return LossTerms(rank, weight, (err * m).sum(), rows, rate_weight)
