"""Evaluation and calibration samples: one array for a single-input model, or arrays by input
name for a model with several inputs (``--dataset inputs.npz`` holding one array per input).

The helpers let quantization, evaluation and the per-layer comparison treat both alike without
copying the single-input case into a dict everywhere it is sliced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

Samples = Union[np.ndarray, dict[str, np.ndarray]]


def count(samples: Samples) -> int:
    """How many samples."""
    if isinstance(samples, dict):
        return len(next(iter(samples.values())))
    return len(samples)


def rows(samples: Samples, start: int, stop: int) -> Samples:
    """Samples ``start`` to ``stop`` of every input."""
    if isinstance(samples, dict):
        return {name: array[start:stop] for name, array in samples.items()}
    return samples[start:stop]


def feeds(samples: Samples, names: Sequence[str]) -> dict[str, np.ndarray]:
    """An onnxruntime feed: arrays by input name (a single array goes to the first input)."""
    if isinstance(samples, dict):
        return {name: samples[name] for name in names}
    return {names[0]: samples}


def named_arrays(path: str, names: Sequence[str], optional: Sequence[str] = ()
                 ) -> dict[str, np.ndarray]:
    """The arrays of an .npz named after a model's inputs (``names``), with those of
    ``optional`` it holds (the targets, ``y``), all of one number of samples: how a model with
    several inputs takes data, in ``quantize``, ``evaluate`` and ``export --dataset``."""
    import zipfile

    from edge_infer.runtime.errors import UsageError

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path} is not a readable .npz file ({exc})") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        extra = f" (and optionally {', '.join(optional)})" if optional else ""
        raise UsageError(f"{path} has no array for input {', '.join(missing)}; expected "
                         f"{', '.join(names)}{extra}, found {', '.join(arrays) or 'none'}")
    kept = {n: arrays[n] for n in [*names, *optional] if n in arrays}
    if len({len(a) for a in kept.values()}) != 1:
        raise UsageError(f"{path}: the arrays hold different numbers of samples "
                         f"({', '.join(f'{k} {len(v)}' for k, v in kept.items())})")
    return kept


def dataset_for_input(spec: str, shape: Sequence, dtype: np.dtype | None, seed: int = 0,
                      text: object = None) -> object:
    """``load_dataset(spec)`` read as a model input of this shape and type says: an .npz's kind
    from the input's rank and type (the array alone is ambiguous), integer ids in the input's
    own integer type where every value survives the cast (datasets hold int64; a model may take
    int32), and refused when its samples do not fit the input's static dimensions."""
    from dataclasses import replace

    from edge_infer.runtime.errors import UsageError
    from edge_infer.train.datasets import load_dataset
    from edge_infer.train.datasets.files import kind_for_input

    integer = dtype is not None and dtype.kind in "iu"
    rank = len(shape) if shape is not None else 0
    data = load_dataset(spec, seed=seed, text=text, kind=kind_for_input(rank, integer))
    splits = {name: getattr(data, name) for name in ("x_train", "x_val", "x_test")}
    if integer and data.x_test.dtype != dtype and all(
            not a.size or np.iinfo(dtype).min <= a.min() <= a.max() <= np.iinfo(dtype).max
            for a in splits.values()):
        data = replace(data, **{name: a.astype(dtype) for name, a in splits.items()})
    x = data.x_test
    if shape is not None and (len(shape) != x.ndim or any(isinstance(d, int) and d != n
                                   for d, n in zip(shape[1:], x.shape[1:]))):
        raise UsageError(f"{spec} gives inputs of shape {list(x.shape[1:])}, but the model "
                         f"takes {list(shape[1:])}")
    return data
