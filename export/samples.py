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
