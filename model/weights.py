"""Weight files: .npz with the weights and everything needed to trust them later.

A file records the full Config (so its fingerprint can be compared), the algorithm,
epochs, seed and package version. Loading checks all of it and names what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .config import Config, ConfigError
from .fixed import FixedParams
from .masks import connectivity
from .network import Params
from .numerics import CARRY_FRAC, Formats

FORMAT = "memprop-weights/1"


class WeightFileError(ValueError):
    """A weight file that is unreadable, incomplete, or made for another configuration."""


FIXED_ARRAYS = ("codes_w", "codes_b", "class_w", "class_b")
#: fixed.rounding "carry": each synapse's and bias's pulse remainder (files from before them have none: zero)
CARRY_ARRAYS = ("carry_w", "carry_b")


def check_path(path: str | Path) -> Path:
    """Fail before any work is done when the output name cannot be a weight file."""
    path = Path(path)
    if path.suffix != ".npz":
        raise WeightFileError(f"{path}: weight files are .npz")
    return path


def save(path: str | Path, params: Params | FixedParams, cfg: Config, **meta) -> Path:
    """Float files hold W and b; fixed-point files hold the device level codes and classes."""
    from memprop import __version__

    path = check_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fixed = isinstance(params, FixedParams)
    if fixed != (cfg.numerics == "fixed"):
        raise WeightFileError(f"{path}: {type(params).__name__} weights with numerics={cfg.numerics!r}")
    info = {"format": FORMAT, "version": __version__, "algo": cfg.train.algo, "epochs": cfg.train.epochs,
            "seed": cfg.train.seed, "fingerprint": cfg.fingerprint, "numerics": cfg.numerics, **meta}
    if fixed:
        arrays = {name: getattr(params, name) for name in FIXED_ARRAYS + CARRY_ARRAYS}
        arrays["updates"] = np.array(params.updates)
    else:
        arrays = {"W": params.W, "b": params.b}
    np.savez(path, mask=params.mask, config=np.array(cfg.to_json()), meta=np.array(json.dumps(info)), **arrays)
    return path


def load(path: str | Path) -> tuple[Params | FixedParams, Config, dict]:
    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"{path}: no such weight file")
    try:
        with open(path, "rb") as fh:  # our own handle: closed even when numpy fails half-way
            loaded = np.load(fh, allow_pickle=False)
            if isinstance(loaded, np.ndarray):  # a plain .npy array, not an archive
                data = None
            else:
                with loaded as z:
                    data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: truncated/corrupt zip
        raise WeightFileError(f"{path}: not a readable .npz weight file ({exc})") from None
    if data is None:
        raise WeightFileError(f"{path}: holds a single .npy array, not a .npz weight file")
    if not {"config", "meta"} <= set(data):
        raise WeightFileError(f"{path}: missing config/meta; not a memprop weight file")
    try:
        meta = json.loads(str(data["meta"]))
        cfg = Config.from_json(str(data["config"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise WeightFileError(f"{path}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise WeightFileError(f"{path}: corrupt metadata (expected a JSON object, got {type(meta).__name__})")
    if meta.get("format") != FORMAT:
        raise WeightFileError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("fingerprint") != cfg.fingerprint:
        raise WeightFileError(f"{path}: config fingerprint {meta.get('fingerprint')} does not match its "
                              f"stored config ({cfg.fingerprint}); the file was edited or is corrupt")
    needed = {"mask", *(FIXED_ARRAYS + ("updates",) if cfg.numerics == "fixed" else ("W", "b"))}
    missing = needed - set(data)
    if missing:
        raise WeightFileError(f"{path}: missing {sorted(missing)}; not a memprop weight file")
    if cfg.numerics == "fixed":
        return _fixed_params(path, data, cfg), cfg, meta
    n = cfg.network.n
    W, b, mask = data["W"], data["b"], data["mask"].astype(bool)
    if W.shape != (n, n) or b.shape != (n,) or mask.shape != (n, n):
        raise WeightFileError(f"{path}: arrays W{W.shape} b{b.shape} do not fit n={n}")
    if not np.array_equal(W, W.T):
        raise WeightFileError(f"{path}: W is not symmetric")
    if np.any(W[~mask] != 0):
        raise WeightFileError(f"{path}: W has weights outside its connectivity mask")
    return Params(W=W.astype(np.float64), b=b.astype(np.float64), mask=mask), cfg, meta


def _fixed_params(path: Path, data: dict, cfg: Config) -> FixedParams:
    """Level codes and classes, checked against the device tables of the stored config."""
    tables = Formats(cfg).device
    n, devices = cfg.network.n, tables.devices
    shapes = {"codes_w": (devices, n, n), "codes_b": (devices, n), "class_w": (devices, n, n),
              "class_b": (devices, n)}
    for name, shape in shapes.items():
        if data[name].shape != shape or not np.issubdtype(data[name].dtype, np.integer):
            raise WeightFileError(f"{path}: {name} is {data[name].dtype}{data[name].shape}, "
                                  f"expected integers of shape {shape}")
    mask = data["mask"].astype(bool)
    if not np.array_equal(mask, connectivity(cfg.network)):
        raise WeightFileError(f"{path}: connectivity mask does not match its config")
    for name in ("codes_w", "codes_b"):
        if data[name].min() < 0 or data[name].max() >= tables.levels:
            raise WeightFileError(f"{path}: {name} has codes outside 0..{tables.levels - 1}")
    for name in ("class_w", "class_b"):
        if data[name].min() < 0 or data[name].max() >= tables.classes:
            raise WeightFileError(f"{path}: {name} has device classes outside 0..{tables.classes - 1}")
    for name in ("codes_w", "class_w"):
        if not np.array_equal(data[name], np.swapaxes(data[name], 1, 2)):
            raise WeightFileError(f"{path}: {name} is not symmetric")
    carries = {}
    for name, shape in (("carry_w", (n, n)), ("carry_b", (n,))):
        if name not in data:
            continue
        value = data[name]
        if value.shape != shape or not np.issubdtype(value.dtype, np.integer):
            raise WeightFileError(f"{path}: {name} is {value.dtype}{value.shape}, expected integers of shape {shape}")
        if np.abs(value).max(initial=0) >= 1 << CARRY_FRAC:
            raise WeightFileError(f"{path}: {name} holds carries of a whole pulse or more (|carry| < 2^{CARRY_FRAC})")
        if value.any() and cfg.fixed.rounding != "carry":
            raise WeightFileError(f"{path}: {name} is not zero, but fixed.rounding is {cfg.fixed.rounding!r}")
        carries[name] = value.astype(np.int64)
    return FixedParams(codes_w=data["codes_w"].astype(np.int64), codes_b=data["codes_b"].astype(np.int64),
                       class_w=data["class_w"].astype(np.int64), class_b=data["class_b"].astype(np.int64),
                       mask=mask, updates=int(data["updates"]), **carries)
