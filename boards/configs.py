"""Which Config a board runs: the boards' defaults and the designs built or served on this machine.

A bitstream identifies itself over the link by its Config fingerprint (what the network
computes), its lanes, units and minibatch slots (`R_INFO`) and, from engine version 2 on, a
design id: a hash of its whole Config, training constants included (`rtl/hostmap.py`). The
host needs the Config itself to talk to it (widths, device tables, the learning constants of
the model twin), so the commands that make a design remember its Config here: `memprop
build` and `memprop board serve`. A board whose design is in none of these (or the boards'
defaults) is identified by `--config FILE` (the `config.json` that `memprop build` writes
next to the bitstream).

The registry is a directory of JSON files, `$MEMPROP_CACHE/configs` (default
`~/.cache/memprop/configs`), one per design; deleting it only forgets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from memprop.model.config import Config, ConfigError
from memprop.rtl.hostmap import design_id


def cache_dir() -> Path:
    """`$MEMPROP_CACHE` or `~/.cache/memprop`: the registry and the virtual boards' builds."""
    root = os.environ.get("MEMPROP_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "memprop"


@dataclass(frozen=True)
class Known:
    """A Config this machine knows, and where it came from (a board name, a build directory)."""

    cfg: Config
    source: str
    board: str | None = None
    clock_hz: int | None = None
    extra: dict = field(default_factory=dict)


def remember(cfg: Config, source: str, *, board: str | None = None, clock_hz: int | None = None) -> Path | None:
    """Record `cfg` (a hardware Config) in the registry; returns the file, None if it cannot be written."""
    folder = cache_dir() / "configs"
    path = folder / f"{cfg.fingerprint}-{design_id(cfg)}.json"
    data = {"config": json.loads(cfg.to_json()), "source": source, "board": board, "clock_hz": clock_hz}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        return None          # a read-only home: the user passes --config instead
    return path


def _registered() -> list[Known]:
    folder = cache_dir() / "configs"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text())
            cfg = Config.create(**data["config"])
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            continue         # a damaged entry is skipped, not fatal
        found.append(Known(cfg, data.get("source") or str(path), data.get("board"), data.get("clock_hz")))
    return found


def board_clock_hz(name: str) -> int:
    """The clock a board's design runs at: the board PLL's (`Board.clock_mhz`) when it has one,
    else its oscillator (amaranth-boards `default_clk_frequency`)."""
    from .build import get_board

    board = get_board(name)
    clock = getattr(board, "clock_mhz", None)
    return int(round(clock * 1e6)) if clock else int(board.make_platform().default_clk_frequency)


def board_defaults() -> list[Known]:
    from .build import BOARDS

    return [Known(board.default_config(), f"the {name} default", name, board_clock_hz(name))
            for name, board in BOARDS.items()]


def known(extra: list[Known] = ()) -> list[Known]:
    """Every candidate, most specific first: `extra` (the user's --config), the registry, the defaults."""
    return list(extra) + _registered() + board_defaults()


def matches(cfg: Config, fingerprint: str, lanes: int, n: int, batch: int, design: str | None) -> bool:
    if cfg.numerics != "fixed" or cfg.fingerprint != fingerprint:
        return False
    if design is not None:
        return design_id(cfg) == design
    return (cfg.hw.lanes, cfg.network.n, cfg.train.batch_size) == (lanes, n, batch)
