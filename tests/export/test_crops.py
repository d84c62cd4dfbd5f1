"""Computed crops and pads (export/crops.py): constants where the batch does not matter, gone
where they change nothing, outputs the same."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.crops import fold_computed_crops  # noqa: E402

C, W = 3, 10


def _int64(name: str, *values: int):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _model():
    """x[N, 3, 10]: Slice axis 2 to its computed width (keeps all), Slice it to width - 1
    (crops one), Slice axis 0 to the computed batch (depends on the batch), Pad by computed
    zeros, Relu."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "two"], ["w"]),
             helper.make_node("Gather", ["s", "zero"], ["n"]),
             helper.make_node("Sub", ["w", "one"], ["w1"]),
             helper.make_node("Mul", ["w", "zero"], ["nothing"]),
             helper.make_node("Concat", ["nothing"] * 6, ["pads"], axis=0),
             helper.make_node("Slice", ["x", "zero", "w", "two"], ["all"]),
             helper.make_node("Slice", ["all", "zero", "w1", "two"], ["cropped"]),
             helper.make_node("Slice", ["cropped", "zero", "n", "zero"], ["batch"]),
             helper.make_node("Pad", ["batch", "pads"], ["padded"]),
             helper.make_node("Relu", ["padded"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", C, W - 1])],
        [_int64("zero", 0), _int64("one", 1), _int64("two", 2)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_computed_crops_become_constants_and_the_idle_ones_go():
    model = _model()
    x = np.random.default_rng(0).normal(size=(4, C, W)).astype(np.float32)
    before = _run(model, x)
    assert fold_computed_crops(model) == 3  # the full slice and the pad gone, the crop fixed
    nodes = list(model.graph.node)
    slices = [n for n in nodes if n.op_type == "Slice"]
    assert "Pad" not in {n.op_type for n in nodes} and len(slices) == 2
    inits = {i.name for i in model.graph.initializer}
    crop, batch = slices
    assert crop.input[2] in inits and batch.input[2] not in inits  # the batch stays computed
    np.testing.assert_array_equal(_run(model, x), before)
    np.testing.assert_array_equal(_run(model, x[:2]), before[:2])


def test_a_keras_conv1d_transpose_exports_without_shape_arithmetic(tmp_path):
    """Keras 3's Conv1DTranspose: tf2onnx crops and pads its output by amounts computed from
    shapes, about thirty operators; they fold, parity holds."""
    keras = pytest.importorskip("keras")
    from edge_infer.export.exporter import ExportConfig, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 3), name="signal")
    x = layers.Conv1D(4, 3, activation="relu")(inputs)
    x = layers.Conv1DTranspose(4, 3, strides=2, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    model.save(tmp_path / "t.keras")
    result = export(ExportConfig(tmp_path / "t.keras"), log=lambda _m: None)
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert not {"Shape", "Slice", "Pad", "Squeeze"} & set(ops) and len(ops) <= 12, ops
    assert result.parity.passed


def test_an_open_number_of_steps_keeps_the_computed_crop_quietly(tmp_path, caplog):
    """Over an open number of steps the crop depends on it and stays computed; onnxruntime's
    symbolic shape inference, which says so in logged warnings (on the terminal, outside
    pytest), logs nothing during the export."""
    keras = pytest.importorskip("keras")
    from edge_infer.export.exporter import ExportConfig, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3), name="signal")
    x = layers.Conv1DTranspose(4, 3, strides=2, activation="relu")(inputs)
    x = layers.MaxPooling1D(2, padding="same")(x)  # what the inference cannot settle
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(x)))
    model.save(tmp_path / "open.keras")
    import logging

    with caplog.at_level(logging.WARNING):
        result = export(ExportConfig(tmp_path / "open.keras"), log=lambda _m: None)
    assert result.parity.passed
    said = [r.getMessage() for r in caplog.records if "symbolic_shape" in r.name]
    assert not said, said
