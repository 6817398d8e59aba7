"""ProtoNet: a user's preference prototypes are means of the embedded support items, shrunk
toward learned population prototypes; the catalogue is scored by distance to them, the
liked prototype's pull growing with how many liked rows it averages. Ratings come from a
ridge regression of the support's rating deviations on its items' embeddings, shrunk
toward the population prior (on an implicit log, with no ratings to predict, it is not
fitted: MAML's inner loop likewise leaves the rating terms alone there)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from recmeta.learners.backbone import Episode, Theta, weighted_sq_distances
from recmeta.learners.meta import MetaLearner


def prototype(e_support: Tensor, weights: Tensor, prior: Tensor, strength: Tensor) -> Tensor:
    """(B, d) weighted mean of embedded support items with `strength` pseudo-rows of `prior`.

    With no support row it is the prior; with many it is the plain mean.
    """
    total = torch.bmm(weights[:, None], e_support)[:, 0] + strength * prior
    return total / (weights.sum(1, keepdim=True) + strength)


def rating_fit(
    e_support: Tensor, dev: Tensor, mask: Tensor, bu0: Tensor, v0: Tensor, strength: Tensor, ridge: Tensor
) -> tuple[Tensor, Tensor]:
    """(bu, v) minimising sum_s mask_s (dev_s - bu - <v, e_s>)^2 + strength (bu - bu0)^2 +
    ridge |v - v0|^2 for each user: the rating deviations of the support rows regressed on
    their items' embeddings, with the prior (bu0, v0) as `strength` and `ridge` pseudo-rows.
    With no row it is the prior; as rows accumulate, v follows the rows, not their mean."""
    x = torch.cat([torch.ones_like(e_support[..., :1]), e_support], -1) * mask[..., None]  # (B, S, d + 1)
    penalty = torch.cat([strength.reshape(1), ridge.reshape(1).expand(e_support.shape[-1])])
    gram = torch.bmm(x.transpose(1, 2), x) + torch.diag(penalty)
    prior = torch.cat([bu0[:, None], v0], 1)
    rhs = torch.bmm(x.transpose(1, 2), (dev * mask)[..., None])[..., 0] + penalty * prior
    w = torch.linalg.solve(gram, rhs)
    return w[:, 0], w[:, 1:]


def softplus_inverse(x: float) -> float:
    """The y with softplus(y) = x > 0, without overflow for large x."""
    return x + math.log(-math.expm1(-x))


GROWTH_OFF = -30.0  # raw_growth of a checkpoint saved before it existed: softplus ~ 1e-13


class ProtoNet(MetaLearner):
    """Liked and disliked prototypes, and the rating terms of `rating_fit`.

    score_i = b_i - tau_like (1 + g log(1 + n_liked)) |e_i - p_like|^2
                  + tau_dislike |e_i - p_dislike|^2

    A mean of more liked rows says more about the user than the population's popularity
    (b_i) does, so its pull grows with them at a learned rate g (on Amazon Beauty, seed 0:
    ndcg@10 +0.008 to +0.010 on validation users from 3 rows on; BENCHMARKS.md).
    """

    kind = "protonet"
    defaults: ClassVar[dict[str, Any]] = {"prior_strength": 2.0, "rating_ridge": 1.0, "pull": 1.0}

    def build(self, dim: int) -> None:
        self.dislike_prior = nn.Linear(dim, dim)
        nn.init.zeros_(self.dislike_prior.weight)
        nn.init.zeros_(self.dislike_prior.bias)
        strength, pull, ridge = (
            softplus_inverse(self.positive(name)) for name in ("prior_strength", "pull", "rating_ridge")
        )  # each learned from there
        self.raw_strength = nn.Parameter(torch.full((3,), strength))
        self.raw_tau = nn.Parameter(torch.tensor([pull, softplus_inverse(0.5)]))
        self.raw_ridge = nn.Parameter(torch.tensor(ridge))
        self.raw_growth = nn.Parameter(torch.tensor(-3.0))  # g = softplus: 0.05 at the start

    def theta(
        self, ep: Episode, e: Tensor, c: Tensor, b: Tensor | None = None, rb: Tensor | None = None
    ) -> Theta:
        bb = self.backbone
        rb = bb.rate_bias if rb is None else rb
        prior = bb.theta0(c)
        strength = F.softplus(self.raw_strength)
        es = e[ep.items]  # (B, S, d)
        disliked = ep.mask - ep.liked
        like = prototype(es, ep.liked, prior["u"], strength[0])
        dislike = prototype(es, disliked, self.dislike_prior(c), strength[1])
        if self.params["shapes"]["implicit"]:  # no ratings to predict: the regression is skipped
            bu, v = prior["bu"], prior["v"]
        else:
            dev = ep.values - bb.mu - rb[ep.items]
            ridge = F.softplus(self.raw_ridge)
            bu, v = rating_fit(es, dev, ep.mask, prior["bu"], prior["v"], strength[2], ridge)
        n_liked = torch.log1p(ep.liked.sum(1, keepdim=True))
        return {"like": like, "dislike": dislike, "v": v, "bu": bu, "n_liked": n_liked}

    def logits(self, theta: Theta, e: Tensor, b: Tensor) -> Tensor:
        tau = F.softplus(self.raw_tau)
        pull = tau[0] * (1 + F.softplus(self.raw_growth) * theta["n_liked"])  # (B, 1)
        return b + weighted_sq_distances(e, (theta["like"], -pull), (theta["dislike"], tau[1]))

    @classmethod
    def from_state(cls, config, tensors):
        """As `MetaLearner.from_state`; a checkpoint from before the growing pull scores as
        it did (g ~ 0)."""
        if "raw_growth" not in tensors:
            tensors = {**tensors, "raw_growth": torch.tensor(GROWTH_OFF)}
        return super().from_state(config, tensors)

    def prototypes(self, ep: Episode) -> Theta:
        """The prototypes of each user of an episode (for explanations)."""
        with torch.no_grad():
            return self.forward_episode(ep)[0]
