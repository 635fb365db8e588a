"""What a worker process does around a job: one BLAS thread, the same code as the client.

A worker is a local pool process (`--jobs N`) or a Dask worker (`--scheduler`); the client
side, which decides where jobs run, is `memprop.jobs`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from contextlib import contextmanager
from pathlib import Path

from memprop import __version__

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: The packages whose source makes up memprop (pyproject's package-dir).
PACKAGES = ("memprop", "memprop.model", "memprop.rtl", "memprop.sim", "memprop.sim.tests", "memprop.boards")


@contextmanager
def single_threaded_blas():
    """Workers read the environment when they start: one BLAS thread each, so `jobs` workers use
    `jobs` cores (OpenBLAS threads competing for busy cores ran the jobs about 3x slower)."""
    saved = {var: os.environ.get(var) for var in BLAS_THREAD_VARS}
    os.environ.update({var: "1" for var in BLAS_THREAD_VARS})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var)
            else:
                os.environ[var] = value


@functools.cache
def one_blas_thread_for_good() -> None:
    """One BLAS thread for the rest of this worker process, never restored.

    A Dask worker may run jobs in several threads; a per-job `threadpool_limits` context would
    restore the thread count when one job ends while another still runs (the limit is
    process-wide), and a float product's last bits depend on the thread count.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@functools.cache
def code_digest() -> str:
    """A hash of memprop's Python source as installed here: a worker must run the client's code
    (the version number does not change with every commit), and a journal entry is only taken
    over by the code that wrote it."""
    h = hashlib.sha256(__version__.encode())
    for name in PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        for path in sorted(root.glob("*.py")):      # subpackages are listed in PACKAGES themselves
            h.update(f"\0{name}/{path.name}\0".encode() + path.read_bytes())
    return h.hexdigest()[:16]


def blas_kernels() -> list[str]:
    """The BLAS libraries' CPU kernels (OpenBLAS: OPENBLAS_CORETYPE): float results can differ in
    the last bits between kernels, so a cluster should run one kind."""
    from threadpoolctl import threadpool_info

    return sorted(f"{i.get('internal_api')} {i.get('architecture') or '?'}" for i in threadpool_info()
                  if i.get("user_api") == "blas")


def facts() -> dict:
    """What the client compares between itself and each worker before sending jobs."""
    import numpy

    return {"memprop": __version__, "code": code_digest(), "numpy": numpy.__version__, "blas": blas_kernels()}


class WrongCode(RuntimeError):
    """A worker runs other memprop code than the client."""


def call(fn, args: tuple, code: str | None = None):
    """Run one job in a worker process: `fn(*args)` on one BLAS thread, with the client's code."""
    if code is not None and code != code_digest():
        raise WrongCode(f"worker pid {os.getpid()} runs memprop code {code_digest()}, the client {code}: "
                        f"install the same memprop on every worker")
    one_blas_thread_for_good()
    return fn(*args)
