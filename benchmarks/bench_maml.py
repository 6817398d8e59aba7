"""Meta-training throughput of recmeta's MAML against a learn2learn-style per-task loop.

    python benchmarks/bench_maml.py [--tasks 32] [--steps 5] [--iters 20] [--threads 1 2] [--rounds 3]

Both sides train the same model on the same ML-100K meta-batches, second-order, 5 inner steps.
The reference does what learn2learn's `MAML.clone()` / `adapt()` loop does on this model,
no more: for each task it runs the item encoder and the context once, clones the
initial user parameters, takes `autograd.grad(support loss, create_graph=True)` at every
inner step, and back-propagates that task's query loss. recmeta adapts every task of the
meta-batch at once on item embeddings computed once per meta-batch, with its closed-form
inner gradient (the default) or with `vmap(grad(...))`. The gradients are checked equal
first; then the three run interleaved, `--rounds` times, at each thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from common import machine
from ml100k import load_ml100k

from recmeta import snapshot
from recmeta.learners.backbone import Episode, ratings
from recmeta.learners.maml import MAML, maml_update, support_loss
from recmeta.tasks import Sequences, make_batch, split_users
from recmeta.threads import set_threads
from recmeta.training import fit


def l2l_loss(model: MAML, ep: Episode) -> torch.Tensor:
    """The same meta-loss, one task at a time, as learn2learn computes it."""
    bb = model.backbone
    rw = model.params["rate_weight"]
    b_total = ep.items.shape[0]
    n_pos_total = ep.query_pos.sum()
    n_rows_total = ep.query_mask.sum()
    total = 0.0
    for b in range(b_total):
        one = Episode(**{k: (v[b : b + 1] if v is not None else None) for k, v in vars(ep).items()})
        theta = {k: v.clone() for k, v in bb.theta0(bb.context(one)).items()}  # clone the learner
        lrs = model.inner_rates()
        e = bb.items()  # the encoder once per task
        for _ in range(model.params["inner_steps"]):
            loss = support_loss(
                {k: v[0] for k, v in theta.items()},
                e,
                bb.item_bias,
                bb.rate_bias,
                bb.mu,
                one.items[0],
                one.values[0],
                one.mask[0],
                one.liked[0],
                rw,
            )
            grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
            theta = maml_update(theta, dict(zip(theta, grads, strict=True)), lrs, first_order=False)
        logits = model.logits(theta, e, bb.item_bias)
        pred = ratings(theta, e, bb.rate_bias, bb.mu, one.query_items)
        # weight so that the sum over tasks equals the batched loss exactly
        support = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, one.items, one.mask > 0)
        logp = logits.masked_fill(support, float("-inf")).log_softmax(1)
        rank = -torch.where(one.query_pos > 0, logp, torch.zeros_like(logp)).sum() / n_pos_total
        rate = (((pred - one.query_values) ** 2) * one.query_mask).sum() / n_rows_total
        task_loss = rank + rw * rate
        task_loss.backward()  # learn2learn: backward per task, gradients accumulate
        total += task_loss.item()
    return torch.tensor(total)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_ml100k()
    split = split_users(data, seed=0)
    train = snapshot.restrict(data, split.train)
    model = fit(MAML(epochs=1, inner_steps=args.steps, device="cpu"), train, seed=0)
    seq = Sequences.from_data(train)
    rng = np.random.default_rng(0)
    users = np.flatnonzero(train.counts_per_user() >= 21)

    def meta_batch() -> Episode:
        chosen = rng.choice(users, args.tasks, replace=False)
        k = rng.integers(1, 21, args.tasks)
        return model.episode(make_batch(seq, chosen, k, train.n_items, model.threshold, rng=rng))

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def grads_of(step, ep) -> list[torch.Tensor]:
        model.zero_grad()
        step(ep)
        return [p.grad.clone() for p in params]

    def batched(mode: str):
        def step(ep: Episode) -> None:
            model.params["inner_grad"] = mode
            model.loss(ep).value().backward()

        return step

    sides = {
        "closed form": batched("closed"),
        "vmap(grad)": batched("autograd"),
        "l2l loop": lambda e: l2l_loss(model, e),
    }
    # 1. same gradients
    ep = meta_batch()
    reference = grads_of(sides["l2l loop"], ep)
    for name in ("closed form", "vmap(grad)"):
        got = grads_of(sides[name], ep)
        rel = max(
            float((a - b).abs().max() / (b.abs().max() + 1e-12)) for a, b in zip(got, reference, strict=True)
        )
        print(f"{name}: max relative gradient difference to the l2l loop {rel:.2e}", flush=True)

    # 2. throughput: one optimiser step per meta-batch, the three interleaved
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    episodes = [meta_batch() for _ in range(args.iters)]

    def run(step) -> float:
        step(episodes[0])  # warm-up
        t = time.perf_counter()
        for e in episodes:
            opt.zero_grad()
            step(e)
            opt.step()
        return args.iters * args.tasks / (time.perf_counter() - t)

    print(machine(), f"load average {os.getloadavg()[0]:.2f}")
    results = []
    for threads in args.threads:
        set_threads(threads)
        for r in range(args.rounds):
            tps = {name: run(step) for name, step in sides.items()}
            results.append({"threads": threads, "round": r, "tasks_per_s": tps})
            print(json.dumps(results[-1]), flush=True)
    print(
        "\n| threads | closed form tasks/s | vmap(grad) tasks/s | l2l loop tasks/s "
        "| closed / l2l | vmap / l2l |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        mine = [r["tasks_per_s"] for r in results if r["threads"] == threads]

        def span(values: list[float], digits: int = 0) -> str:
            return f"{min(values):,.{digits}f}-{max(values):,.{digits}f}"

        closed = [m["closed form"] for m in mine]
        vm = [m["vmap(grad)"] for m in mine]
        loop = [m["l2l loop"] for m in mine]
        r1 = [m["closed form"] / m["l2l loop"] for m in mine]
        r2 = [m["vmap(grad)"] / m["l2l loop"] for m in mine]
        print(f"| {threads} | {span(closed)} | {span(vm)} | {span(loop)} | {span(r1, 1)}x | {span(r2, 1)}x |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
