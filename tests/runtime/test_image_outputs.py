"""Image outputs become PNG files; random:N feeds a generator its latent vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edge_infer.runtime import InputError, Model
from edge_infer.runtime.cli import cli
from edge_infer.runtime.inputs import LoadContext, load_inputs

from .conftest import save

IMAGE_OUT = {"edge_infer.task": "generation",
             "edge_infer.output": json.dumps({"kind": "image", "scale": 1 / 255, "offset": 0,
                                              "layout": "NHWC"})}


def generator(models, latent=4):
    """latent [N, 4] -> Sigmoid(MatMul) reshaped to a 2x2 grey image [N, 2, 2, 1]."""
    w = numpy_helper.from_array(np.eye(latent, 4, dtype=np.float32) * 3, "w")
    shape = numpy_helper.from_array(np.array([-1, 2, 2, 1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["latent", "w"], ["h"]),
         helper.make_node("Sigmoid", ["h"], ["s"]),
         helper.make_node("Reshape", ["s", "shape"], ["image"])], "gen",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", latent])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2, 2, 1])], [w, shape])
    return save(graph, models.path("gen.onnx"), IMAGE_OUT)


def test_generator_writes_one_png_per_sample(models, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = generator(models)
    out = tmp_path / "samples"
    result = CliRunner().invoke(cli, ["run", str(path), "random:3:7", "--image-dir", str(out),
                                      "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000-random0.png", "001-random1.png", "002-random2.png"]
    assert doc["images"] == [str(out / f) for f in files]
    values = np.array(doc["outputs"]["image"])
    for f, v in zip(files, values):
        png = np.asarray(Image.open(out / f))
        np.testing.assert_array_equal(png, np.rint(v[..., 0] * 255).astype(np.uint8))


def test_random_is_reproducible_by_seed(models):
    model = Model(generator(models))
    ctx = LoadContext(model.signature, model.metadata)
    a, b = (load_inputs(["random:5:1"], ctx).arrays["latent"] for _ in range(2))
    c = load_inputs(["random:5:2"], ctx).arrays["latent"]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 4) and a.dtype == np.float32 and not np.array_equal(a, c)


def test_random_needs_fixed_float_inputs(models):
    model = Model(models.dynamic())
    with pytest.raises(InputError, match="fixed dimensions"):
        load_inputs(["random:2"], LoadContext(model.signature, model.metadata))
    model = Model(models.text_model())
    with pytest.raises(InputError, match="float noise"):
        load_inputs(["random:2"], LoadContext(model.signature, model.metadata))


def test_reconstruction_round_trips_a_png(models, write_png, tmp_path):
    """An identity 'autoencoder' with the image contract on both sides gives the input back."""
    Image = pytest.importorskip("PIL.Image")
    meta = {"edge_infer.preprocess": json.dumps({"kind": "image", "scale": 1 / 255}),
            "edge_infer.output": json.dumps({"kind": "image", "scale": 1 / 255})}
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    png = write_png("digit.png", pixels)
    out = tmp_path / "rec"
    result = CliRunner().invoke(cli, ["run", str(models.pixels(metadata=meta)), str(png),
                                      "--image-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 PNG image to" in result.output
    np.testing.assert_array_equal(np.asarray(Image.open(out / "000-digit.png")), pixels)


def test_models_without_image_metadata_write_no_files(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    result = CliRunner().invoke(cli, ["run", str(models.classifier()), str(tmp_path / "x.npy")])
    assert result.exit_code == 0
    assert not list(tmp_path.glob("*-images"))
