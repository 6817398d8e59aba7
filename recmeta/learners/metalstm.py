"""Meta-LSTM: an LSTM reads the support sequence (item, value, time gap) and generates the
user's parameters in one forward pass; no gradient steps when recommending."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from recmeta.learners.backbone import Episode, Theta
from recmeta.learners.meta import MetaLearner


def latest_rows(ep: Episode, m: int) -> Episode:
    """The episode's supports cut to each user's latest `m` rows (rows are left-aligned)."""
    width = ep.items.shape[1]
    if width <= m:
        return ep
    start = (ep.mask.sum(1).long() - m).clamp(min=0)
    idx = start[:, None] + torch.arange(m, device=start.device)
    take = lambda t: t.gather(1, idx)  # noqa: E731
    return replace(
        ep,
        items=take(ep.items),
        values=take(ep.values),
        liked=take(ep.liked),
        mask=take(ep.mask),
        times=take(ep.times),
    )


class MetaLSTM(MetaLearner):
    """theta = prior(context) + W h_T, where h_T is the LSTM state after the last support row."""

    kind = "metalstm"
    defaults: ClassVar[dict[str, Any]] = {"dim": 128, "hidden": 128}

    def build(self, dim: int) -> None:
        hidden = int(self.params["hidden"])
        self.lstm = nn.LSTM(dim + 3, hidden, batch_first=True)
        self.generate = nn.Linear(hidden, 2 * dim + 1)
        nn.init.normal_(self.generate.weight, std=0.01)
        nn.init.zeros_(self.generate.bias)

    def read(self, ep: Episode, e: Tensor) -> Tensor:
        """(B, hidden) state after each user's last support row (zeros for an empty support).

        It reads a user's latest `max_support` rows: the lengths it was meta-trained on (on
        ML-100K validation users with 50 or 100 rows, reading all of them was no better).
        """
        out, mask = self.outputs(ep, e)
        last = (mask.sum(1).long() - 1).clamp(min=0)
        h = out[torch.arange(len(out), device=out.device), last]
        return h * (mask.sum(1, keepdim=True) > 0)

    def outputs(self, ep: Episode, e: Tensor) -> tuple[Tensor, Tensor]:
        """The LSTM's (B, S, hidden) outputs over each user's latest `max_support` rows,
        and the (B, S) mask of the rows they read."""
        ep = latest_rows(ep, self.params["max_support"])
        gaps = torch.diff(ep.times, dim=1, prepend=ep.times[:, :1]).clamp(min=0)
        x = torch.cat(
            [
                e[ep.items],
                self.backbone.norm_values(ep.values)[..., None],
                ep.liked[..., None],
                torch.log1p(gaps / 3600.0)[..., None],
            ],
            dim=-1,
        )
        out, _ = self.lstm(x * ep.mask[..., None])
        return out, ep.mask

    def theta(
        self, ep: Episode, e: Tensor, c: Tensor, b: Tensor | None = None, rb: Tensor | None = None
    ) -> Theta:
        bb = self.backbone
        prior = bb.theta0(c)
        if ep.items.shape[1] == 0:
            return prior
        g = self.generate(self.read(ep, e))
        d = bb.dim
        return {
            "u": prior["u"] + g[:, :d],
            "v": prior["v"] + g[:, d : 2 * d],
            "bu": prior["bu"] + g[:, 2 * d],
        }
