"""ProtoNet: a user's preference prototypes are means of the embedded support items, shrunk
toward learned population prototypes; the catalogue is scored by distance to them."""

from __future__ import annotations

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


class ProtoNet(MetaLearner):
    """Liked and disliked prototypes (and a prototype of rating deviations for explicit data).

    score_i = b_i - tau_like * |e_i - p_like|^2 + tau_dislike * |e_i - p_dislike|^2
    """

    kind = "protonet"
    defaults: ClassVar[dict[str, Any]] = {"prior_strength": 2.0}

    def build(self, dim: int) -> None:
        self.dislike_prior = nn.Linear(dim, dim)
        nn.init.zeros_(self.dislike_prior.weight)
        nn.init.zeros_(self.dislike_prior.bias)
        s = float(self.params["prior_strength"])
        inv = lambda x: float(torch.log(torch.expm1(torch.tensor(x))))  # noqa: E731
        self.raw_strength = nn.Parameter(torch.full((3,), inv(s)))
        self.raw_tau = nn.Parameter(torch.tensor([inv(1.0), inv(0.5)]))

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
        dev = (ep.values - bb.mu - rb[ep.items]) * ep.mask
        n = ep.mask.sum(1)
        # rating-deviation prototype: deviations weigh the embedded items, over the row count
        v = (torch.bmm(dev[:, None], es)[:, 0] + strength[2] * prior["v"]) / (n[:, None] + strength[2])
        bu = (dev.sum(1) + strength[2] * prior["bu"]) / (n + strength[2])
        return {"like": like, "dislike": dislike, "v": v, "bu": bu}

    def logits(self, theta: Theta, e: Tensor, b: Tensor) -> Tensor:
        tau = F.softplus(self.raw_tau)
        return b + weighted_sq_distances(e, (theta["like"], -tau[0]), (theta["dislike"], tau[1]))

    def prototypes(self, ep: Episode) -> Theta:
        """The prototypes of each user of an episode (for explanations)."""
        with torch.no_grad():
            return self.forward_episode(ep)[0]
