"""Model variants tried for issue 12 and not kept: one seed of PROTOCOL.md, the tuned ALS
fitted on the training users (as `recmeta evaluate` fits it), each variant trained from it
for `--max-time` seconds, and ndcg@10 at 1 / 3 / 5 / 10 / 20 support rows on validation
users (at most 1,000 a size) and on test users.

Variants (`--variants`, comma-separated):
- `maml`, `protonet`, `metalstm`: the shipped learners, for reference in the same run;
- `metalstm-direct`: Meta-LSTM's u plus a learned multiple of the mean liked support
  embedding, growing with log(1 + n_liked) (a path that personalises before the LSTM has
  learned anything);
- `metalstm-mean`: Meta-LSTM writing the user's parameters from the mean of its outputs
  over the support rows instead of its last state;
- `metalstm-norm`: Meta-LSTM reading the item embeddings divided by the table's RMS entry
  (unit scale); `metalstm-gain` multiplies them by the fixed sqrt(dim) / init_scale
  instead; `metalstm-norm-gain` also multiplies u's written increment by 1 / (RMS entry x
  sqrt(dim));
- `metalstm-growth`, `maml-growth`: the personal term <u, e_i> weighted by
  1 + g log(1 + n_liked), g learned (ProtoNet's growing pull, on u);
- `ridge`: u from a closed-form implicit-ALS fold-in over the learner's own embeddings
  (confidence and ridge learned, the population prior as the ridge's centre, as in R2-D2,
  Bertinetto et al., ICLR 2019), scored b_i + tau <u, e_i>;
- `protonet-match`: ProtoNet plus a matching term over the liked support items one by one
  (Matching Networks' attention; each liked item pulls its own neighbours);
- `twotable`: u = u0 + the liked support items' rows of a second, input item table started
  equal to the output embeddings (an amortised encoder, as in Mult-DAE), scored
  b_i + tau <u, e_i>;
- `maml-neighbour`: MAML's logits plus a learned, growing multiple of the user's EASE
  scores (needs `--ease-lambda`: EASE fitted once over the items with `--ease-min-count`
  training positives or more);
- `protonet-episodic`, `maml-episodic`: the learner's logits plus s (1 + g log(1 +
  n_liked)) x the user's summed sparse neighbour weights, started from the default
  `episodic` model's weights (band `--episodic-band`, each item's 100 neighbours) and
  meta-trained with the rest (`--set nbr_train=0` holds them; s and g learned); `--mix
  0,0.5` also scores them with the learner's own logits multiplied by 0 and 0.5;
- with `--crossfit S`, any variant meta-trains on a share S of the training users while
  ALS (its start) and the episodic weights are fitted on the others, so that what it
  learns of their worth comes from users whose rows did not build them;
- `als-<factors>`: ALS at that many factors (regularization 10, alpha 10, 8 sweeps), to
  see past the tuning grid's edge;
- `episodic-<items>`: the default `episodic` model fitted over that many items (its
  `max_items`), timed.

`--set key=value` passes a learner parameter to every learner variant (`sampled_above=100000`
trains on the whole catalogue); `--min-rows N` meta-trains on training users with N rows or
more only; `--start-factors N` starts the learners from an ALS at N factors (the tuned
one's regularization, alpha and sweeps); `--table-lr S` steps the item tables at S times
the learning rate (sampled training). `--time-popularity` instead prints, for a timed
log, global popularity against popularity over the training users' positive rows in a
window before, or around, the time of the user's last support row.

python benchmarks/variant_trials.py amazon.db --variants maml,maml-growth --max-time 100
python benchmarks/variant_trials.py ml100k.db --time-popularity
"""

from __future__ import annotations

import argparse
import time
from typing import Any, ClassVar

import numpy as np
import torch
from common import learner_params, protocol_split
from ease_reference import gram, kept_items
from torch import nn
from torch.nn import functional as F

