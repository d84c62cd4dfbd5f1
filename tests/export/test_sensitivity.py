"""Per-layer output error of a quantized model against its float original."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.sensitivity import layer_errors, worst_jump  # noqa: E402

RNG = np.random.default_rng(0)
A = RNG.normal(size=(4, 8)).astype(np.float32)
B = RNG.normal(size=(8, 8)).astype(np.float32)
C = RNG.normal(size=(8, 3)).astype(np.float32)


def _mlp(path, b=B, qdq_after_a: bool = False):
    """x -> a/MatMul -> b/MatMul -> c/MatMul -> y, optionally with a Quantize/Dequantize pair
    on a's output (what a QDQ model's next layer reads)."""
    nodes = [helper.make_node("MatMul", ["x", "a_w"], ["a_out"], name="a/MatMul")]
    b_in = "a_out"
    inits = [numpy_helper.from_array(A, "a_w"), numpy_helper.from_array(b, "b_w"),
             numpy_helper.from_array(C, "c_w")]
    if qdq_after_a:
        nodes += [helper.make_node("QuantizeLinear", ["a_out", "s", "z"], ["a_q"], name="q"),
                  helper.make_node("DequantizeLinear", ["a_q", "s", "z"], ["a_dq"], name="dq")]
        inits += [numpy_helper.from_array(np.array(0.5, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        b_in = "a_dq"
    nodes += [helper.make_node("MatMul", [b_in, "b_w"], ["b_out"], name="b/MatMul"),
              helper.make_node("MatMul", ["b_out", "c_w"], ["y"], name="c/MatMul")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_layer_that_changed_shows_the_jump(tmp_path):
    x = RNG.normal(size=(100, 4)).astype(np.float32)
    original = _mlp(tmp_path / "f.onnx")
    noisy = B + RNG.normal(scale=0.1 * np.abs(B).mean(), size=B.shape).astype(np.float32)
    changed = _mlp(tmp_path / "q.onnx", b=noisy)
    errors = layer_errors(original, changed, x)
    assert [e.layer for e in errors] == ["a", "b", "c"]
    assert errors[0].relative_error == 0 and errors[1].relative_error > 0.01
    assert worst_jump(errors).layer == "b"


def test_a_qdq_layer_is_compared_after_its_dequantize(tmp_path):
    """The quantized side of layer a is what b reads: the dequantized value, which differs from
    the float output by the rounding to steps of 0.5."""
    x = RNG.normal(size=(100, 4)).astype(np.float32)
    errors = layer_errors(_mlp(tmp_path / "f.onnx"), _mlp(tmp_path / "q.onnx", qdq_after_a=True),
                          x)
    a_out = x @ A
    rounded = np.clip(np.round(a_out / 0.5), -128, 127) * 0.5
    expected = np.linalg.norm(rounded - a_out) / np.linalg.norm(a_out)
    assert errors[0].layer == "a"
    assert errors[0].relative_error == pytest.approx(expected, rel=1e-4)
    assert worst_jump(errors).layer == "a"
