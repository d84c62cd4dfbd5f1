"""Saving image outputs (a generator's samples, an autoencoder's reconstructions) as PNG files.

Used when the model's ``edge_infer.output`` metadata says ``"kind": "image"``: a value ``y``
becomes the pixel ``(y - offset) / scale``, clipped to 0..255. Needs Pillow (the image extra).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .errors import ExtraMissingError, InputError
from .metadata import OutputSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def to_pixels(batch: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """``[N, H, W, C]`` uint8 from the model's image output in its layout."""
    x = np.asarray(batch, dtype=np.float64)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise InputError(f"an image output needs shape [N, H, W, C] or [N, C, H, W], found "
                         f"{list(batch.shape)}")
    layout = spec.layout or ("NCHW" if x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4)
                             else "NHWC")
    if layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    pixels = (x - spec.offset) / spec.scale
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def file_names(sources: list[str], count: int) -> list[str]:
    """``000-digit.png``...: the sample's name, made safe, behind its index."""
    names = []
    for i in range(count):
        source = sources[i] if i < len(sources) else f"sample{i}"
        stem = _UNSAFE.sub("_", Path(source).stem if "." in source else source).strip("_")
        names.append(f"{i:03d}-{stem or 'sample'}.png")
    return names


def save_images(batch: np.ndarray, spec: OutputSpec, folder: str | Path,
                sources: list[str]) -> list[Path]:
    try:
        from PIL import Image
    except ImportError:
        raise ExtraMissingError("writing image outputs as PNG", "image", "PIL") from None
    pixels = to_pixels(batch, spec)
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    channels = pixels.shape[-1]
    if channels not in modes:
        raise InputError(f"an image output needs 1, 3 or 4 channels, found {channels}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in zip(file_names(sources, len(pixels)), pixels):
        path = folder / name
        with atomic_open(path, "wb") as fh:
            Image.fromarray(img[..., 0] if channels == 1 else img, mode=modes[channels]).save(
                fh, format="PNG")
        paths.append(path)
    return paths
