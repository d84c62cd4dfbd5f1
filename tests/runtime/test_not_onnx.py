"""A model path that is not an ONNX file is named for what it is, with the way to ONNX."""

from __future__ import annotations

import re
import shutil
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime import Model
from edge_infer.runtime.cli import cli
from edge_infer.runtime.errors import ModelFileError
from edge_infer.runtime.modelfile import read_model_info


def _zip(path, *names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "{}")
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda p: _zip(p / "model.keras", "metadata.json", "config.json", "model.weights.h5"),
     "model.keras is a Keras model, not ONNX: convert it with `edge-infer export "),
    (lambda p: (p / "old.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64)) and p / "old.h5",
     "old.h5 is an HDF5 file (a Keras .h5 model?), not ONNX: convert it with `edge-infer "
     "export "),
    (lambda p: (p / "m.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
     and p / "m.tflite", "m.tflite is a TensorFlow Lite model; edge-infer runs ONNX models"),
    (lambda p: _zip(p / "net.pt", "net/data.pkl", "net/version"),
     "net.pt is a PyTorch model; export it to ONNX with torch.onnx.export"),
    (lambda p: (np.save(p / "x.npy", np.zeros(3)), p / "x.npy")[1],
     "x.npy is a NumPy array (.npy), not an ONNX model"),
    (lambda p: (np.savez(p / "x.npz", a=np.zeros(3)), p / "x.npz")[1],
     "x.npz is a NumPy archive (.npz), not an ONNX model"),
    (lambda p: (p / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)) and p / "digit.png",
     "digit.png is a PNG image, not an ONNX model"),
])
def test_a_known_format_is_named(tmp_path, make, expected):
    path = make(tmp_path)
    for attempt in (lambda: read_model_info(path), lambda: Model(path)):
        with pytest.raises(ModelFileError) as err:
            attempt()
        assert str(err.value).startswith(str(tmp_path / expected.split(" ", 1)[0]))
        assert expected in str(err.value)
    # by content, not by name: a Keras archive called model.onnx is still a Keras model
    disguised = shutil.copy(path, tmp_path / "disguised.onnx")
    with pytest.raises(ModelFileError, match=re.escape(expected.split(" ", 1)[1].split(":")[0])):
        read_model_info(disguised)


def test_an_unknown_file_keeps_the_parse_error(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\x01\x02\x03" * 10)
    with pytest.raises(ModelFileError, match="is not an ONNX model"):
        read_model_info(path)


def test_a_real_onnx_model_loads_whatever_its_name(models, tmp_path):
    odd = shutil.copy(models.classifier(), tmp_path / "model.pt")
    assert read_model_info(odd).ir_version and Model(odd).signature.inputs


def test_a_folder_names_the_models_in_it_or_what_it_is(models, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    runner = CliRunner()
    for command in (["run", str(run), "x.png"], ["info", str(run)], ["bench", str(run)]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, result.output
        assert (f"{run} is a run folder without an ONNX model; make one with `edge-infer "
                f"export {run}`") in result.output
    shutil.copy(models.classifier(), run / "model.onnx")
    shutil.copy(models.classifier(), run / "model.int8.onnx")
    result = runner.invoke(cli, ["bench", str(run)])
    assert result.exit_code == 2
    assert (f"expected an .onnx model file, such as {run / 'model.int8.onnx'} or "
            f"{run / 'model.onnx'}") in result.output
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is a TensorFlow SavedModel; .* --saved-model"):
        Model(saved)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="empty is a folder; expected an .onnx model file$"):
        read_model_info(tmp_path / "empty")
