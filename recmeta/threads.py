"""How many threads the math uses: torch's intra-op pool and the BLAS libraries (numpy,
scipy, implicit). One place sets both, for the whole process.

Defaults: training and evaluation use torch's default (the machine's cores); a single
recommendation uses one thread, since its matrices are small and a busy host punishes
oversubscription (BENCHMARKS.md). `--threads N` or `RECMETA_THREADS` overrides both.
"""

from __future__ import annotations

import os

from recmeta.errors import DataError


def most_parallel() -> int:
    """The most threads, or worker processes, one run takes on this machine: twice its
    cores, and at least 4. More only queue for the same cores (and a typo such as
    --workers 100000 would start that many processes)."""
    return max(4, 2 * (os.cpu_count() or 1))


def check_parallel(option: str, n: int) -> None:
    """`n` threads or workers for `option`, at most `most_parallel()`."""
    if n > most_parallel():
        raise DataError(
            f"{option} {n:,}: at most {most_parallel()} on this machine ({os.cpu_count() or 1} cores); "
            "each one shares the same cores"
        )


def set_threads(n: int) -> None:
    """Use `n` threads in torch and in every BLAS library loaded now or later."""
    check_parallel("--threads", n)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # libraries loaded later, and child processes, read these
    import torch

    torch.set_num_threads(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # libraries already loaded (numpy's BLAS); stays in force
