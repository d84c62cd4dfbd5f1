"""Export tests train tiny models (one epoch) once per session, then convert them."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

# architecture -> dataset (None: a small spam/ham CSV made here)
ZOO = {"mlp": "xor", "regressor": "sine", "cnn": "digits", "cifar_cnn": "digits",
       "lstm": None, "gru": "waves", "autoencoder": "digits", "conv_autoencoder": "digits",
       "gan": "digits"}


def _messages(path: Path) -> Path:
    rng = random.Random(0)
    spam, ham = "win free prize cash claim now".split(), "see you lunch home love dinner".split()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        for i in range(90):
            words = rng.choices(spam if i % 2 else ham, k=rng.randint(3, 7))
            writer.writerow(["spam" if i % 2 else "ham", " ".join(words)])
    return path


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One-epoch run folders for every zoo architecture."""
    from edge_infer.train.config import TrainConfig
    from edge_infer.train.trainer import train

    root = tmp_path_factory.mktemp("runs")
    text = _messages(root / "messages.csv")
    runs = {}
    for arch, dataset in ZOO.items():
        runs[arch] = train(TrainConfig(arch, dataset or str(text), epochs=1, batch_size=64,
                                       out=root / arch, verbose=0)).path
    return runs
