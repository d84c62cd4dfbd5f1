"""1D layers kept in tf2onnx's 4D layout (export/squeezes.py): a Squeeze moves past
elementwise operators, transposes and reshapes, and goes where it meets its Unsqueeze or a
global pooling; the outputs stay the same."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.simplify import _shapes  # noqa: E402
from edge_infer.export.squeezes import keep_unit_axes  # noqa: E402

C, W = 4, 10


def _const(name: str, value) -> object:
    return numpy_helper.from_array(np.asarray(value), name)


def _model(nodes: list, inits: list, out_shape: list) -> object:
    rng = np.random.default_rng(0)
    inits = [*inits, _const("k", rng.normal(size=(C, C, 1, 3)).astype(np.float32)),
             _const("two", np.array([2], np.int64))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["conv"], kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
         helper.make_node("Squeeze", ["conv", "two"], ["c3"]), *nodes],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, 1, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _check(model, removed: int) -> list[str]:
    x = np.random.default_rng(1).normal(size=(3, C, 1, W)).astype(np.float32)
    before = _run(model, x)
    original = model.SerializeToString()
    assert keep_unit_axes(model, _shapes(model)) == removed
    if not removed:
        assert model.SerializeToString() == original
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-6, atol=1e-6)
    return [n.op_type for n in model.graph.node]


def test_a_conv1d_block_keeps_the_unit_axis_to_its_global_pooling():
    """Conv -> Squeeze -> bias Add [C, 1] -> Relu -> Unsqueeze -> MaxPool -> Squeeze ->
    GlobalAveragePool -> Squeeze: the bias gains the axis, the pair cancels, the pooling runs
    on 4D and one Squeeze drops both spatial axes."""
    bias = np.linspace(-1, 1, C, dtype=np.float32).reshape(C, 1)
    nodes = [helper.make_node("Add", ["c3", "bias"], ["biased"]),
             helper.make_node("Relu", ["biased"], ["act"]),
             helper.make_node("Unsqueeze", ["act", "two"], ["a4"]),
             helper.make_node("MaxPool", ["a4"], ["pool"], kernel_shape=[1, 2], strides=[1, 2]),
             helper.make_node("Squeeze", ["pool", "two"], ["p3"]),
             helper.make_node("GlobalAveragePool", ["p3"], ["g"]),
             helper.make_node("Squeeze", ["g", "two"], ["y"])]
    ops = _check(_model(nodes, [_const("bias", bias)], ["N", C]), 2)
    assert ops == ["Conv", "Add", "Relu", "MaxPool", "GlobalAveragePool", "Squeeze"], ops


def test_a_squeeze_before_a_transpose_and_reshape_goes():
    """Squeeze -> Transpose(0, 2, 1) -> Reshape [-1, W * C] (a Keras Flatten after Conv1D): the
    transpose permutes the 4D tensor with the unit axis last, and the reshape reads it."""
    nodes = [helper.make_node("Transpose", ["c3"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["t", "flat"], ["y"])]
    ops = _check(_model(nodes, [_const("flat", np.array([-1, W * C], np.int64))], ["N", W * C]),
                 1)
    assert ops == ["Conv", "Transpose", "Reshape"], ops


@pytest.mark.parametrize("blocker", ["Softmax", "Add"])
def test_a_squeeze_that_cannot_move_to_its_pair_leaves_the_graph_as_it_was(blocker):
    """A softmax over the last axis is not elementwise, and an Add of two computed tensors has
    an operand whose shape lacks the unit axis: the graph stays as it was, moves included."""
    bias = np.ones((C, 1), np.float32)
    middle = (helper.make_node("Softmax", ["biased"], ["mid"], axis=-1) if blocker == "Softmax"
              else helper.make_node("Add", ["biased", "c3"], ["mid"]))
    nodes = [helper.make_node("Add", ["c3", "bias"], ["biased"]), middle,
             helper.make_node("Unsqueeze", ["mid", "two"], ["y"])]
    _check(_model(nodes, [_const("bias", bias)], ["N", C, 1, W]), 0)


def test_a_keras_conv1d_classifier_exports_without_squeeze_pairs(tmp_path):
    """End to end on tf2onnx's spelling: Conv1D (with a bias), MaxPooling1D, Conv1D,
    GlobalAveragePooling1D, Dense: no Unsqueeze left after the input's, parity holds."""
    keras = pytest.importorskip("keras")
    from edge_infer.export.exporter import ExportConfig, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 3), name="signal")
    x = layers.Conv1D(6, 3, activation="relu", bias_initializer="random_normal")(inputs)
    x = layers.Conv1D(6, 3, activation="relu")(layers.MaxPooling1D()(x))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(
        layers.GlobalAveragePooling1D()(x)))
    model.save(tmp_path / "c.keras")
    result = export(ExportConfig(tmp_path / "c.keras"), log=lambda _m: None)
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("Unsqueeze") == 1 and ops.count("Squeeze") == 1, ops
    assert result.parity.passed


