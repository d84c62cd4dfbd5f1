"""The ``Dataset`` every loader returns, the registry, and the deterministic split.

A dataset is held already preprocessed, exactly as the model sees it: images as float32
``[N, H, W, C]`` in the range the metadata's ``ImagePreprocess`` produces from 0..255 pixels,
text as int64 token ids with the vocabulary in a ``TextPreprocess``, tabular data and
sequences as float32. The preprocessing travels with the run (``model.json``) so that export and
the runtime apply the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_infer.runtime.metadata import ImagePreprocess, TextPreprocess

from ..errors import DatasetError

KINDS = ("image", "tabular", "sequence", "text")
TASKS = ("classification", "regression")


@dataclass
class Dataset:
    """Train/validation/test arrays with what export and the runtime need to know."""

    name: str
    kind: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | TextPreprocess | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"dataset kind must be one of {', '.join(KINDS)}, found {self.kind!r}")
        if self.task not in TASKS:
            raise DatasetError(f"dataset task must be one of {', '.join(TASKS)}, found {self.task!r}")
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise DatasetError(f"{self.name}: x_{part} has {len(x)} samples but y_{part} "
                                   f"has {len(y)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else 1

    @property
    def vocab_size(self) -> int | None:
        pre = self.preprocess
        return len(pre.vocabulary) if isinstance(pre, TextPreprocess) else None

    def summary(self) -> str:
        parts = [f"{self.name}: {self.kind} {self.task}", f"input {list(self.input_shape)}",
                 f"{len(self.x_train)}/{len(self.x_val)}/{len(self.x_test)} train/val/test"]
        if self.labels:
            parts.append(f"{len(self.labels)} classes")
        return ", ".join(parts)


Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    load: Loader
    description: str
    offline: bool = True


DATASETS: dict[str, DatasetEntry] = {}


def register(name: str, description: str, offline: bool = True) -> Callable[[Loader], Loader]:
    """Register a named dataset; the loader takes ``seed`` and returns a :class:`Dataset`."""
    def wrap(fn: Loader) -> Loader:
        DATASETS[name] = DatasetEntry(name, fn, description, offline)
        return fn
    return wrap


def split(x: np.ndarray, y: np.ndarray, seed: int, *, test: float = 0.2, val: float = 0.1,
          stratify: bool = True) -> tuple[np.ndarray, ...]:
    """Deterministic train/val/test split (stratified by class for classification).

    Returns ``x_train, y_train, x_val, y_val, x_test, y_test``. The same seed always gives the
    same split, whatever else the process has drawn from its random generators.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    if n < 3:
        raise DatasetError(f"need at least 3 samples to split into train/val/test, found {n}")
    if stratify and y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        groups = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    else:
        groups = [rng.permutation(n)]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for idx in groups:
        n_test = max(1, int(round(len(idx) * test))) if test > 0 and len(idx) >= 3 else 0
        n_val = max(1, int(round(len(idx) * val))) if val > 0 and len(idx) - n_test >= 2 else 0
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = []
    for name in ("train", "val", "test"):
        idx = rng.permutation(np.concatenate(parts[name]).astype(np.int64))
        out += [x[idx], y[idx]]
    return tuple(out)


def split_train_val(x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.1
                    ) -> tuple[np.ndarray, ...]:
    """When the test split is given: carve the validation set from the training data."""
    x_tr, y_tr, x_val, y_val, x_te, y_te = split(x, y, seed, test=val, val=0.0)
    return (np.concatenate([x_tr, x_val]) if len(x_val) else x_tr,
            np.concatenate([y_tr, y_val]) if len(y_val) else y_tr, x_te, y_te)


def image_preprocess(x: np.ndarray) -> ImagePreprocess:
    """The contract for images stored as float32 in [0, 1] from 0..255 pixels."""
    return ImagePreprocess(size=(int(x.shape[1]), int(x.shape[2])), channels=int(x.shape[3]),
                           layout="NHWC", scale=1 / 255, offset=0.0)


def class_labels(y: np.ndarray, names: list[str] | tuple[str, ...] | None = None
                 ) -> tuple[str, ...]:
    count = int(y.max()) + 1 if len(y) else 0
    if names is not None:
        return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(count))
