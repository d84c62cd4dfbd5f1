"""``keras:NAME`` datasets: downloaded and cached by Keras when online; offline they fail at
once with one line naming the offline alternatives."""

from __future__ import annotations

import numpy as np

from edge_infer.runtime.metadata import TextPreprocess

from ..errors import DatasetError, OfflineError
from .base import Dataset, class_labels, image_preprocess, split_train_val

KERAS_DATASETS = {
    "mnist": "70,000 28x28 handwritten digits",
    "fashion_mnist": "70,000 28x28 clothing images, 10 classes",
    "cifar10": "60,000 32x32 colour images, 10 classes",
    "imdb": "50,000 movie reviews, positive or negative (tokens)",
    "reuters": "11,228 newswires, 46 topics (tokens)",
}
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_WORDS = 20000
SEQUENCE = 200


def _fetch(name: str):
    import keras

    module = getattr(keras.datasets, name)
    try:
        if name in ("imdb", "reuters"):
            return module.load_data(num_words=NUM_WORDS), module.get_word_index()
        return module.load_data(), None
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure ...")
        text = str(exc)
        if "fetch failure" in text or "urlopen" in text.lower() or isinstance(exc, OSError):
            raise OfflineError(
                f"keras:{name} must be downloaded and this machine cannot reach the internet "
                f"({text.splitlines()[0][:120]}); offline, use digits, xor, moons, sine, waves, "
                "or an .npz/.csv/image folder of your own") from None
        raise


def _tokens(seqs, word_index) -> tuple[np.ndarray, TextPreprocess]:
    """Keras' index offsets ids by 3 (0 pad, 1 start, 2 out of vocabulary)."""
    vocab = ["", "[UNK]", "[START]", "[OOV]"] + [""] * (NUM_WORDS - 4)
    for word, i in word_index.items():
        if i + 3 < NUM_WORDS:
            vocab[i + 3] = word
    out = np.zeros((len(seqs), SEQUENCE), dtype=np.int64)
    for row, seq in enumerate(seqs):
        seq = [t if t != 2 else 1 for t in seq[1:SEQUENCE + 1]]  # drop [START], OOV -> [UNK]
        out[row, : len(seq)] = seq
    return out, TextPreprocess(vocabulary=tuple(vocab), sequence_length=SEQUENCE)


def load_keras(name: str, seed: int = 0) -> Dataset:
    if name not in KERAS_DATASETS:
        raise DatasetError(f"unknown Keras dataset keras:{name}; known: "
                           + ", ".join(f"keras:{k}" for k in KERAS_DATASETS))
    ((x, y), (xt, yt)), word_index = _fetch(name)
    y, yt = np.asarray(y).reshape(-1).astype(np.int64), np.asarray(yt).reshape(-1).astype(np.int64)
    if name in ("imdb", "reuters"):
        x, pre = _tokens(x, word_index)
        xt, _ = _tokens(xt, word_index)
        labels = ("negative", "positive") if name == "imdb" else class_labels(y)
        return Dataset(f"keras:{name}", "text", "classification", *split_train_val(x, y, seed),
                       xt, yt, labels=labels, preprocess=pre)
    x = np.asarray(x, np.float32) / 255.0
    xt = np.asarray(xt, np.float32) / 255.0
    if x.ndim == 3:
        x, xt = x[..., np.newaxis], xt[..., np.newaxis]
    labels = {"fashion_mnist": FASHION, "cifar10": CIFAR}.get(name) or class_labels(y)
    return Dataset(f"keras:{name}", "image", "classification", *split_train_val(x, y, seed),
                   xt, yt, labels=labels, preprocess=image_preprocess(x))
