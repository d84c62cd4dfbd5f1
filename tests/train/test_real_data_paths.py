"""The paths users take with real data (an MNIST .npz, an SMS-style CSV), on data made here.

The figures on the real datasets are documented in the README; these tests prove the same
commands learn from data in those formats.
"""

from __future__ import annotations

import numpy as np

from edge_infer.train.config import TrainConfig
from edge_infer.train.trainer import train

from .conftest import write_messages


def mnist_like(path, n=600, seed=0):
    """28x28 uint8 'digits': class k is a bright stroke at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        row, col = 2 + 2 * k, 4 + rng.integers(0, 6)
        x[i, row:row + 2, col:col + 14] = 255
    split = int(n * 0.8)
    np.savez(path, x_train=x[:split], y_train=y[:split], x_test=x[split:], y_test=y[split:])
    return path


def test_cnn_learns_an_mnist_format_npz(tmp_path):
    run = train(TrainConfig("cnn", str(mnist_like(tmp_path / "mnist.npz")), epochs=4,
                            out=tmp_path / "run", verbose=0))
    assert run.metrics["samples"]["test"] == 120  # the file's own test split is kept
    assert run.metrics["test_accuracy"] >= 0.9


def test_lstm_learns_an_sms_style_csv(tmp_path):
    path = write_messages(tmp_path / "sms.csv", n=300)
    run = train(TrainConfig("lstm", str(path), epochs=6, out=tmp_path / "run", verbose=0))
    assert run.metrics["test_accuracy"] >= 0.9
