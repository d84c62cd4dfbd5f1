"""Graph simplifications: the flatten tf2onnx emits collapses to Reshape -> Gemm, outputs equal."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.simplify import simplify  # noqa: E402


def _flatten_dense(trans_b: bool, extra_consumer: bool = False, op: str = "Gemm"):
    """x[N,2,3,4] NCHW -> Transpose to NHWC -> Reshape to [N, 24] through a Shape subgraph
    (what tf2onnx writes for Keras Flatten) -> dense layer with constant weights."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 24) if trans_b else (24, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["t"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "k"], ["shape"], axis=0),
        helper.make_node("Reshape", ["t", "shape"], ["flat"]),
    ]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([24], np.int64), "k"),
             numpy_helper.from_array(w, "w")]
    if op == "Gemm":
        nodes.append(helper.make_node("Gemm", ["flat", "w"], ["y"], transB=int(trans_b)))
    else:
        nodes.append(helper.make_node("MatMul", ["flat", "w"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])]
    if extra_consumer:
        nodes.append(helper.make_node("Identity", ["t"], ["nhwc"]))
        outputs.append(helper.make_tensor_value_info("nhwc", TensorProto.FLOAT, ["N", 3, 4, 2]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
        outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("trans_b,op", [(False, "Gemm"), (True, "Gemm"), (False, "MatMul")])
def test_flatten_collapses_to_reshape_and_dense(trans_b, op):
    model = _flatten_dense(trans_b, op=op)
    x = np.random.default_rng(1).normal(size=(7, 2, 3, 4)).astype(np.float32)
    before = _run(model, x)[0]
    changed = simplify(model)
    onnx.checker.check_model(model)
    assert changed == {"fold_reshapes": 1, "absorb_flatten_transpose": 1}
    assert [n.op_type for n in model.graph.node] == ["Reshape", op]
    assert {i.name for i in model.graph.initializer} >= {"w"}
    assert not {"zero", "one", "k"} & {i.name for i in model.graph.initializer}
    after = _run(model, x)[0]
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    # Still batch-dynamic: another batch size gives the same rows.
    np.testing.assert_allclose(_run(model, x[:1])[0], before[:1], rtol=0, atol=1e-5)


def test_a_transpose_with_another_consumer_is_kept():
    model = _flatten_dense(False, extra_consumer=True)
    x = np.random.default_rng(2).normal(size=(3, 2, 3, 4)).astype(np.float32)
    before = _run(model, x)
    changed = simplify(model)
    assert changed["absorb_flatten_transpose"] == 0
    assert "Transpose" in [n.op_type for n in model.graph.node]
    for a, b in zip(_run(model, x), before):
        np.testing.assert_array_equal(a, b)


def test_a_reshape_that_changes_the_batch_is_not_folded():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Mul", ["n", "six"], ["n6"]),
             helper.make_node("Concat", ["n6", "four"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array([v], np.int64), name)
             for name, v in (("zero", 0), ("one", 1), ("six", 6), ("four", 4))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 2, 3, 4)
    before = _run(model, x)[0]
    simplify(model)
    after = _run(model, x)[0]
    assert after.shape == (12, 4)
    np.testing.assert_array_equal(after, before)
