"""Job functions for the cluster tests (module level, so that worker processes can import them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square_after(x: int, seconds: float = 0.0) -> dict:
    time.sleep(seconds)
    return {"x": x, "square": x * x, "pid": os.getpid()}


def die_once(x: int, marker: str) -> dict:
    """Kill the worker process running it the first time (a crash mid-job), then a pure result."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"x": x, "square": x * x}


def interrupt_at(x: int, stop: int, marker: str) -> int:
    """Ctrl-C while job `stop` runs, as long as `marker` exists."""
    if x == stop and Path(marker).exists():
        raise KeyboardInterrupt
    return x * x


def fail(x: int) -> int:
    raise ArithmeticError(f"job {x} failed")
