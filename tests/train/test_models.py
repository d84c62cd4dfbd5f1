"""Every registered architecture builds, trains one epoch and writes a complete run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_infer.runtime.metadata import ImagePreprocess, ModelMetadata, TextPreprocess
from edge_infer.train.config import TrainConfig
from edge_infer.train.models import ARCHITECTURES
from edge_infer.train.trainer import train

# architecture -> dataset it is trained on here (None: the messages CSV the test writes)
CASES = {
    "mlp": "xor", "regressor": "sine", "cnn": "digits", "cifar_cnn": "digits",
    "lstm": None, "gru": "waves", "autoencoder": "digits", "conv_autoencoder": "digits",
    "gan": "digits",
}


def test_every_architecture_is_covered():
    assert set(CASES) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(CASES))
def test_builds_trains_one_epoch_and_saves(arch, tmp_path, messages_csv):
    import keras

    dataset = CASES[arch] or str(messages_csv)
    out = tmp_path / "run"
    result = train(TrainConfig(arch, dataset, epochs=1, batch_size=64, out=out, verbose=0))
    assert result.path == out
    files = {p.name for p in out.iterdir()}
    assert {"model.keras", "history.csv", "curves.png", "metrics.json", "model.json",
            "samples.npz"} <= files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial left

    metrics = json.loads((out / "metrics.json").read_text())
    info = json.loads((out / "model.json").read_text())
    meta = ModelMetadata.from_props(info["metadata"])
    assert metrics["epochs_run"] == 1 and metrics["parameters"] > 0
    assert metrics["versions"]["tensorflow"]
    model = keras.models.load_model(out / "model.keras")
    assert model.count_params() == metrics["parameters"]
    assert info["input"]["name"] == model.inputs[0].name

    if arch == "gan":
        assert meta.task == "generation" and meta.output.kind == "image"
        assert "samples.png" in files
        z = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
        images = np.asarray(model.predict(z, verbose=0))
        assert images.shape == (2, 8, 8, 1) and 0 <= images.min() and images.max() <= 1
    elif arch in ("autoencoder", "conv_autoencoder"):
        assert meta.task == "reconstruction" and meta.output.kind == "image"
        assert "test_mse" in metrics and "samples.png" in files
    elif arch == "regressor":
        assert meta.task == "regression" and "test_mse" in metrics
    else:
        assert meta.task == "classification" and meta.labels
        assert 0 <= metrics["test_accuracy"] <= 1
        assert "confusion.png" in files
        matrix = np.array(metrics["confusion_matrix"])
        assert matrix.sum() == metrics["test_samples"]
    if arch == "lstm":
        assert isinstance(meta.preprocess, TextPreprocess)
        assert meta.labels == ("ham", "spam")
    if arch in ("cnn", "cifar_cnn"):
        assert isinstance(meta.preprocess, ImagePreprocess)
        assert meta.preprocess.size == (8, 8) and meta.preprocess.layout == "NHWC"
    if arch == "cifar_cnn":
        assert meta.output.kind == "logits"
