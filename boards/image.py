"""Hardware images of trained weights: what `memprop export` writes and the host programs.

An image is the content of the engine's weight memories for one hardware Config: the packed
device entry (codes and classes, `Layout.pack_entry`) of every stream position, of every
bias, the update counter t and the seed of the random numbers. It is tied to the design by
the Config fingerprint (checked against the bitstream's fingerprint register before
programming) and to the stream layout by the lane count P (streams differ with P).

Files in the output directory:

- `image.json`: `format`, `fingerprint`, `lanes`, `n`, the entry packing, `updates`, `seed`,
  `codes` (one hex word per stream position, in stream order), `bias` (one per unit) and the
  hardware `config`;
- `codes.hex`, `bias.hex`: the same words, one per line (`$readmemh`), for other tools.

Which weights are accepted (decided here, documented in docs/hostlink.md):

- fixed-point weight files (device codes): only for a hardware Config with the same
  fingerprint (same network, formats and device); the lane count may differ (the image is
  laid out for the target's P);
- float weight files: only on request (`from_float=True`, `--from-float`), programmed into
  the target's devices with `FixedParams.from_float` (write-verify to the nearest codes) for a
  fixed-point Config whose `network` section is the file's. This is an approximation (the
  device levels quantise W and b); the export reports the largest weight error.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memprop.model.config import Config
from memprop.model.fixed import FixedParams
from memprop.model.network import Params
from memprop.model.numerics import Formats
from memprop.model.weights import WeightFileError
from memprop.rtl import hostmap as hm

FORMAT = "memprop-image/1"


class ImageError(ValueError):
    """An image that is unreadable, malformed, or made for another design."""


@dataclass
class Image:
    cfg: Config
    codes: list[int]          # packed entry per stream position
    bias: list[int]           # packed entry per unit
    updates: int
    seed: int

    @property
    def fingerprint(self) -> str:
        return self.cfg.fingerprint

    @property
    def layout(self) -> hm.Layout:
        return hm.Layout(Formats(self.cfg))

    def writes(self) -> list[tuple[int, int]]:
        """(bus address, word) of every write that programs the image, in address order."""
        lay = self.layout
        out = [(hm.address(hm.CODES, lay.code_offset(k)), w) for k, w in enumerate(self.codes)]
        out += [(hm.address(hm.BIAS, i), w) for i, w in enumerate(self.bias)]
        out += [(hm.address(hm.REG, hm.R_UPDATES), self.updates & 0xFFFFFFFF),
                (hm.address(hm.REG, hm.R_SEED), self.seed & 0xFFFFFFFF)]
        return out

    @property
    def checksum(self) -> int:
        """CRC-32 of the image as the engine computes it (`checksum`)."""
        return checksum(self.codes, self.bias, self.updates, self.seed, self.layout.entry_bits)

    def params(self, template: FixedParams | None = None) -> FixedParams:
        """The device codes and classes the image holds (`template`: mask and unstreamed codes)."""
        lay, n = self.layout, self.cfg.network.n
        sch = lay.schedule
        devices = lay.devices
        codes = np.zeros((devices, sch.length), np.int64)
        classes = np.zeros((devices, sch.length), np.int64)
        for k, word in enumerate(self.codes):
            codes[:, k], classes[:, k] = lay.unpack_entry(word)
        if template is None:
            template = FixedParams(np.zeros((devices, n, n), np.int64), np.zeros((devices, n), np.int64),
                                   np.zeros((devices, n, n), np.int64), np.zeros((devices, n), np.int64),
                                   sch.mask.copy())
        out = template.copy()
        out.codes_w = sch.codes_from_image(codes, template.codes_w)
        out.class_w = sch.codes_from_image(classes, template.class_w)
        for i, word in enumerate(self.bias):
            out.codes_b[:, i], out.class_b[:, i] = lay.unpack_entry(word)
        out.updates = self.updates
        return out


def checksum(codes, bias, updates: int, seed: int, entry_bits: int) -> int:
    """The weight checksum (docs/hostlink.md): CRC-32 (zlib's: reflected 0x04C11DB7, init and final
    XOR 0xFFFFFFFF) over every code entry in stream order, then every bias entry, each as
    ceil(entry_bits / 8) bytes little-endian, then the update counter t and the seed, 4 bytes
    little-endian each. The engine computes the same over the memories it holds."""
    width = max(1, -(-entry_bits // 8))
    blob = b"".join(int(w).to_bytes(width, "little") for w in list(codes) + list(bias))
    blob += (int(updates) & 0xFFFFFFFF).to_bytes(4, "little") + (int(seed) & 0xFFFFFFFF).to_bytes(4, "little")
    return zlib.crc32(blob)


def config_differences(have: Config, want: Config, sections=("numerics", "network", "fixed", "device")) -> list[str]:
    """`section.field: have vs want` for every field that differs (for one-line error messages)."""
    out = []
    for section in sections:
        a, b = getattr(have, section), getattr(want, section)
        if section == "numerics":
            if a != b:
                out.append(f"numerics: {a} vs {b}")
            continue
        da, db = a.model_dump(), b.model_dump()
        out += [f"{section}.{k}: {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db.get(k)]
    return out


def image_of(params: FixedParams, cfg: Config, seed: int | None = None) -> Image:
    lay = hm.Layout(Formats(cfg))
    codes = [w for _, w in lay.image(params.codes_w, params.class_w)]
    bias = [lay.pack_entry(params.codes_b[:, i], params.class_b[:, i]) for i in range(cfg.network.n)]
    return Image(cfg, codes, bias, int(params.updates), cfg.train.seed if seed is None else seed)


def from_weights(params, wcfg: Config, target: Config | None, *, from_float: bool = False,
                 source: str = "weights") -> tuple[Image, dict]:
    """The image of a loaded weight file for the hardware Config `target` (None: the file's).

    Returns the image and a summary; raises WeightFileError when the file does not fit.
    """
    if isinstance(params, FixedParams):
        target = wcfg if target is None else target
        if target.numerics != "fixed":
            raise WeightFileError(f"the hardware config must have numerics 'fixed', not {target.numerics!r}")
        if target.fingerprint != wcfg.fingerprint:
            differ = [s for s in ("network", "fixed", "device")
                      if getattr(target, s).model_dump() != getattr(wcfg, s).model_dump()]
            raise WeightFileError(f"{source}: made for config {wcfg.fingerprint}, the hardware config is "
                                  f"{target.fingerprint} (they differ in: {', '.join(differ) or 'numerics'})")
        image = image_of(params, target, seed=wcfg.train.seed)
        return image, {"source": "fixed", "updates": image.updates}
    if not isinstance(params, Params):
        raise WeightFileError(f"{source}: not a weight set ({type(params).__name__})")
    if not from_float:
        raise WeightFileError(f"{source}: float weights (numerics {wcfg.numerics!r}); the hardware holds device codes. "
                              "Train with --numerics fixed, or program the float weights into devices "
                              "with --from-float and a fixed-point --config/--board")
    if target is None or target.numerics != "fixed":
        raise WeightFileError(f"{source}: --from-float needs a fixed-point hardware config (--config or --board)")
    if target.network.model_dump() != wcfg.network.model_dump():
        raise WeightFileError(f"{source}: its network section differs from the hardware config's "
                              "(--from-float programs the same network)")
    fixed = FixedParams.from_float(target, params.W, params.b)
    tables = Formats(target).device
    W, b = fixed.weights(tables)
    scale = 1 << target.fixed.weight_frac
    err = max(float(np.abs(W / scale - params.W * params.mask).max()), float(np.abs(b / scale - params.b).max()))
    return image_of(fixed, target), {"source": "float", "max_weight_error": err}


def write_image(image: Image, out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lay = image.layout
    digits = max(1, -(-lay.entry_bits // 4))
    data = {
        "format": FORMAT, "fingerprint": image.fingerprint, "n": image.cfg.network.n, "lanes": image.cfg.hw.lanes,
        "entry_bits": lay.entry_bits, "code_bits": lay.code_bits, "class_bits": lay.class_bits,
        "devices": lay.devices, "stream_length": len(image.codes), "updates": image.updates, "seed": image.seed,
        "codes": [f"{w:0{digits}x}" for w in image.codes], "bias": [f"{w:0{digits}x}" for w in image.bias],
        "config": json.loads(image.cfg.to_json()),
    }
    paths = {"image": out / "image.json", "codes": out / "codes.hex", "bias": out / "bias.hex"}
    paths["image"].write_text(json.dumps(data, indent=1))
    paths["codes"].write_text("".join(f"{w:0{digits}x}\n" for w in image.codes))
    paths["bias"].write_text("".join(f"{w:0{digits}x}\n" for w in image.bias))
    return paths


def read_image(path: str | Path) -> Image:
    """An image from `image.json` (or its directory), checked against its own config."""
    path = Path(path)
    if path.is_dir():
        path = path / "image.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImageError(f"{path}: format {data.get('format') if isinstance(data, dict) else None!r}, expected {FORMAT!r}")
    try:
        cfg = Config.create(**data["config"])
        codes = [int(w, 16) for w in data["codes"]]
        bias = [int(w, 16) for w in data["bias"]]
        updates, seed = int(data["updates"]), int(data["seed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ImageError(f"{path}: malformed image ({exc})") from None
    if cfg.fingerprint != data.get("fingerprint"):
        raise ImageError(f"{path}: fingerprint {data.get('fingerprint')} does not match its config ({cfg.fingerprint})")
    lay = hm.Layout(Formats(cfg))
    if len(codes) != lay.schedule.length or len(bias) != cfg.network.n:
        raise ImageError(f"{path}: {len(codes)} stream entries and {len(bias)} biases, the design has "
                         f"{lay.schedule.length} and {cfg.network.n}")
    if any(not 0 <= w < 1 << lay.entry_bits for w in codes + bias):
        raise ImageError(f"{path}: an entry does not fit {lay.entry_bits} bits")
    return Image(cfg, codes, bias, updates, seed)


async def program(driver, image: Image) -> None:
    """Write an image into the engine behind `driver` (an EngineDriver), after checking identity."""
    if driver.cfg.fingerprint != image.fingerprint or driver.cfg.hw.lanes != image.cfg.hw.lanes:
        raise ImageError(f"image for config {image.fingerprint} at P={image.cfg.hw.lanes}, the driver is for "
                         f"{driver.cfg.fingerprint} at P={driver.cfg.hw.lanes}")
    await driver.check_identity()
    info = await driver.reg(hm.R_INFO)
    if (info & 0xFF, (info >> 8) & 0xFFF) != (image.cfg.hw.lanes, image.cfg.network.n):
        raise ImageError(f"the engine has P={info & 0xFF}, N={(info >> 8) & 0xFFF}; the image is laid out "
                         f"for P={image.cfg.hw.lanes}, N={image.cfg.network.n}")
    for addr, word in image.writes():
        await driver.bus.write(addr, word)
    flush = getattr(driver.bus, "flush", None)
    if flush is not None:
        await flush()
