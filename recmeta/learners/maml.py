"""MAML: a meta-learned initialisation of the user-specific parameters, adapted to each user by
a few SGD steps on the support, for the whole meta-batch at once on item embeddings computed
once per meta-batch. The inner gradient comes from its closed form (`support_grad`, tested
equal to `torch.func.grad(support_loss)`), made of differentiable operations: training
back-propagates through it for the exact second-order meta-gradient. `inner_grad="autograd"`
uses `vmap(grad(support_loss))` instead (the same gradients, slower: BENCHMARKS.md)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import grad, vmap
from torch.nn import functional as F

from recmeta.learners.backbone import Episode, Theta
from recmeta.learners.meta import MetaLearner

ADAPTED = ("u", "v", "bu")


def support_loss(
    theta: Theta,
    e: Tensor,
    b: Tensor,
    rb: Tensor,
    mu: float,
    items: Tensor,
    values: Tensor,
    mask: Tensor,
    liked: Tensor,
    rate_weight: float,
) -> Tensor:
    """One user's support loss: log-likelihood of the liked support items over the catalogue,
    plus the squared rating error on the support rows."""
    logp = F.log_softmax(b + e @ theta["u"], dim=0)
    rank = -(logp[items] * liked).sum() / liked.sum().clamp(min=1.0)
    if rate_weight == 0:
        return rank
    pred = mu + rb[items] + theta["bu"] + e[items] @ theta["v"]
    rate = (((pred - values) ** 2) * mask).sum() / mask.sum().clamp(min=1.0)
    return rank + rate_weight * rate


def support_grad(theta: Theta, *args: Any) -> Theta:
    """The gradient of `support_loss` for a batch of users, in closed form. It takes
    `support_loss`'s arguments, with a leading user axis on theta and the support rows: u's
    gradient is the softmax-weighted mean item minus the mean liked item; v's and bu's come
    from the rating residuals."""
    e, b, rb, mu, items, values, mask, liked, rate_weight = args
    p = torch.softmax(b + theta["u"] @ e.T, dim=1)
    es = e[items]  # (B, S, d); the sums over support rows below are batched matrix products
    n_liked = liked.sum(1, keepdim=True)
    g = {"u": (n_liked * (p @ e) - torch.bmm(liked[:, None], es)[:, 0]) / n_liked.clamp(min=1.0)}
    if rate_weight == 0:
        return {**g, "v": torch.zeros_like(theta["v"]), "bu": torch.zeros_like(theta["bu"])}
    pred = mu + rb[items] + theta["bu"][:, None] + torch.bmm(es, theta["v"][:, :, None])[..., 0]
    resid = (pred - values) * mask * (2 * rate_weight / mask.sum(1, keepdim=True).clamp(min=1.0))
    return {**g, "v": torch.bmm(resid[:, None], es)[:, 0], "bu": resid.sum(1)}


def maml_update(theta: Theta, grads: Theta, lrs: dict[str, Tensor], first_order: bool) -> Theta:
    """One SGD step on every adapted parameter; first-order MAML stops the gradient's graph."""
    return {k: theta[k] - lrs[k] * (grads[k].detach() if first_order else grads[k]) for k in theta}


class MAML(MetaLearner):
    """MAML over the decision layers (theta = u, v, bu), second-order by default.

    `first_order=True` drops second derivatives; `meta_sgd=True` learns one inner rate per
    parameter element instead of one per parameter group.
    """

    kind = "maml"
    defaults: ClassVar[dict[str, Any]] = {
        "inner_steps": 5,
        "inner_lr": 2.0,  # initial inner rate of the ranking vector u (learned per group)
        "inner_lr_rating": 0.1,  # initial inner rate of the rating parameters v, bu
        "first_order": False,
        "meta_sgd": False,
        "inner_grad": "closed",  # or "autograd": vmap(grad(support_loss)); equal gradients, slower
    }

    def build(self, dim: int) -> None:
        shape = {"u": (dim,), "v": (dim,), "bu": ()}
        init = {
            "u": self.params["inner_lr"],
            "v": self.params["inner_lr_rating"],
            "bu": self.params["inner_lr_rating"],
        }
        self.log_lr = nn.ParameterDict(
            {
                k: nn.Parameter(torch.full(shape[k] if self.params["meta_sgd"] else (), math.log(init[k])))
                for k in ADAPTED
            }
        )

    def inner_rates(self) -> dict[str, Tensor]:
        return {k: self.log_lr[k].exp() for k in ADAPTED}

    def theta(
        self, ep: Episode, e: Tensor, c: Tensor, b: Tensor | None = None, rb: Tensor | None = None
    ) -> Theta:
        bb = self.backbone
        b = bb.item_bias if b is None else b
        rb = bb.rate_bias if rb is None else rb
        theta = bb.theta0(c)
        rate_weight = 0.0 if self.params["shapes"]["implicit"] else self.params["rate_weight"]
        training = torch.is_grad_enabled()
        step = (
            vmap(grad(support_loss), in_dims=(0, None, None, None, None, 0, 0, 0, 0, None))
            if training and self.params["inner_grad"] == "autograd"
            else support_grad  # differentiable: autograd through it gives the second-order terms
        )
        lrs = self.inner_rates()
        first_order = self.params["first_order"] or not training
        for _ in range(self.params["inner_steps"]):
            g = step(
                theta,
                e,
                b,
                rb,
                bb.mu,
                ep.items,
                ep.values,
                ep.mask,
                ep.liked,
                rate_weight,
            )
            theta = maml_update(theta, g, lrs, first_order)
        return theta
