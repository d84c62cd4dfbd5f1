"""Arithmetic written out by tf2onnx becomes one operator (export/fused_ops.py) only where
it provably computes it: layer normalisation, exact gelu, PReLU."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.fused_ops import canonical_gelu, fold_layer_norms  # noqa: E402
from edge_infer.export.simplify import _shapes  # noqa: E402


def _written_out(eps: float = 1e-3, opset: int = 17, square_root: bool = True):
    """tf2onnx's spelling of Keras' LayerNormalization on x[N, 5, 8]: moments as
    GlobalAveragePool, y = x * (gamma * rsqrt(var + eps)) + (beta - mean * that)."""
    rng = np.random.default_rng(0)
    root = [helper.make_node("Sqrt", ["shifted"], ["root"])] if square_root else \
        [helper.make_node("Mul", ["shifted", "shifted"], ["root"])]  # same shape, other sums
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["mean"]),
             helper.make_node("Sub", ["x", "mean"], ["centred"]),
             helper.make_node("Mul", ["centred", "centred"], ["squared"]),
             helper.make_node("GlobalAveragePool", ["squared"], ["var"]),
             helper.make_node("Add", ["var", "eps"], ["shifted"]),
             *root,
             helper.make_node("Reciprocal", ["root"], ["inverse"]),
             helper.make_node("Mul", ["inverse", "gamma"], ["scale"]),
             helper.make_node("Mul", ["x", "scale"], ["scaled"]),
             helper.make_node("Neg", ["mean"], ["negated"]),
             helper.make_node("Mul", ["negated", "scale"], ["offset"]),
             helper.make_node("Add", ["offset", "beta"], ["shift"]),
             helper.make_node("Add", ["scaled", "shift"], ["y"]),
             helper.make_node("ReduceMean", ["y"], ["pooled"], axes=[1], keepdims=0)]
    inits = [numpy_helper.from_array(np.array(eps, np.float32), "eps"),
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "beta")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 8])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_written_out_layer_norm_becomes_one_operator():
    """The mean over time after the normalisation stays outside it."""
    model = _written_out()
    x = (np.random.default_rng(1).normal(size=(3, 5, 8)) * 1e-2).astype(np.float32)
    before = _run(model, x)
    assert fold_layer_norms(model, _shapes(model)) == 1
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization", "ReduceMean"]
    norm = model.graph.node[0]
    assert helper.get_attribute_value(norm.attribute[1]) == pytest.approx(1e-3)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", [_written_out(square_root=False), _written_out(opset=15)],
                         ids=["not a normalisation", "opset 15"])
def test_other_arithmetic_and_old_opsets_stay(model):
    count = len(model.graph.node)
    assert fold_layer_norms(model, _shapes(model)) == 0
    assert len(model.graph.node) == count


def test_a_keras_layer_norm_exports_as_one_operator(tmp_path):
    import keras

    from edge_infer.export.exporter import ExportConfig, export

    keras.utils.set_random_seed(0)
    steps = keras.Input((6, 4), name="steps")
    x = keras.layers.LayerNormalization()(keras.layers.Dense(8)(steps))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(steps, keras.layers.Dense(2, name="out")(x))
    model.save(tmp_path / "norm.keras")
    result = export(ExportConfig(tmp_path / "norm.keras"))
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("LayerNormalization") == 1 and "Sqrt" not in ops, ops
    assert result.parity.passed and result.parity.max_abs_diff < 1e-5
    graph = onnx.load(str(result.path)).graph
    assert {"layer_normalization/gamma", "layer_normalization/beta"} <= {
        i.name for i in graph.initializer}


def test_a_layer_norm_after_a_convolution_becomes_a_transpose_and_one_operator(tmp_path):
    """After a convolution tf2onnx moves its NHWC transpose past the layer norm, which then
    normalises axis 1 of NCHW (thirteen operators, with a Reshape of the mean); as the
    transpose to NHWC followed by LayerNormalization over the last axis it is two (the
    ConvNeXt block: 30 -> 17 operators, 1.24x at batch 1)."""
    import keras

    from edge_infer.export.exporter import ExportConfig, export

    keras.utils.set_random_seed(0)
    image = keras.Input((6, 6, 8), name="image")
    norm = keras.layers.LayerNormalization(epsilon=1e-6)
    x = norm(keras.layers.DepthwiseConv2D(3, padding="same")(image))
    x = keras.layers.Dense(8)(keras.layers.Dense(16, activation="gelu")(x))
    model = keras.Model(image, keras.layers.GlobalAveragePooling2D()(
        keras.layers.Add()([image, x])))
    norm.gamma.assign(np.linspace(0.5, 2.0, 8))
    norm.beta.assign(np.linspace(-1.0, 1.0, 8))
    model.save(tmp_path / "block.keras")
    result = export(ExportConfig(tmp_path / "block.keras"))
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("LayerNormalization") == 1 and "Sqrt" not in ops, ops
    assert ops[ops.index("LayerNormalization") - 1] == "Transpose"
    x = np.random.default_rng(1).random((3, 6, 6, 8), dtype=np.float32) * 4
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"image": x})[0], np.asarray(model(x)),
                               atol=1e-5)


def _gelu(erf: str = "Erf", scale: float = 0.70710677):
    """What tf2onnx and export/tf_ops.py write for Keras' exact gelu on x[N, 6]:
    0.5 * x * (1 - erf(-x * scale)), then a residual add that is not part of it."""
    nodes = [helper.make_node("Neg", ["x"], ["negated"]),
             helper.make_node("Mul", ["negated", "c"], ["z"]),
             helper.make_node(erf, ["z"], ["e"]),
             helper.make_node("Sub", ["one", "e"], ["erfc"]),
             helper.make_node("Mul", ["half", "x"], ["half_x"]),
             helper.make_node("Mul", ["half_x", "erfc"], ["y"]),
             helper.make_node("Add", ["y", "x"], ["out"])]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n)
             for n, v in (("c", scale), ("one", 1.0), ("half", 0.5))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_exact_gelu_is_respelt_the_way_onnxruntime_fuses_it(tmp_path):
    model = _gelu()
    x = np.linspace(-9, 9, 24, dtype=np.float32).reshape(4, 6)
    before = _run(model, x)
    assert canonical_gelu(model, _shapes(model)) == 1
    assert [n.op_type for n in model.graph.node] == ["Div", "Erf", "Add", "Mul", "Mul", "Add"]
    np.testing.assert_allclose(_run(model, x), before, atol=1e-6)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    assert fused == ["Gelu", "Add"], fused  # onnxruntime's one kernel
    assert canonical_gelu(model, _shapes(model)) == 0  # already canonical


@pytest.mark.parametrize("erf,scale", [("Tanh", 0.70710677), ("Erf", 1.0)],
                         ids=["tanh", "other scale"])
def test_arithmetic_that_is_not_gelu_stays(erf, scale):
    model = _gelu(erf, scale)
    count = len(model.graph.node)
    assert canonical_gelu(model, _shapes(model)) == 0
    assert len(model.graph.node) == count


def test_an_attention_block_exports_without_shape_computations(tmp_path):
    """Keras' MultiHeadAttention computes six reshape targets from shapes at run time
    (Shape, Gather, ReduceProd, Max, Concat); all fold to constants (export/shape_values.py),
    its layer norm and gelu become single operators, and parity holds."""
    import keras

    from edge_infer.export.exporter import ExportConfig, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    tokens = keras.Input((8,), dtype="int64", name="tokens")
    x = layers.Embedding(20, 8)(tokens)
    x = layers.LayerNormalization()(x + layers.MultiHeadAttention(2, 4)(x, x))
    x = layers.LayerNormalization()(x + layers.Dense(8)(layers.Dense(16, activation="gelu")(x)))
    model = keras.Model(tokens, layers.Dense(3, activation="softmax", name="label")(
        layers.GlobalAveragePooling1D()(x)))
    model.save(tmp_path / "block.keras")
    result = export(ExportConfig(tmp_path / "block.keras"))
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert not {"Shape", "ReduceProd", "Max", "Concat"} & set(ops), ops
    assert ops.count("LayerNormalization") == 2 and "Sqrt" not in ops
    assert result.parity.passed and result.parity.max_abs_diff < 1e-5


def _prelu(minus_alpha: np.ndarray, rectified: bool = True):
    """tf2onnx's spelling of Keras' PReLU on x[N, 4, 3, 3]: relu(x) + (-alpha) * relu(-x);
    with ``rectified`` off, relu(x) + c * --x, which is no PReLU."""
    nodes = [helper.make_node("Relu", ["x"], ["pos"]),
             helper.make_node("Neg", ["x"], ["flipped"]),
             helper.make_node("Relu" if rectified else "Neg", ["flipped"], ["neg"]),
             helper.make_node("Mul", ["neg", "c"], ["scaled"]),
             helper.make_node("Add", ["pos", "scaled"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3, 3])],
        [numpy_helper.from_array(minus_alpha.astype(np.float32), "c")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("shape,slope_shape", [((1, 4, 1, 1), [4, 1, 1]), ((4, 3, 3), [4, 3, 3]),
                                               ((1,), [1, 1, 1])])
def test_keras_prelu_becomes_one_operator_with_its_slope(shape, slope_shape):
    """Per channel (shared spatial axes), per element, one slope for all: one ``PRelu`` whose
    slope is alpha in the smallest shape that broadcasts, same outputs."""
    from edge_infer.export.fused_ops import fold_prelu

    alpha = np.random.default_rng(0).uniform(0.05, 0.5, size=shape)
    model = _prelu(-alpha)
    x = np.random.default_rng(1).normal(size=(5, 4, 3, 3)).astype(np.float32)
    before = _run(model, x)
    assert fold_prelu(model, _shapes(model)) == 1
    (node,) = model.graph.node
    slope = numpy_helper.to_array(model.graph.initializer[0])
    assert node.op_type == "PRelu" and list(slope.shape) == slope_shape
    np.testing.assert_allclose(slope, np.broadcast_to(alpha, (1, 4, 3, 3))[0][
        tuple(slice(0, n) for n in slope_shape)], rtol=1e-6)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-6, atol=1e-7)


def test_rectifier_arithmetic_that_is_not_prelu_stays():
    from edge_infer.export.fused_ops import fold_prelu

    model = _prelu(-np.full((1, 4, 1, 1), 0.2), rectified=False)
    assert fold_prelu(model, _shapes(model)) == 0
    assert [n.op_type for n in model.graph.node] == ["Relu", "Neg", "Neg", "Mul", "Add"]