from recmeta import snapshot
from recmeta.evaluate.protocol import score_cell
from recmeta.learners import create
from recmeta.learners.base import mask_support
from recmeta.learners.baselines import ease_weights, liked_matrix
from recmeta.learners.maml import MAML
from recmeta.learners.meta import MetaLearner
from recmeta.learners.metalstm import MetaLSTM
from recmeta.learners.protonet import ProtoNet, softplus_inverse
from recmeta.metrics import ranking_metrics, top_n
from recmeta.tasks import make_batch
from recmeta.training import fit
from recmeta.training import loop as loop_module
from recmeta.training import sampler as sampler_module

SHOTS = (1, 3, 5, 10, 20)
VAL_USERS = 1000
DAY = 86400.0


class Growth:
    """<u, e_i> weighted by 1 + g log(1 + n_liked), g = softplus(raw_growth) learned."""

    def build(self, dim: int) -> None:
        super().build(dim)
        self.raw_growth = nn.Parameter(torch.tensor(-3.0))

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        return {**theta, "n_liked": torch.log1p(ep.liked.sum(1, keepdim=True))}

    def logits(self, theta, e, b):
        return b + (1 + F.softplus(self.raw_growth) * theta["n_liked"]) * (theta["u"] @ e.T)


class MAMLGrowth(Growth, MAML):
    pass


class MetaLSTMGrowth(Growth, MetaLSTM):
    pass


class MetaLSTMDirect(MetaLSTM):
    """u = Meta-LSTM's u + a (1 + g log(1 + n_liked)) mean(liked support embeddings)."""

    def build(self, dim: int) -> None:
        super().build(dim)
        self.raw_direct = nn.Parameter(torch.tensor(softplus_inverse(5.0)))
        self.raw_growth = nn.Parameter(torch.tensor(-3.0))

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        if ep.items.shape[1] == 0:
            return theta
        n = ep.liked.sum(1, keepdim=True)
        mean = torch.bmm(ep.liked[:, None], e[ep.items])[:, 0] / n.clamp(min=1)
        a = F.softplus(self.raw_direct) * (1 + F.softplus(self.raw_growth) * torch.log1p(n))
        return {**theta, "u": theta["u"] + a * mean}