def test_only_squeezes_that_reach_an_end_move():
    """The first Squeeze meets its Unsqueeze and goes; the second, before a transpose into a
    softmax, stays in front of the transpose (moved there, it would keep onnxruntime from
    merging that transpose with a following one)."""
    nodes = [helper.make_node("Relu", ["c3"], ["act"]),
             helper.make_node("Unsqueeze", ["act", "two"], ["a4"]),
             helper.make_node("MaxPool", ["a4"], ["pool"], kernel_shape=[1, 2], strides=[1, 2]),
             helper.make_node("Squeeze", ["pool", "two"], ["p3"]),
             helper.make_node("Transpose", ["p3"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Softmax", ["t"], ["y"], axis=-1)]
    ops = _check(_model(nodes, [], ["N", W // 2, C]), 1)
    assert ops == ["Conv", "Relu", "MaxPool", "Squeeze", "Transpose", "Softmax"], ops


def test_a_conv1d_over_an_open_number_of_steps_exports(tmp_path):
    """Random parity inputs give an open dimension 32 steps: with 1, a kernel of 3 had no output
    and the export failed."""
    keras = pytest.importorskip("keras")
    from edge_infer.export.exporter import ExportConfig, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3), name="signal")
    x = layers.MaxPooling1D()(layers.Conv1D(6, 3, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalMaxPooling1D()(x)))
    model.save(tmp_path / "open.keras")
    result = export(ExportConfig(tmp_path / "open.keras"), log=lambda _m: None)
    assert result.parity.passed
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    steps = np.random.default_rng(0).normal(size=(2, 50, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"signal": steps})[0],
                               model.predict(steps, verbose=0), atol=1e-5)


def test_an_unsqueeze_moved_by_a_transpose_becomes_one_and_cancels():
    """Squeeze(2) -> Relu -> Unsqueeze(1) -> Transpose(0, 2, 1, 3) (tf2onnx's way into a
    ConvTranspose) is an Unsqueeze(2): the transpose goes, then the pair."""
    nodes = [helper.make_node("Relu", ["c3"], ["act"]),
             helper.make_node("Unsqueeze", ["act", "one"], ["a4"]),
             helper.make_node("Transpose", ["a4"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("MaxPool", ["t"], ["y"], kernel_shape=[1, 2], strides=[1, 2])]
    ops = _check(_model(nodes, [_const("one", np.array([1], np.int64))],
                        ["N", C, 1, W // 2]), 2)
    assert ops == ["Conv", "Relu", "MaxPool"], ops


def test_a_squeeze_moves_through_an_upsampling_resize_to_its_unsqueeze():
    """An UpSampling1D between Conv1Ds: Squeeze -> Relu -> Transpose (to steps x channels) ->
    Resize [1, 2, 1] -> Unsqueeze(1) -> Transpose back: the Resize gains a scale of 1 for the
    unit axis and the pair cancels (onnxruntime then cancels the two transposes)."""
    nodes = [helper.make_node("Relu", ["c3"], ["act"]),
             helper.make_node("Transpose", ["act"], ["nwc"], perm=[0, 2, 1]),
             helper.make_node("Resize", ["nwc", "", "scales"], ["up"], mode="nearest"),
             helper.make_node("Unsqueeze", ["up", "one"], ["u4"]),
             helper.make_node("Transpose", ["u4"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("MaxPool", ["nchw"], ["y"], kernel_shape=[1, 2], strides=[1, 2])]
    inits = [_const("scales", np.array([1, 2, 1], np.float32)),
             _const("one", np.array([1], np.int64))]
    ops = _check(_model(nodes, inits, ["N", C, 1, W]), 1)
    assert ops == ["Conv", "Relu", "Transpose", "Resize", "Transpose", "MaxPool"], ops
