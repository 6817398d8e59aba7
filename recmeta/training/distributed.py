"""The workers of a data-parallel meta-training run, on torch.distributed.

Every worker draws the same meta-batch from the same seeded sampler and takes its own
contiguous share of the users; it divides its loss sums by the whole meta-batch's
normalisers (it holds the batch), and the gradients are summed over workers, so every
worker takes the same optimiser step as one process would on the whole meta-batch.
Rank 0 alone validates (and the others take its verdict), writes checkpoints and
registers models. `Group.solo()` is one process: every collective is a no-op, so the
trainer has one code path.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from recmeta.errors import DataError, WorkerError, env_number

STOP_WAIT = 10.0  # seconds rank 0 waits, after a failure, for a worker to end before ending them
TIMEOUT = timedelta(minutes=30)  # how long a worker waits for the others (rank 0 may fit baselines)


@dataclass(frozen=True)
class Group:
    """This process's place among `world` workers."""

    rank: int = 0
    world: int = 1

    @classmethod
    def solo(cls) -> Group:
        return cls()

    @classmethod
    def join(cls, rank: int, world: int, address: str | None = None) -> Group:
        """Join (or, with world 1, skip) the process group: at `address` (host:port of rank
        0) or, without one, where torchrun's environment says."""
        if world <= 1:
            return cls.solo()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":  # one GPU per worker of a host
                local = int(os.environ.get("LOCAL_RANK", rank))
                torch.cuda.set_device(local % torch.cuda.device_count())
            init = f"tcp://{address}" if address else "env://"
            dist.init_process_group(backend, init_method=init, rank=rank, world_size=world, timeout=TIMEOUT)
        return cls(rank, world)

    @property
    def device(self) -> torch.device:
        """Where this group's collectives take their tensors (nccl: the worker's GPU)."""
        if self.world > 1 and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    @classmethod
    def from_environment(cls) -> Group | None:
        """The group torchrun started this process in (WORLD_SIZE, RANK), else None."""
        world = int(env_number("WORLD_SIZE", 1, 1))
        if world <= 1:
            return None
        rank = int(env_number("RANK", -1, 0))
        if not 0 <= rank < world:
            raise WorkerError(
                f"$RANK must be set, from 0 to $WORLD_SIZE - 1 ({world - 1}), as torchrun sets it"
            )
        return cls.join(rank, world)

    @property
    def root(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This worker's contiguous part of `n` users (the first workers take one more)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum_grads(self, params: list[Tensor], extra: Tensor) -> Tensor:
        """Sum every parameter's gradient and `extra` over workers in one call; a parameter
        keeps no gradient only when no worker gave it one (as in one process). Returns the
        summed `extra`."""
        if self.world == 1:
            return extra
        device = params[0].device
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
        parts = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
        tail = extra.detach().float().reshape(-1).to(device)
        flat = self._sum(torch.cat([*(g.float() for g in parts), has, tail]))
        at, gave = 0, flat[-len(params) - extra.numel() : -extra.numel()].tolist()
        for p, given in zip(params, gave, strict=True):
            n = p.numel()
            p.grad = flat[at : at + n].view_as(p).to(p.dtype) if given else None
            at += n
        return flat[-extra.numel() :].to(extra.device, extra.dtype).reshape(extra.shape)

    def _sum(self, flat: Tensor) -> Tensor:
        """`flat` summed over workers, the same bits on each. gloo's all-reduce took 1.2 ms
        for 150k floats between two processes on a 2-core host, an exchange of the two
        buffers 0.6 ms (BENCHMARKS.md section 11): for a power-of-two world on gloo, log2(world)
        rounds of pairwise exchange (a + b == b + a, so every worker holds the same sum)."""
        if self.world & (self.world - 1) or dist.get_backend() != "gloo" or flat.is_cuda:
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            return flat
        other = torch.empty_like(flat)
        step = 1
        while step < self.world:
            peer = self.rank ^ step
            for request in (dist.isend(flat, peer), dist.irecv(other, peer)):
                request.wait()
            flat.add_(other)
            step <<= 1
        return flat

    def from_root(self, values: list[float]) -> list[float]:
        """Rank 0's `values` on every worker (what the others pass is ignored)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return t.tolist()

    def same_tensors(self, tensors: list[Tensor]) -> None:
        """Give every worker rank 0's values of `tensors` (the starting weights)."""
        if self.world > 1:
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def check_same(self, name: str, value: int) -> None:
        """Raise on every worker unless all of them read the same `value`."""
        if self.world == 1:
            return
        t = torch.tensor([value, -value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if t[0] != -t[1]:
            raise DataError(
                f"the workers read different {name} (the store changed while they started); "
                "run `recmeta train` again"
            )

    def close(self, together: bool = True) -> None:
        """Leave the process group; `together` (after a run that went well on this worker)
        waits for every worker first: one that tore its group down while rank 0 still worked
        was aborted at exit now and then (gloo's "terminate called without an active
        exception"). After a failure a worker leaves at once: the others may be inside a
        collective that would never meet a barrier."""
        if self.world > 1 and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


class Workers:
    """Workers 1..n-1 of a local data-parallel run, started as fresh processes; the calling
    process is rank 0. Each runs `target(*args, group)`; `run` runs rank 0's part."""

    def __init__(self, n: int, target: Callable[..., object], args: tuple) -> None:
        with socket.socket() as s:  # a free port for the rendezvous
            s.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{s.getsockname()[1]}"
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        self.procs = [
            context.Process(target=_run_worker, args=(target, args, rank, n, address), daemon=True)
            for rank in range(1, n)
        ]
        for proc in self.procs:
            proc.start()
        self.joined = threading.Event()
        threading.Thread(target=self._watch_rendezvous, daemon=True).start()
        self.group = Group.join(0, n, address)
        self.joined.set()

    def _watch_rendezvous(self) -> None:
        """Stop this process if a worker dies before everyone joined: rank 0 would wait for
        it until TIMEOUT. (Once joined, gloo reports a lost worker at the next collective.)"""
        while not self.joined.is_set():
            multiprocessing.connection.wait([p.sentinel for p in self.procs], timeout=0.2)
            ended = [rank for rank, p in enumerate(self.procs, 1) if p.exitcode]
            if ended and not self.joined.is_set():
                sys.stderr.write(f"Error: training worker {ended[0]} stopped before the run began\n")
                os._exit(1)

    def run(self, target: Callable[..., object], *args: object) -> object:
        """Rank 0's `target(*args, group)`; then wait for the workers. Should it fail, the
        workers are ended, and a worker's failure is said as such (`WorkerError`)."""
        try:
            result = target(*args, self.group)
        except BaseException as e:
            raise self._stop(e) from None
        self.group.close()
        for proc in self.procs:
            proc.join()
        return result

    def _stop(self, error: BaseException) -> BaseException:
        # A collective that failed (RuntimeError) may mean a worker failed and is still
        # exiting (a loaded host took over 0.5 s): wait for one to end, at most STOP_WAIT.
        # Polled: a spawned worker's sentinel can be ready while it is still ending.
        deadline = time.monotonic() + (STOP_WAIT if isinstance(error, RuntimeError) else 0.5)
        while all(p.exitcode is None for p in self.procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = {rank: p.exitcode for rank, p in enumerate(self.procs, 1) if p.exitcode}
        for proc in self.procs:
            proc.terminate()
            proc.join()
        self.group.close(together=False)
        if isinstance(error, RuntimeError) and ended:
            said = ", ".join(f"worker {rank} (exit code {code})" for rank, code in ended.items())
            return WorkerError(f"{said} stopped, so the run stopped; nothing was registered")
        return error


def _run_worker(target, args, rank: int, world: int, address: str) -> None:
    group = None
    try:
        group = Group.join(rank, world, address)
        target(*args, group)
        group.close()
    except Exception as e:  # said once, without a traceback; rank 0 then stops
        if group is not None:
            group.close(together=False)
        sys.stderr.write(f"Error: training worker {rank}: {e}\n")
        sys.exit(1)
