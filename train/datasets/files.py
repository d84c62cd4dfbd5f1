"""User data: an ``.npz`` of arrays, a folder of images (one sub-folder per class), or a
``.csv``/``.tsv`` of ``label,text`` rows for text models."""

from __future__ import annotations

import csv
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_infer.runtime.inputs.base import IMAGE_SUFFIXES
from edge_infer.runtime.metadata import TextPreprocess

from ..errors import DatasetError
from .base import Dataset, class_labels, image_preprocess, split, split_train_val

MAX_TOKENS = 20000
MAX_SEQUENCE = 200


def _as_images(x: np.ndarray) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] of pixels (0..255, or already 0..1) -> float32 in [0, 1]."""
    if x.ndim == 3:
        x = x[..., np.newaxis]
    x = x.astype(np.float32)
    if x.size and x.max() > 1.0:
        x = x / 255.0
    return x


def kind_for_input(rank: int, integer: bool) -> str | None:
    """What an .npz's ``x`` is for a model input of this rank and type: the model's input
    decides where the array alone is ambiguous ([N, 12, 16] floats pass for images, short rows
    of token ids for float features)."""
    if integer:
        return "ids"
    return {4: "image", 3: "sequence", 2: "tabular"}.get(rank)


def _kind_of(x: np.ndarray) -> str:
    if x.ndim == 4:
        return "image"
    if x.ndim == 3:
        # [N, H, W] pixel grids (MNIST) against [N, steps, features] sequences.
        return "image" if x.dtype == np.uint8 or (x.shape[1] >= 8 and x.shape[2] >= 8) else "sequence"
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer) and x.shape[1] > 16:
        return "text"  # padded token ids
    if x.ndim == 2:
        return "tabular"
    raise DatasetError(f"x has shape {list(x.shape)}; expected [N, features], [N, steps, "
                       "features], [N, H, W] or [N, H, W, C]")


def _targets(y: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype(np.int64), "classification"  # one-hot
    y = y.reshape(len(y), -1) if y.ndim > 1 else y
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return y.reshape(-1).astype(np.int64), "classification"
    if np.issubdtype(y.dtype, np.floating):
        if np.all(np.mod(y, 1) == 0) and y.ndim == 1 and len(np.unique(y)) <= 1000:
            return y.astype(np.int64), "classification"
        return y.astype(np.float32).reshape(len(y), -1), "regression"
    raise DatasetError(f"{where}: y must hold class numbers or values, found {y.dtype}")


def load_npz(path: Path, seed: int = 0, kind: str | None = None) -> Dataset:
    """``x_train``, ``y_train``; optional ``x_test``, ``y_test``, ``labels``, ``kind``.

    What ``x`` holds is guessed from its shape and type unless the archive's ``kind``, or else
    the ``kind`` argument, says: ``image``, ``sequence``, ``tabular``, ``text``, or ``ids`` (token
    ids for a model that takes them as they are, which quantize and evaluate know from the
    model's input; training refuses ids without a vocabulary)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path} is not a readable .npz file ({exc})") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DatasetError(f"{path} has no {', '.join(missing)}; expected arrays x_train, "
                           f"y_train (and optionally x_test, y_test, labels), found "
                           f"{', '.join(arrays) or 'none'}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"{path} has only one of x_test and y_test; give both or neither")
    x, (y, task) = arrays["x_train"], _targets(arrays["y_train"], str(path))
    kind = str(arrays["kind"]) if "kind" in arrays else (kind or _kind_of(x))
    prep = _as_images if kind == "image" else (
        (lambda a: a.astype(np.int64)) if kind in ("text", "ids") else
        (lambda a: a.astype(np.float32)))
    x = prep(x)
    if "x_test" in arrays:
        xt, (yt, _) = prep(arrays["x_test"]), _targets(arrays["y_test"], str(path))
        parts = (*split_train_val(x, y, seed), xt, yt)
    else:
        parts = split(x, y, seed, stratify=task == "classification")
    labels = None
    if task == "classification":
        names = [str(v) for v in arrays["labels"].tolist()] if "labels" in arrays else None
        all_y = np.concatenate([parts[1], parts[3], parts[5]])
        labels = class_labels(all_y, names)
        if len(labels) <= int(all_y.max()):
            raise DatasetError(f"{path}: labels names {len(labels)} classes but y goes up to "
                               f"{int(all_y.max())}")
    pre = image_preprocess(parts[0]) if kind == "image" else None
    if kind == "text":
        raise DatasetError(f"{path} holds token ids without a vocabulary; give text models a "
                           ".csv of label,text rows instead")
    return Dataset(path.stem, "text" if kind == "ids" else kind, task, *parts, labels=labels,
                   preprocess=pre)


def load_image_folder(folder: Path, seed: int = 0) -> Dataset:
    """``folder/<class name>/<image>``; images resized to the most common size."""
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("an image folder needs Pillow: pip install 'edge-infer[image]'") from None
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    files = {c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
             for c in classes}
    files = {name: fs for name, fs in files.items() if fs}
    if len(files) < 2:
        raise DatasetError(f"{folder} needs one sub-folder of images per class (at least two); "
                           f"found {len(files)} with images")
    images, y, sizes, modes = [], [], Counter(), Counter()
    opened = []
    for label, paths in enumerate(files.values()):
        for path in paths:
            try:
                with Image.open(path) as img:
                    img.load()
                    opened.append((img.copy(), label))
            except (OSError, SyntaxError) as exc:
                raise DatasetError(f"{path} is not a readable image ({exc})") from None
    for img, _ in opened:
        sizes[img.size] += 1
        modes["L" if img.mode in ("L", "1", "I", "I;16") else "RGB"] += 1
    size = sizes.most_common(1)[0][0]
    mode = "RGB" if modes["RGB"] else "L"
    for img, label in opened:
        img = img.convert(mode)
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        images.append(np.asarray(img, dtype=np.uint8))
        y.append(label)
    x = _as_images(np.stack(images).astype(np.float32))
    parts = split(x, np.asarray(y, dtype=np.int64), seed)
    return Dataset(folder.name, "image", "classification", *parts,
                   labels=tuple(files), preprocess=image_preprocess(x))


def _read_rows(path: Path) -> list[tuple[str, str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc})") from None
    rows = []
    for number, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and [c.strip().lower() for c in row[:2]] == ["label", "text"]:
            continue
        if len(row) < 2 or not row[0].strip():
            raise DatasetError(f"{path}: line {number} is not a label{delimiter}text row "
                               f"(found {len(row)} column{'s' if len(row) != 1 else ''}); "
                               "expected the class label first, then the text")
        rows.append((row[0].strip(), delimiter.join(row[1:]).strip()))
    if len(rows) < 3:
        raise DatasetError(f"{path} holds {len(rows)} label,text rows; need at least 3")
    return rows


def load_text_csv(path: Path, seed: int = 0, text: TextPreprocess | None = None) -> Dataset:
    """Rows of ``label,text``; the vocabulary is learned on the training split with Keras
    ``TextVectorization`` and stored so that the runtime tokenizes raw text the same way. With
    ``text`` (a trained model's), the rows are encoded with that vocabulary by the runtime's
    tokenizer instead, which gives the same ids without importing TensorFlow: how quantize and
    evaluate read a text model's test split (about 3 s less at start)."""
    rows = _read_rows(path)
    names = sorted({label for label, _ in rows})
    if len(names) < 2:
        raise DatasetError(f"{path}: every row has label {names[0]!r}; need two classes or more")
    index = {n: i for i, n in enumerate(names)}
    texts = np.asarray([t for _, t in rows], dtype=object)
    y = np.asarray([index[label] for label, _ in rows], dtype=np.int64)
    t_train, y_train, t_val, y_val, t_test, y_test = split(texts, y, seed)
    encode, pre = _learned_vocabulary(t_train) if text is None else _given_vocabulary(text)
    return Dataset(path.stem, "text", "classification", encode(t_train), y_train,
                   encode(t_val), y_val, encode(t_test), y_test, labels=tuple(names),
                   preprocess=pre, extra={"texts_test": list(t_test)})


Encoder = Callable[[np.ndarray], np.ndarray]


def _given_vocabulary(text: TextPreprocess) -> tuple[Encoder, TextPreprocess]:
    """A trained model's vocabulary, applied by the runtime's tokenizer."""
    from edge_infer.runtime.inputs.text import Tokenizer

    tokenizer = Tokenizer(text)
    return (lambda t: tokenizer.encode(list(t), text.sequence_length)), text


def _learned_vocabulary(t_train: np.ndarray) -> tuple[Encoder, TextPreprocess]:
    """A vocabulary learned on the training texts by Keras' ``TextVectorization``, whose
    sequence length covers 95% of them (8 to ``MAX_SEQUENCE`` words)."""
    import keras

    lengths = sorted(len(t.split()) for t in t_train)
    length = int(min(MAX_SEQUENCE, max(8, lengths[int(0.95 * (len(lengths) - 1))])))
    vectorizer = keras.layers.TextVectorization(max_tokens=MAX_TOKENS,
                                                output_sequence_length=length)
    vectorizer.adapt(list(t_train))
    vocabulary = [str(t) for t in vectorizer.get_vocabulary()]

    def encode(t: np.ndarray) -> np.ndarray:
        return np.asarray(vectorizer(list(t)), dtype=np.int64) if len(t) else \
            np.zeros((0, length), np.int64)

    return encode, TextPreprocess(vocabulary=tuple(vocabulary), sequence_length=length)
