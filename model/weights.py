"""Weight files: .npz with the weights and everything needed to trust them later.

A file records the full Config (so its fingerprint can be compared), the algorithm,
epochs, seed and package version. Loading checks all of it and names what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import Config, ConfigError
from .network import Params

FORMAT = "memprop-weights/1"


class WeightFileError(ValueError):
    """A weight file that is unreadable, incomplete, or made for another configuration."""


def save(path: str | Path, params: Params, cfg: Config, **meta) -> Path:
    from memprop import __version__

    path = Path(path)
    if path.suffix != ".npz":
        raise WeightFileError(f"{path}: weight files are .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"format": FORMAT, "version": __version__, "algo": cfg.train.algo, "epochs": cfg.train.epochs,
            "seed": cfg.train.seed, "fingerprint": cfg.fingerprint, "numerics": "float", **meta}
    np.savez(path, W=params.W, b=params.b, mask=params.mask,
             config=np.array(cfg.to_json()), meta=np.array(json.dumps(info)))
    return path


def load(path: str | Path) -> tuple[Params, Config, dict]:
    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"{path}: no such weight file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise WeightFileError(f"{path}: not a readable .npz weight file ({exc})") from None
    missing = {"W", "b", "mask", "config", "meta"} - set(data)
    if missing:
        raise WeightFileError(f"{path}: missing {sorted(missing)}; not a memprop weight file")
    try:
        meta = json.loads(str(data["meta"]))
        cfg = Config.from_json(str(data["config"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise WeightFileError(f"{path}: corrupt metadata ({exc})") from None
    if meta.get("format") != FORMAT:
        raise WeightFileError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("fingerprint") != cfg.fingerprint:
        raise WeightFileError(f"{path}: config fingerprint {meta.get('fingerprint')} does not match its "
                              f"stored config ({cfg.fingerprint}); the file was edited or is corrupt")
    n = cfg.network.n
    W, b, mask = data["W"], data["b"], data["mask"].astype(bool)
    if W.shape != (n, n) or b.shape != (n,) or mask.shape != (n, n):
        raise WeightFileError(f"{path}: arrays W{W.shape} b{b.shape} do not fit n={n}")
    if not np.array_equal(W, W.T):
        raise WeightFileError(f"{path}: W is not symmetric")
    if np.any(W[~mask] != 0):
        raise WeightFileError(f"{path}: W has weights outside its connectivity mask")
    return Params(W=W.astype(np.float64), b=b.astype(np.float64), mask=mask), cfg, meta