class MetaLSTMMean(MetaLSTM):
    """The user's parameters written from the mean of the LSTM's outputs over the support
    rows instead of its state after the last one (no recency weighting where the rows
    have no order)."""

    def read(self, ep, e):
        out, mask = self.outputs(ep, e)
        return (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class MetaLSTMNorm(MetaLSTM):
    """Meta-LSTM reading the item embeddings at unit scale: divided by the table's RMS
    entry (the ALS start's rows have a mean norm of `init_scale`, 0.1, so each entry is
    about 0.01 and barely moves the LSTM's gates)."""

    def read(self, ep, e):
        return super().read(ep, e / e.detach().pow(2).mean().sqrt().clamp(min=1e-8))


class MetaLSTMGain(MetaLSTM):
    """Meta-LSTM reading the item embeddings times the fixed sqrt(dim) / init_scale (the
    start's rows have norm init_scale, so its entries read at about one)."""

    def read(self, ep, e):
        return super().read(ep, e * (self.backbone.dim**0.5 / self.params["init_scale"]))


class MetaLSTMNormGain(MetaLSTMNorm):
    """`metalstm-norm` with u's written increment at the embeddings' scale too: times
    1 / (RMS entry x sqrt(dim)), so that a unit increment moves a logit by about one."""

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        if ep.items.shape[1] == 0:
            return theta
        prior = self.backbone.theta0(c)["u"]
        gain = 1.0 / (e.detach().pow(2).mean().sqrt().clamp(min=1e-8) * e.shape[1] ** 0.5)
        return {**theta, "u": prior + gain * (theta["u"] - prior)}


class RidgeFold(MetaLearner):
    """u = argmin sum_i c_i (p_i - <u, e_i>)^2 + lam |u - u0|^2 over the catalogue (p_i = 1
    and c_i = 1 + alpha for liked support items, 0 and 1 elsewhere): implicit ALS's fold-in
    on the learner's own embeddings, differentiable through the solve."""

    kind = "ridgefold"
    defaults: dict[str, Any] = {}  # noqa: RUF012

    def build(self, dim: int) -> None:
        self.raw_lam = nn.Parameter(torch.tensor(softplus_inverse(1.0)))
        self.raw_alpha = nn.Parameter(torch.tensor(softplus_inverse(10.0)))
        self.raw_tau = nn.Parameter(torch.tensor(softplus_inverse(10.0)))

    def theta(self, ep, e, c, b=None, rb=None):
        bb = self.backbone
        prior = bb.theta0(c)
        with torch.no_grad():  # the catalogue's Gram matrix (training scores sampled candidates)
            full = bb._encode() if torch.is_grad_enabled() else bb.items()
            gram = full.T @ full
        lam, alpha = F.softplus(self.raw_lam), F.softplus(self.raw_alpha)
        es = e[ep.items] * ep.liked[..., None]
        eye = torch.eye(e.shape[1], dtype=e.dtype, device=e.device)
        a = gram + lam * eye + alpha * torch.bmm(es.transpose(1, 2), es)
        u = torch.linalg.solve(a, (1 + alpha) * es.sum(1) + lam * prior["u"])
        return {**prior, "u": u}

    def logits(self, theta, e, b):
        return b + F.softplus(self.raw_tau) * (theta["u"] @ e.T)


class ProtoNetMatch(ProtoNet):
    """ProtoNet plus a matching term over the liked support items one by one:
    w T log sum_s liked_s exp(-|e_i - e_s|^2 / T) (Matching Networks' attention over the
    support, Vinyals et al., NeurIPS 2016): with a small T each liked item pulls its own
    neighbours, as item kNN does, where a mean prototype blurs several tastes."""

    def build(self, dim: int) -> None:
        super().build(dim)
        self.raw_match = nn.Parameter(torch.tensor(softplus_inverse(0.5)))
        self.raw_temp = nn.Parameter(torch.tensor(softplus_inverse(0.05)))

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        return {**theta, "support": e[ep.items], "liked": ep.liked}

    def logits(self, theta, e, b):
        out = super().logits(theta, e, b)
        support, liked = theta["support"], theta["liked"]
        if support.shape[1] == 0:
            return out
        temp = F.softplus(self.raw_temp)
        ee = (e * e).sum(1)
        best = None
        for s in range(support.shape[1]):  # one (B, N) slice at a time: no (B, S, N) tensor
            es = support[:, s]
            d = ee[None, :] - 2 * es @ e.T + (es * es).sum(1, keepdim=True)
            term = -d / temp + torch.log(liked[:, s : s + 1].clamp(min=1e-30))
            best = term if best is None else torch.logaddexp(best, term)
        has = (liked.sum(1, keepdim=True) > 0).to(out.dtype)
        return out + F.softplus(self.raw_match) * temp * best * has


class GlobalIds:
    """Catalogue ids of an episode's support items while training on sampled candidates
    (where the episode's indices point into the candidates)."""

    _cand = None

    def loss(self, ep, candidates=None, logq=None, rows=None):
        self._cand = candidates
        try:
            return super().loss(ep, candidates, logq, rows)
        finally:
            self._cand = None

    def global_items(self, ep):
        return ep.items if self._cand is None else self._cand[ep.items]


class TwoTable(GlobalIds, MetaLearner):
    """u = u0 + sum over the liked support items of their rows in a second, input item table
    (started equal to the output embeddings, so the start ranks as the start's sum, close
    to ALS's fold-in): an amortised encoder as in Mult-DAE (Liang et al., WWW 2018), whose
    input and output item tables differ, so that what an item says about a user need not
    equal what the user's vector says about the item."""

    kind = "twotable"
    defaults: dict[str, Any] = {"tau0": 10.0}  # noqa: RUF012

    def build(self, dim: int) -> None:
        self.w_in = nn.Parameter(torch.zeros(self.params["shapes"]["n_items"], dim))
        self.raw_tau = nn.Parameter(torch.tensor(softplus_inverse(float(self.params["tau0"]))))

    def setup(self, train, seed: int = 0):
        super().setup(train, seed)
        with torch.no_grad():
            self.w_in.copy_(self.backbone.item_emb.weight)
        return self

    def theta(self, ep, e, c, b=None, rb=None):
        prior = self.backbone.theta0(c)
        if ep.items.shape[1] == 0:
            return prior
        items = self.global_items(ep)
        u = torch.bmm(ep.liked[:, None], self.w_in[items])[:, 0]
        return {**prior, "u": prior["u"] + u}

    def logits(self, theta, e, b):
        return b + F.softplus(self.raw_tau) * (theta["u"] @ e.T)


class Neighbourhood:
    """EASE's item-item weights (Steck, WWW 2019) over the items with `min_count` training
    positives or more, fitted once; `term(items, liked, cand)` is each user's summed rows of
    B over their liked support items, at the items `cand` (global ids; None: all)."""

    def __init__(self, liked, lam: float, min_count: int) -> None:
        keep = kept_items(liked, min_count)
        self.b = torch.from_numpy(ease_weights(gram(liked, keep), lam).astype(np.float32))
        self.pos = torch.full((liked.shape[1],), -1, dtype=torch.long)
        self.pos[torch.from_numpy(keep)] = torch.arange(len(keep))
        self.keep = torch.from_numpy(keep)

    def term(self, items: torch.Tensor, liked: torch.Tensor, cand: torch.Tensor | None) -> torch.Tensor:
        ps = self.pos[items]
        weight = liked * (ps >= 0)
        rows = self.b[ps.clamp(min=0)]  # (B, S, kept)
        if cand is None:
            summed = torch.einsum("bs,bsk->bk", weight, rows)
            out = torch.zeros(len(items), len(self.pos))
            out[:, self.keep] = summed
            return out
        pc = self.pos[cand]
        picked = rows[..., pc.clamp(min=0)] * (pc >= 0)  # (B, S, C)
        return torch.einsum("bs,bsc->bc", weight, picked)


NEIGHBOURS: list[Neighbourhood] = []  # set by --ease-lambda


class MAMLNeighbour(GlobalIds, MAML):
    """MAML plus w (1 + g log(1 + n_liked)) x the user's EASE scores (w, g learned; w
    starts at `nw0`)."""

    defaults: ClassVar[dict[str, Any]] = {**MAML.defaults, "nw0": 10.0}

    def build(self, dim: int) -> None:
        super().build(dim)
        self.raw_nw = nn.Parameter(torch.tensor(softplus_inverse(float(self.params["nw0"]))))
        self.raw_growth = nn.Parameter(torch.tensor(-3.0))

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        items = self.global_items(ep)
        return {**theta, "nb_items": items, "nb_liked": ep.liked}

    def logits(self, theta, e, b):
        out = super().logits(theta, e, b)
        items, liked = theta["nb_items"], theta["nb_liked"]
        if items.shape[1] == 0:
            return out
        n = torch.log1p(liked.sum(1, keepdim=True))
        w = F.softplus(self.raw_nw) * (1 + F.softplus(self.raw_growth) * n)
        return out + w * NEIGHBOURS[0].term(items, liked, self._cand)


EPISODIC: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # set by an episodic variant


def episodic_tables(model, band: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(items + 1, k) neighbour ids and weights of a fitted `Episodic`'s band `band` (row
    `items` and padding point at the id `items`, weight 0), the weights divided by their
    mean magnitude (returned third), so that Adam's steps are relative to them."""
    n = len(model.counts_)
    part = model.similarity_[band * n : (band + 1) * n].tocsr()
    lengths = np.diff(part.indptr)
    k = int(lengths.max()) if len(lengths) else 1
    idx = np.full((n + 1, k), n, dtype=np.int64)
    w = np.zeros((n + 1, k), dtype=np.float32)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(part.nnz) - part.indptr[rows]
    idx[rows, cols] = part.indices
    w[rows, cols] = part.data
    scale = float(np.abs(part.data).mean()) if part.nnz else 1.0
    return torch.from_numpy(idx), torch.from_numpy(w / scale), scale


class EpisodicTerm:
    """A learner's logits plus s (1 + g log(1 + n_liked)) x the user's summed neighbour
    weights over their liked support items: sparse item-item weights started from the
    episodic model's and meta-trained with the rest (s, g learned; s starts at `nw0` times
    the episodic weights' scale)."""

    def build(self, dim: int) -> None:
        super().build(dim)
        idx, w, scale = EPISODIC[0]
        self.register_buffer("nbr_idx", idx.clone())
        self.nbr_w = nn.Parameter(w.clone(), requires_grad=bool(self.params.get("nbr_train", 1)))
        self.raw_nw = nn.Parameter(torch.tensor(softplus_inverse(float(self.params["nw0"]) * scale)))
        self.raw_ngrowth = nn.Parameter(torch.tensor(-3.0))

    def theta(self, ep, e, c, b=None, rb=None):
        theta = super().theta(ep, e, c, b, rb)
        return {**theta, "nb_items": self.global_items(ep), "nb_liked": ep.liked}

    mix = 1.0  # what the learner's own logits are multiplied by (`--mix`, when scoring)

    def logits(self, theta, e, b):
        out = super().logits(theta, e, b) * (1.0 if self.training else self.mix)
        items, liked = theta["nb_items"], theta["nb_liked"]
        if items.shape[1] == 0:
            return out
        n_users, width = out.shape
        n = len(self.nbr_idx) - 1
        lookup = torch.full((n + 1,), width, dtype=torch.long, device=out.device)
        cand = self._cand if self._cand is not None else torch.arange(min(n, width), device=out.device)
        lookup[cand] = torch.arange(len(cand), device=out.device)
        pos = lookup[self.nbr_idx[items]].reshape(n_users, -1)
        w = (self.nbr_w[items] * liked[..., None]).reshape(n_users, -1)
        term = out.new_zeros(n_users, width + 1).scatter_add_(1, pos, w)[:, :width]
        n_liked = torch.log1p(liked.sum(1, keepdim=True))
        return out + F.softplus(self.raw_nw) * (1 + F.softplus(self.raw_ngrowth) * n_liked) * term


class ProtoNetEpisodic(EpisodicTerm, GlobalIds, ProtoNet):
    defaults: ClassVar[dict[str, Any]] = {**ProtoNet.defaults, "nw0": 1.0, "nbr_train": 1}


class MAMLEpisodic(EpisodicTerm, GlobalIds, MAML):
    defaults: ClassVar[dict[str, Any]] = {**MAML.defaults, "nw0": 1.0, "nbr_train": 1}


LEARNERS = {
    "protonet-episodic": ProtoNetEpisodic,
    "maml-episodic": MAMLEpisodic,
    "maml-neighbour": MAMLNeighbour,
    "twotable": TwoTable,
    "maml": MAML,
    "protonet": ProtoNet,
    "metalstm": MetaLSTM,
    "maml-growth": MAMLGrowth,
    "metalstm-growth": MetaLSTMGrowth,
    "metalstm-direct": MetaLSTMDirect,
    "metalstm-mean": MetaLSTMMean,
    "metalstm-norm": MetaLSTMNorm,
    "metalstm-gain": MetaLSTMGain,
    "metalstm-norm-gain": MetaLSTMNormGain,
    "ridge": RidgeFold,
    "protonet-match": ProtoNetMatch,
}


def only_users_with(min_rows: int) -> None:
    """Meta-train on training users with `min_rows` rows or more only."""
    original = sampler_module.Source.of.__func__

    def of(cls, seq, users, share):
        source = original(cls, seq, users, share)
        source.users = source.users[seq.lengths(source.users) >= min_rows]
        return source

    sampler_module.Source.of = classmethod(of)


def table_lr(scale: float) -> None:
    """Step the item tables (sampled training: the lazy Adam) at `scale` times the rate."""
    original = loop_module.lazy_adam_

    def scaled(opt, param, idx, rows, grad):
        group = opt.param_groups[0]
        lr = group["lr"]
        group["lr"] = lr * scale
        try:
            original(opt, param, idx, rows, grad)
        finally:
            group["lr"] = lr

    loop_module.lazy_adam_ = scaled


def learned(model: Any) -> str:
    names = (
        "raw_nw",
        "raw_ngrowth",
        "raw_growth",
        "raw_direct",
        "raw_lam",
        "raw_alpha",
        "raw_tau",
        "raw_match",
        "raw_temp",
    )
    found = {n[4:]: F.softplus(getattr(model, n)).flatten().tolist() for n in names if hasattr(model, n)}
    return " ".join(f"{k}=" + ",".join(f"{x:.3f}" for x in v) for k, v in found.items())


def time_popularity(data, split, seq, threshold: float) -> None:
    """Global popularity against windowed popularity of the training users' positives."""
    train = snapshot.restrict(data, split.train)
    rows = train.values.tocoo()
    times = train.times.tocoo().data
    keep = rows.data >= threshold
    items, stamps = rows.col[keep], times[keep]
    order = np.argsort(stamps)
    items, stamps = items[order], stamps[order]
    overall = np.bincount(items, minlength=data.n_items).astype(np.float64)

    def window(lo: float, hi: float) -> np.ndarray:
        a, b = np.searchsorted(stamps, lo), np.searchsorted(stamps, hi, "right")
        return np.bincount(items[a:b], minlength=data.n_items).astype(np.float64)

    def share(counts: np.ndarray) -> np.ndarray:
        return counts / max(counts.sum(), 1.0)

    for k in SHOTS:
        batch = make_batch(seq, split.test, k, data.n_items, threshold, max_query=None)
        last = np.where(batch.support_mask, batch.support_times, -np.inf).max(1)
        has = batch.query_pos.sum(1) > 0
        out = {}
        variants = {"popular": lambda t: overall}
        for days in (7, 30, 90):
            w = days * DAY
            variants[f"past {days}d"] = lambda t, w=w: window(t - w, t) + 1e-3 * overall
            variants[f"around {days}d"] = lambda t, w=w: window(t - w, t + w) + 1e-3 * overall
            variants[f"past {days}d + popular"] = lambda t, w=w: share(window(t - w, t)) + share(overall)
        for name, scorer in variants.items():
            scores = np.stack([scorer(t) for t in last])
            top = top_n(mask_support(scores, batch), 10)
            out[name] = float(ranking_metrics(top, batch.query_pos > 0, 10)["ndcg@10"][has].mean())
        print(f"K={k}: " + ", ".join(f"{n} {v:.3f}" for n, v in out.items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="maml,maml-growth")
    ap.add_argument("--max-time", type=float, default=100.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--min-rows", type=int, default=2)
    ap.add_argument("--time-popularity", action="store_true")
    ap.add_argument("--ease-lambda", type=float, default=0.0, help="EASE's lambda for maml-neighbour")
    ap.add_argument("--ease-min-count", type=int, default=8, help="training positives an item needs for EASE")
    ap.add_argument("--episodic-band", type=int, default=2, help="episodic band of *-episodic")
    ap.add_argument("--table-lr", type=float, default=1.0, help="the item tables' learning rate, times lr")
    ap.add_argument(
        "--start-factors", type=int, default=0, help="start the learners from ALS at this many factors"
    )
    ap.add_argument(
        "--crossfit",
        type=float,
        default=0.0,
        help="meta-train on this share of the training users; ALS and the episodic weights on the rest",
    )
    ap.add_argument("--mix", default="", help="*-episodic: also score with the learner's logits x these")
    a = ap.parse_args()
    data, threshold, seq, split, train, val = protocol_split(a.db, a.seed)
    base = full = train  # base: the training users ALS and the episodic weights are fitted on
    if a.crossfit:
        users = np.random.default_rng(1000 + a.seed).permutation(split.train)
        n_meta = round(a.crossfit * len(users))
        base, train = snapshot.restrict(data, users[n_meta:]), snapshot.restrict(data, users[:n_meta])
        print(f"cross-fit: {len(users) - n_meta:,} users fit ALS and the episodic weights, {n_meta:,} learn")
    if a.time_popularity:
        time_popularity(data, split, seq, threshold)
        return
    params = learner_params(a.set)
    if a.min_rows > 2:
        only_users_with(a.min_rows)
    if a.table_lr != 1.0:
        table_lr(a.table_lr)
    if a.ease_lambda:
        t0 = time.perf_counter()
        NEIGHBOURS.append(Neighbourhood(liked_matrix(train, threshold), a.ease_lambda, a.ease_min_count))
        print(f"EASE over {len(NEIGHBOURS[0].keep):,} items ({time.perf_counter() - t0:.0f} s)", flush=True)

    def report(name: str, model) -> None:
        parts = []
        for label, users in (("validation", split.validation), ("test", split.test)):
            row = []
            for k in SHOTS:
                chosen = users
                if label == "validation" and len(users) > VAL_USERS:
                    chosen = np.sort(np.random.default_rng(k).choice(users, VAL_USERS, replace=False))
                batch = make_batch(seq, chosen, k, data.n_items, threshold, max_query=None)
                row.append(float(score_cell(model, batch, data, n=10)["ndcg@10"].mean()))
            parts.append(f"{label} " + " / ".join(f"{v:.3f}" for v in row))
        print(f"{name}: " + "; ".join(parts), flush=True)

    t0 = time.perf_counter()
    als = fit(create("als"), base, val, seed=a.seed)
    print(f"tuned ALS ({time.perf_counter() - t0:.0f} s): {als.params}", flush=True)
    report("als (tuned)", als)
    start = als
    if any(v.endswith("-episodic") for v in a.variants.split(",")):
        if a.crossfit:
            report("episodic, every training user", fit(create("episodic"), full, val, seed=a.seed))
        t0 = time.perf_counter()
        episodic = fit(create("episodic"), base, val, seed=a.seed)
        print(f"episodic ({time.perf_counter() - t0:.0f} s): {episodic.params}", flush=True)
        report("episodic", episodic)
        EPISODIC.append(episodic_tables(episodic, a.episodic_band))
    if a.start_factors:
        reg, alpha = als.params["regularization"], als.params["alpha"]
        start = create(
            "als",
            factors=a.start_factors,
            regularization=reg,
            alpha=alpha,
            iterations=als.params["iterations"],
        )
        start = fit(start, train, None, seed=a.seed)
        report(f"start: als-{a.start_factors}", start)
    for name in a.variants.split(","):
        if name.startswith("als-"):
            factors = int(name[4:])
            model = create("als", factors=factors, regularization=10.0, alpha=10.0, iterations=8)
            report(name, fit(model, train, None, seed=a.seed))
            continue
        if name.startswith("episodic-"):
            t0 = time.perf_counter()
            model = fit(create("episodic", max_items=int(name[9:])), base, val, seed=a.seed)
            print(f"{name}: {time.perf_counter() - t0:.1f} s, {model.params}", flush=True)
            report(name, model)
            continue
        model = LEARNERS[name](start=start, max_time=a.max_time, **params)
        t0 = time.perf_counter()
        fit(model, train, val, seed=a.seed)
        took = time.perf_counter() - t0
        print(f"{name}: {took:.0f} s, best epoch {model.best_epoch_} {learned(model)}", flush=True)
        report(name, model)
        for mix in [float(m) for m in a.mix.split(",")] if a.mix and isinstance(model, EpisodicTerm) else []:
            model.mix = mix
            report(f"{name}, the learner's own logits x {mix:g} when scoring", model)


if __name__ == "__main__":
    main()
