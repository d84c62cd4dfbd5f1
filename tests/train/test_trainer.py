"""Training behaviour: refusals before training, reproducibility, atomic run folders, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime.cli import cli
from edge_infer.runtime.errors import UnknownNameError, UsageError
from edge_infer.train.config import TrainConfig
from edge_infer.train.errors import IncompatibleError
from edge_infer.train.trainer import default_base, train


def test_text_into_cnn_is_refused_before_training(tmp_path, messages_csv):
    with pytest.raises(IncompatibleError, match="cnn takes image data, but messages is text "
                                                "data.*try lstm, gru"):
        train(TrainConfig("cnn", str(messages_csv), out=tmp_path / "run", verbose=0))
    assert list(tmp_path.glob("run*")) == [] and not list(tmp_path.glob(".run*"))


def test_regression_data_into_a_classifier_is_refused(tmp_path):
    with pytest.raises(IncompatibleError, match="mlp is for classification.*try regressor"):
        train(TrainConfig("mlp", "sine", out=tmp_path / "run", verbose=0))


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet'; known: cnn"):
        train(TrainConfig("resnet", "digits", verbose=0))


def test_every_architecture_has_embedded_default_data_that_fits_it():
    """`edge-infer train ARCH` and `edge-infer pipeline ARCH` with no --dataset run offline for
    every architecture, not just the image ones: the default is checked against the model."""
    from edge_infer.export.pipeline import PipelineConfig
    from edge_infer.train.datasets import DATASETS, load_dataset
    from edge_infer.train.models import ARCHITECTURES, DataSpec

    for arch in ARCHITECTURES.values():
        config = TrainConfig(arch.name)
        assert config.dataset == arch.dataset == PipelineConfig(arch.name).dataset
        assert config.dataset in DATASETS  # embedded or generated, never a download
        data = load_dataset(config.dataset, seed=0)
        arch.check(DataSpec(data.input_shape, data.num_classes, data.kind, data.task,
                            data.vocab_size), data.name)
    assert TrainConfig("lstm").dataset == "waves" and TrainConfig("cnn").dataset == "digits"
    assert TrainConfig("lstm", "moons").dataset == "moons"  # a named dataset is kept


def test_config_is_validated():
    with pytest.raises(UsageError, match="epochs must be >= 1"):
        TrainConfig("cnn", epochs=0)
    with pytest.raises(UsageError, match="strategy must be one of"):
        TrainConfig("cnn", strategy="horovod")


def test_existing_output_folder_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="exists and is not empty"):
        train(TrainConfig("mlp", "xor", epochs=1, out=tmp_path / "run", verbose=0))
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_default_out_is_numbered(tmp_path, monkeypatch):
    from edge_infer.runtime.atomic import claim_folder

    monkeypatch.chdir(tmp_path)
    config = TrainConfig("cnn", "digits")
    with claim_folder(default_base(config), number=True) as out:
        assert str(out) == "runs/cnn-digits"
    (tmp_path / "runs" / "cnn-digits").mkdir(parents=True)
    with claim_folder(default_base(config), number=True) as out:
        assert str(out) == "runs/cnn-digits-2"


def test_same_seed_same_model(tmp_path):
    import keras

    runs = [train(TrainConfig("mlp", "moons", epochs=2, seed=7, out=tmp_path / f"r{i}",
                              verbose=0)) for i in range(2)]
    other = train(TrainConfig("mlp", "moons", epochs=2, seed=8, out=tmp_path / "r2", verbose=0))
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    preds = [np.asarray(keras.models.load_model(r.path / "model.keras").predict(x, verbose=0))
             for r in (*runs, other)]
    np.testing.assert_array_equal(preds[0], preds[1])
    assert not np.array_equal(preds[0], preds[2])
    assert runs[0].history == runs[1].history


def test_interrupted_training_leaves_nothing(tmp_path, monkeypatch):
    import keras

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig("mlp", "xor", out=tmp_path / "run", verbose=0))
    assert list(tmp_path.iterdir()) == []


def test_cli_trains_and_reports(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "mlp", "--dataset", "xor", "--epochs", "2",
                                      "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{out}: 2 epochs in" in result.stdout and "test accuracy" in result.stdout
    assert json.loads((out / "model.json").read_text())["architecture"] == "mlp"


def test_cli_progress_goes_to_stderr_and_stdout_keeps_the_result(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "mlp", "--dataset", "xor", "--epochs", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]  # one line
    assert result.stdout.startswith(f"{out}: 2 epochs in")
    assert "Epoch 2/2" in result.stderr  # Keras' own progress, moved off stdout


@pytest.mark.parametrize("args,code,message", [
    (["train", "resnet"], 2, "unknown architecture 'resnet'"),
    (["train"], 2, "missing ARCH"),
    (["train", "cnn", "--dataset", "nowhere"], 2, "unknown dataset 'nowhere'"),
    (["train", "cnn", "--dataset", "waves"], 2, "cnn takes image data"),
])
def test_cli_errors(args, code, message, tmp_path):
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_help_and_list():
    result = CliRunner().invoke(cli, ["train", "--list"])
    assert result.exit_code == 0
    assert "cnn" in result.output and "digits" in result.output and "keras:mnist" in result.output
