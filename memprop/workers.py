"""Process pools for the long experiments (reproduce, sweep)."""

from __future__ import annotations

import os
from contextlib import contextmanager

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
