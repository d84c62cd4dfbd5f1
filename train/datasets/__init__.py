"""Datasets by the spec a user types: a registered name, ``keras:NAME``, or a path.

``digits`` (scikit-learn's bundled digits) is the offline default; ``xor``, ``moons``,
``sine`` and ``waves`` are generated; ``keras:mnist`` and friends download when online; a path
to an ``.npz``, a folder of class sub-folders, or a ``.csv``/``.tsv`` of ``label,text`` rows
brings the user's own data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_infer.runtime.errors import did_you_mean

from ..errors import DatasetError
from . import builtin  # noqa: F401  (registers the built-in datasets)
from .base import DATASETS, Dataset, register, split
from .keras_sets import KERAS_DATASETS

if TYPE_CHECKING:
    from edge_infer.runtime.metadata import TextPreprocess

__all__ = ["DATASETS", "KERAS_DATASETS", "Dataset", "known_specs", "load_dataset", "register",
           "split"]


def known_specs() -> list[str]:
    return [*DATASETS, *(f"keras:{k}" for k in KERAS_DATASETS)]


def load_dataset(spec: str, seed: int = 0, text: TextPreprocess | None = None,
                 kind: str | None = None) -> Dataset:
    """Load a dataset by name, ``keras:NAME``, or path, split deterministically by ``seed``.
    ``text``: a trained model's vocabulary, to encode a text CSV with instead of learning one.
    ``kind``: what an .npz's ``x`` holds, where a model's input says (see ``load_npz``)."""
    if spec in DATASETS:
        return DATASETS[spec].load(seed=seed)
    if spec.startswith("keras:"):
        from .keras_sets import load_keras

        return load_keras(spec.split(":", 1)[1], seed=seed)
    path = Path(spec)
    if path.exists():
        from . import files

        if path.is_dir():
            return files.load_image_folder(path, seed=seed)
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return files.load_npz(path, seed=seed, kind=kind)
        if suffix in (".csv", ".tsv"):
            return files.load_text_csv(path, seed=seed, text=text)
        raise DatasetError(f"{path}: expected an .npz, a .csv/.tsv of label,text rows, or a "
                           f"folder of class sub-folders, found a {suffix or 'file'} file")
    known = known_specs()
    raise DatasetError(f"unknown dataset {spec!r}{did_you_mean(spec, known)}; known: "
                       f"{', '.join(known)}, or a path to an .npz, a .csv/.tsv of label,text "
                       "rows, or a folder of images")
