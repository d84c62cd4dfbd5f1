"""Array inputs: ``.npy``, ``.npz``, ``.json``, numeric ``.csv``/``.tsv``, and standard input."""

from __future__ import annotations

import io
import os
from typing import IO, Any

import numpy as np

from ..errors import InputError
from .base import Batch, LoadContext, sample_names, suffix

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def _single_input(ctx: LoadContext, source: str) -> str:
    names = ctx.signature.input_names
    if len(names) != 1:
        raise InputError(f"{source} holds one array but the model takes {len(names)} inputs "
                         f"({', '.join(names)}); use an .npz or a JSON object keyed by input name")
    return names[0]


def _npy(data: IO[bytes] | str, source: str, ctx: LoadContext) -> Batch:
    try:
        array = np.load(data, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{source} is not a valid .npy file ({exc})") from None
    arrays = {_single_input(ctx, source): array}
    return Batch(arrays, sample_names(source, ctx, arrays))


def _npz(data: IO[bytes] | str, source: str, ctx: LoadContext) -> Batch:
    import zipfile

    try:
        with np.load(data, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{source} is not a valid .npz file ({exc})") from None
    if not arrays:
        raise InputError(f"{source} holds no arrays")
    names = ctx.signature.input_names
    if len(arrays) == 1 and len(names) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}  # arr_0 or any single key
    return Batch(arrays, sample_names(source, ctx, arrays))


def load_npy(path: str, ctx: LoadContext) -> Batch:
    return _npy(path, os.path.basename(path), ctx)


def load_npz(path: str, ctx: LoadContext) -> Batch:
    return _npz(path, os.path.basename(path), ctx)


def _json_value(value: Any, source: str, ctx: LoadContext) -> Batch:
    text = ctx.text
    if text is not None and isinstance(value, (str, list)) and _all_strings(value):
        from .text import encode_texts

        items = [value] if isinstance(value, str) else list(value)
        return encode_texts(items, [f"{source}[{i}]" for i in range(len(items))], ctx)
    if isinstance(value, dict):
        arrays = {k: _json_array(v, f"{source}: {k!r}") for k, v in value.items()}
    elif isinstance(value, (list, int, float, bool)):
        arrays = {_single_input(ctx, source): _json_array(value, source)}
    else:
        raise InputError(f"{source}: expected a nested list of numbers or an object keyed by "
                         f"input name, found {type(value).__name__}")
    return Batch(arrays, sample_names(source, ctx, arrays), cast="literal")


def _all_strings(value: Any) -> bool:
    return isinstance(value, str) or (bool(value) and all(isinstance(v, str) for v in value))


def _json_array(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:
        raise InputError(f"{where}: the nested lists are ragged; every row must have the same "
                         "length") from None
    if array.dtype.kind not in "biufU":
        raise InputError(f"{where}: expected numbers, found {array.dtype} values")
    return array


def load_json(path: str, ctx: LoadContext) -> Batch:
    import json

    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{name} is not valid JSON ({exc})") from None
    return _json_value(value, name, ctx)


def load_csv(path: str, ctx: LoadContext) -> Batch:
    """Numeric rows, one sample a row (a header line of names is skipped)."""
    delimiter = "\t" if suffix(path) == ".tsv" else ","
    source = os.path.basename(path)
    with open(path, encoding="utf-8") as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    if lines and not _numeric_row(lines[0], delimiter):
        lines = lines[1:]
    try:
        rows = [[float(cell) for cell in line.split(delimiter)] for line in lines]
        array = np.asarray(rows)
    except ValueError as exc:
        raise InputError(f"{source}: expected numeric rows separated by {delimiter!r} "
                         f"({exc})") from None
    if array.ndim != 2 or not array.size:
        raise InputError(f"{source}: expected rows of numbers, all of one length")
    name = _single_input(ctx, source)
    spec = ctx.signature.input(name)
    if spec.shape and len(spec.shape) > 2:
        array = array.reshape((array.shape[0], *[d if isinstance(d, int) else -1
                                                 for d in spec.shape[1:]]))
    arrays = {name: array}
    return Batch(arrays, [f"{source}:{i + 1}" for i in range(len(array))], cast="literal")


def _numeric_row(line: str, delimiter: str) -> bool:
    try:
        [float(c) for c in line.split(delimiter)]
    except ValueError:
        return False
    return True


def load_stdin(stream: IO[bytes], ctx: LoadContext) -> Batch:
    """Standard input: ``.npy`` or ``.npz`` bytes, or JSON text."""
    data = stream.read()
    if not data:
        raise InputError("standard input is empty; expected .npy bytes or JSON")
    if data.startswith(NPY_MAGIC):
        return _npy(io.BytesIO(data), "stdin", ctx)
    if data.startswith(ZIP_MAGIC):
        return _npz(io.BytesIO(data), "stdin", ctx)
    import json

    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"standard input is neither .npy bytes nor JSON ({exc})") from None
    return _json_value(value, "stdin", ctx)
