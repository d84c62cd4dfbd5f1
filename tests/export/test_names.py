"""Readable names: tf2onnx's TensorFlow op paths become the Keras model's layer and variable
names, and the graph computes the same."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.names import readable_names  # noqa: E402

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(3, 4)).astype(np.float32)  # Keras Dense kernel: (inputs, units)
RECURRENT = RNG.normal(size=(4, 8)).astype(np.float32)
WIDE_BIAS = np.zeros(16, np.float32)  # no variable holds these values


def _graph(kernel_scope: str = "net_1/dense_1_2"):
    """What tf2onnx writes for Dense(4), then a fused op reading its own constants (the first
    scoped, the others not), plus a Loop whose body reads an outer tensor."""
    dense = f"{kernel_scope}/BiasAdd:0"
    loop_body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", dense], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Gemm", ["x", f"{kernel_scope}/Cast/ReadVariableOp:0"], [dense],
                         name=f"{kernel_scope}/MatMul"),
        helper.make_node("Gemm", [dense, "R__7", "B__8"], ["Gemm__9:0"], name="Gemm__9"),
        helper.make_node("ReduceSum", ["Gemm__9:0", "axes__10"], ["ReduceSum__11:0"],
                         name="ReduceSum__11", keepdims=0),
        helper.make_node("Loop", ["trips", "", dense], ["looped"], body=loop_body,
                         name=f"{kernel_scope}/loop"),
        helper.make_node("ReduceSum", ["looped", "axes__10"], ["net_1/sum:0"],
                         name="net_1/sum", keepdims=0),
        helper.make_node("Add", ["ReduceSum__11:0", "net_1/sum:0"], ["y"],
                         name="net_1/out_1/Add"),
    ]
    inits = [numpy_helper.from_array(KERNEL.copy(), f"{kernel_scope}/Cast/ReadVariableOp:0"),
             numpy_helper.from_array(RECURRENT.copy(), "R__7"),
             numpy_helper.from_array(WIDE_BIAS[:8].copy(), "B__8"),
             numpy_helper.from_array(np.array([1], np.int64), "axes__10"),
             numpy_helper.from_array(np.array(2, np.int64), "trips")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


LAYERS = ["x", "dense_1", "rnn", "out"]
VARIABLES = {"dense_1/kernel": KERNEL,
             "rnn/cell/recurrent_kernel": RECURRENT.T.copy(),  # transposed: values still match
             "rnn/cell/bias": np.ones(8, np.float32)}


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_names_follow_the_keras_layers_and_variables():
    model = _graph()
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    before = _run(model, x)
    assert readable_names(model, "net", LAYERS, VARIABLES) > 0
    onnx.checker.check_model(model)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    # The kernel takes its variable's path; the layer scope loses Keras' _k suffix, the first
    # output its ":0".
    assert "dense_1/kernel" in inits
    assert list(nodes["dense_1/MatMul"].output) == ["dense_1/BiasAdd"]
    # An unscoped node reading a layer's variable is named after that layer, and a constant
    # only it reads after the operator's input (Gemm: A, B, C).
    assert list(nodes["rnn/Gemm"].input) == ["dense_1/BiasAdd", "rnn/cell/recurrent_kernel",
                                             "rnn/C"]
    assert list(nodes["rnn/Gemm"].output) == ["rnn/Gemm"]
    # A node that reads no variable is named after the layer whose output it takes; a
    # constant two nodes share keeps tf2onnx's name.
    assert list(nodes["rnn/ReduceSum"].input) == ["rnn/Gemm", "axes__10"]
    assert list(nodes["rnn/ReduceSum"].output) == ["rnn/ReduceSum"]
    # An op of the model itself loses the model scope.
    assert list(nodes["sum"].output) == ["sum"] and "out/Add" in nodes
    # The loop body reads the outer tensor under its new name.
    body_inputs = [i for n in nodes["dense_1/loop"].attribute[0].g.node for i in n.input]
    assert "dense_1/BiasAdd" in body_inputs
    # Graph inputs and outputs are the runtime's contract: unchanged.
    assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["y"]
    np.testing.assert_array_equal(_run(model, x), before)


def test_a_scope_the_values_contradict_renames_nothing():
    """The kernel's scope names layer ``out``, but its values are ``dense_1``'s: the naming
    convention is not the known one, so every name stays."""
    model = _graph(kernel_scope="net_1/out_1")
    names = sorted(o for n in model.graph.node for o in n.output)
    assert readable_names(model, "net", LAYERS, VARIABLES) == 0
    assert sorted(o for n in model.graph.node for o in n.output) == names


def test_equal_values_in_two_layers_resolve_by_scope():
    """Untrained biases are all zeros: the values alone cannot say whose they are, the
    scope can."""
    zeros = np.zeros(4, np.float32)
    nodes = [helper.make_node("Add", ["x", "m_1/a_1/bias:0"], ["m_1/a_1/Add:0"]),
             helper.make_node("Add", ["m_1/a_1/Add:0", "m_1/b_1/bias:0"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(zeros, "m_1/a_1/bias:0"),
         numpy_helper.from_array(zeros, "m_1/b_1/bias:0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    readable_names(model, "m", ["a", "b"], {"a/bias": zeros, "b/bias": zeros})
    assert sorted(i.name for i in model.graph.initializer) == ["a/bias", "b/bias"]
    assert [list(n.input) for n in model.graph.node] == [["x", "a/bias"], ["a/Add", "b/bias"]]


def test_folded_weights_name_their_node_after_the_weights_layer():
    """tf2onnx folds a batch norm into the convolution before it: the weights (no longer any
    variable's values) keep the convolution's scope, the bias the batch norm's. The unscoped
    Conv is named after its weights' layer, and a constant only a scoped node reads is named
    after that node's layer and the operator's input."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "m_1/conv_1/merged:0", "m_1/bn_1/sub:0"],
                              ["Conv__27:0"], name="Conv__27"),
             helper.make_node("Relu", ["Conv__27:0"], ["m_1/act_1/Relu:0"], name="m_1/act_1/Relu"),
             helper.make_node("Mul", ["m_1/act_1/Relu:0", "Fused__9"], ["y"],
                              name="m_1/act_1/scale")]
    inits = [numpy_helper.from_array(rng.normal(size=(2, 1, 3, 3)).astype(np.float32),
                                     "m_1/conv_1/merged:0"),
             numpy_helper.from_array(rng.normal(size=(2,)).astype(np.float32), "m_1/bn_1/sub:0"),
             numpy_helper.from_array(np.full((1, 2, 1, 1), 0.5, np.float32), "Fused__9")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = session.run(None, {"x": x})[0]
    readable_names(model, "m", ["conv", "bn", "act"], {})
    assert [n.name for n in model.graph.node] == ["conv/Conv", "act/Relu", "act/scale"]
    assert list(model.graph.node[0].input) == ["x", "conv/merged", "bn/sub"]
    assert list(model.graph.node[2].input) == ["act/Relu", "act/B"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], before)
