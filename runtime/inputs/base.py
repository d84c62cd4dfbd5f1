"""The loader registry and the code that merges loaded samples into one batch."""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Callable

import numpy as np

from ..errors import InputError, UnknownNameError
from ..metadata import ImagePreprocess, ModelMetadata, TextPreprocess
from ..records import Record
from ..signature import CastPolicy, Signature


class Batch(Record):
    """Arrays keyed by input name (first axis: samples), a name per sample, the cast policy."""

    arrays: dict[str, np.ndarray]
    sources: list[str]
    cast: CastPolicy = "safe"


class LoadContext(Record):
    """What loaders need to know about the model, and the user's overrides."""

    signature: Signature
    metadata: ModelMetadata
    image: ImagePreprocess | None = None  # metadata merged with command-line overrides
    stdin: IO[bytes] | None = None

    @property
    def text(self) -> TextPreprocess | None:
        pre = self.metadata.preprocess
        return pre if isinstance(pre, TextPreprocess) else None


# Paths are plain strings on the run path: pathlib (with the urllib.parse and ipaddress it
# imports) costs ~6 ms of a 0.25 s cold start.
Loader = Callable[[str, LoadContext], Batch]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm",
                  ".tif", ".tiff", ".webp")

# suffix -> loader, or "module:function" inside this package, imported on first use so that
# running on an .npy never imports the image or text code.
LOADERS: dict[str, Loader | str] = {
    ".npy": "arrays:load_npy", ".npz": "arrays:load_npz", ".json": "arrays:load_json",
    ".csv": "arrays:load_csv", ".tsv": "arrays:load_csv", ".txt": "text:load_txt",
    **{suffix: "images:load_image" for suffix in IMAGE_SUFFIXES},
}


def register(*suffixes: str) -> Callable[[Loader], Loader]:
    """Register a loader for file suffixes (lower case, with the dot)."""
    def wrap(fn: Loader) -> Loader:
        for suffix in suffixes:
            LOADERS[suffix] = fn
        return fn
    return wrap


def get_loader(suffix: str) -> Loader | None:
    entry = LOADERS.get(suffix)
    if isinstance(entry, str):
        import importlib

        module, name = entry.split(":")
        entry = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return entry


def known_suffixes() -> list[str]:
    return sorted(LOADERS)


def suffix(path: str) -> str:
    """The lower-case extension with its dot (``""`` for none), as ``Path.suffix.lower()``."""
    return os.path.splitext(path)[1].lower()


def folder_images(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        paths = sorted(e.path for e in entries
                       if e.is_file() and suffix(e.name) in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"folder {folder} holds no image files (looked for "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    return paths


def image_paths(args: list[str]) -> list[str] | None:
    """Every image named by ``args`` (folders expanded), or None unless all are images."""
    paths: list[str] = []
    for arg in args:
        if arg != "-" and os.path.isdir(arg):
            paths.extend(folder_images(arg))
        elif os.path.isfile(arg) and suffix(arg) in IMAGE_SUFFIXES:
            paths.append(arg)
        else:
            return None
    return paths


_RANDOM = re.compile(r"random:(\d+)(?::(\d+))?$")


def random_inputs(count: int, seed: int, ctx: LoadContext) -> Batch:
    """Standard normal samples for every input, e.g. a generator's latent vectors."""
    if count < 1:
        raise InputError(f"random:N needs N >= 1, found {count}")
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in ctx.signature.inputs:
        dims = (spec.shape or ())[1:]
        if spec.shape is None or not all(isinstance(d, int) for d in dims):
            raise InputError(f"random:N needs input {spec.name!r} to have fixed dimensions "
                             f"after the batch, found {spec.describe()}")
        if spec.dtype is None or spec.dtype.kind != "f":
            raise InputError(f"random:N makes float noise; input {spec.name!r} takes {spec.type}")
        arrays[spec.name] = rng.standard_normal((count, *dims)).astype(spec.dtype)
    return Batch(arrays, [f"random{i}" for i in range(count)])


def _one_argument(arg: str, ctx: LoadContext) -> Batch:
    match = _RANDOM.match(arg)
    if match and not os.path.exists(arg):
        return random_inputs(int(match.group(1)), int(match.group(2) or 0), ctx)
    if arg == "-":
        from .arrays import load_stdin

        return load_stdin(ctx.stdin or sys.stdin.buffer, ctx)
    if os.path.isdir(arg):
        from .images import load_images

        return load_images(folder_images(arg), ctx)
    if os.path.isfile(arg):
        loader = get_loader(suffix(arg))
        if loader is None:
            raise UnknownNameError("input file type", suffix(arg) or os.path.basename(arg),
                                   known_suffixes())
        return loader(arg, ctx)
    if ctx.text is not None:
        from .text import encode_texts

        return encode_texts([arg], [_short(arg)], ctx)
    raise InputError(f"input {arg} does not exist; expected a file (.npy, .npz, .json, .csv, "
                     "an image, .txt), a folder of images, random:N, or '-' for standard input")


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def to_batched(ctx: LoadContext, name: str, array: np.ndarray) -> np.ndarray:
    """Add the batch axis to a single sample, so samples from several files can be stacked."""
    spec = ctx.signature.input(name)
    if spec.shape is not None and array.ndim == len(spec.shape) - 1 and spec.batch_like:
        return array[np.newaxis, ...]
    return array


def load_inputs(args: list[str], ctx: LoadContext) -> Batch:
    """Load every argument and merge the samples into one batch."""
    if not args:
        raise InputError("no input given; pass a file, a folder of images, text, or '-'")
    images = image_paths(args)
    if images is not None:  # all images: decode them as one batch with one plan
        from .images import load_images

        return load_images(images, ctx)
    batches = [_one_argument(arg, ctx) for arg in args]
    if len(batches) == 1:
        return batches[0]
    names = list(batches[0].arrays)
    for arg, b in zip(args[1:], batches[1:]):
        if list(b.arrays) != names:
            raise InputError(f"input {arg} holds {', '.join(b.arrays)}, but {args[0]} holds "
                             f"{', '.join(names)}; every input file must feed the same inputs")
    merged: dict[str, np.ndarray] = {}
    for name in names:
        parts = [to_batched(ctx, name, b.arrays[name]) for b in batches]
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            listed = ", ".join(f"{os.path.basename(a)}: {list(p.shape)}"
                               for a, p in zip(args, parts))
            raise InputError(f"input {name!r}: the samples do not have one shape and cannot be "
                             f"batched ({listed})")
        merged[name] = np.concatenate(parts, axis=0)
    sources = [s for b in batches for s in b.sources]
    cast: CastPolicy = "literal" if any(b.cast == "literal" for b in batches) else "safe"
    return Batch(merged, sources, cast)


def sample_names(stem: str, ctx: LoadContext, arrays: dict[str, np.ndarray]) -> list[str]:
    """``file.npy[0]``, ``file.npy[1]``... one per sample (a single sample keeps the bare name)."""
    count = batch_count(ctx, arrays)
    return [stem] if count == 1 else [f"{stem}[{i}]" for i in range(count)]


def batch_count(ctx: LoadContext, arrays: dict[str, np.ndarray]) -> int:
    for name, array in arrays.items():
        try:
            spec = ctx.signature.input(name)
        except InputError:
            continue
        if spec.shape is None or not spec.batch_like:
            return 1
        if array.ndim == len(spec.shape) - 1:
            return 1
        return int(array.shape[0]) if array.ndim else 1
    return 1
