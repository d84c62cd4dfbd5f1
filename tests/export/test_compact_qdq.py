"""What makes a quantized file smaller without changing what onnxruntime runs: the
Quantize/Dequantize pairs it puts back itself, and the quantizer's long names."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _pooled_qdq(scale_after_pool: float = 0.05, opset: int = 17, shared_pool: bool = False):
    """x [N, 4, 4, 4] -> Q/DQ -> MaxPool -> Q/DQ -> Transpose -> Q/DQ -> Reshape -> Q/DQ ->
    Gemm (int8 weights) -> y: the pairs after the pool, the transpose and the reshape are the
    ones onnxruntime's QDQ propagation writes itself. ``scale_after_pool``: the scale of the
    pair after the pool (0.05 is the first pair's). ``shared_pool``: the pool's output is
    also a graph output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def pair(src, name, scale="s"):
        return [helper.make_node("QuantizeLinear", [src, scale, "z"], [f"{name}_q"],
                                 name=f"{name}_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [f"{name}_q", scale, "z"], [f"{name}_dq"],
                                 name=f"{name}_DequantizeLinear")]

    after_pool = "s" if scale_after_pool == 0.05 else "s2"
    nodes = [*pair("x", "in"),
             helper.make_node("MaxPool", ["in_dq"], ["pooled"], name="pool/MaxPool",
                              kernel_shape=[2, 2], strides=[2, 2]),
             *pair("pooled", "pooled", after_pool),
             helper.make_node("Transpose", ["pooled_dq"], ["moved"], name="pool/Transpose",
                              perm=[0, 2, 3, 1]),
             *pair("moved", "moved", after_pool),
             helper.make_node("Reshape", ["moved_dq", "shape"], ["flat"], name="flatten/Reshape"),
             *pair("flat", "flat", after_pool),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["w_dq"], name="dense/w"),
             helper.make_node("Gemm", ["flat_dq", "w_dq"], ["y"], name="dense/Gemm")]
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (16, 3)).astype(np.int8), "w"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(scale_after_pool, np.float32), "s2"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]
    if shared_pool:
        outputs.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT,
                                                      ["N", 4, 2, 2]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4, 4])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _optimised(model) -> tuple[list[str], np.ndarray]:
    """onnxruntime's optimised operators and the outputs on a fixed input."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = os.path.join(tmp, "optimised.onnx")
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    x = np.random.default_rng(1).normal(0, 3, (5, 4, 4, 4)).astype(np.float32)
    return ops, session.run(["y"], {"x": x})[0]


def test_pairs_onnxruntime_puts_back_are_dropped_and_it_runs_the_same_graph():
    from edge_infer.export.qdq import drop_propagated_pairs

    model = _pooled_qdq()
    ops, y = _optimised(model)
    assert drop_propagated_pairs(model) == 3
    onnx.checker.check_model(model)
    kept = [(n.op_type, n.input[0]) for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert kept == [("QuantizeLinear", "x"), ("DequantizeLinear", "in_q"),
                    ("DequantizeLinear", "w")]
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert gemm.input[0] == "flat"
    after, y_after = _optimised(model)
    assert after == ops and "QGemm" in ops  # onnxruntime put the pairs back and fused them
    np.testing.assert_array_equal(y_after, y)
    assert drop_propagated_pairs(model) == 0


@pytest.mark.parametrize("case, quantized", [
    # the pool's pair changes the scale (a requantization): it stays, the two after it match it
    ("other scale", ["x", "pooled"]),
    # the pool's output is a graph output, which its pair cannot be moved past
    ("pool is an output", ["x", "pooled"]),
    # Reshape and Transpose are version 21 there, which not every onnxruntime from 1.16 on
    # carries a pair across; the pool (version 12) still does
    ("opset 21", ["x", "moved", "flat"])])
def test_pairs_onnxruntime_would_not_put_back_stay(case, quantized):
    from edge_infer.export.qdq import drop_propagated_pairs

    model = {"other scale": lambda: _pooled_qdq(scale_after_pool=0.1),
             "pool is an output": lambda: _pooled_qdq(shared_pool=True),
             "opset 21": lambda: _pooled_qdq(opset=21)}[case]()
    drop_propagated_pairs(model)
    onnx.checker.check_model(model)
    assert [n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"] == quantized


def test_long_quantizer_names_are_shortened_and_taken_names_kept():
    from onnx import TensorProto, helper

    from edge_infer.export.tidy import shorten_names

    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"],
                              ["x_QuantizeLinear_Output"], name="x_QuantizeLinear"),
             helper.make_node("DequantizeLinear", ["x_QuantizeLinear_Output", "x_scale",
                                                   "x_zero_point"],
                              ["x_DequantizeLinear_Output"], name="x_DequantizeLinear"),
             helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"],
                              ["w_DequantizeLinear_Output"], name="w_DequantizeLinear"),
             helper.make_node("Mul", ["x_DequantizeLinear_Output", "w_DequantizeLinear_Output"],
                              ["m"], name="layer/Mul"),
             # a name the short form of another already takes: both stay as they are
             helper.make_node("Add", ["m", "m_dq"], ["m_DequantizeLinear_Output"], name="add"),
             helper.make_node("Identity", ["m_DequantizeLinear_Output"],
                              ["y_DequantizeLinear_Output"], name="out")]
    inits = [helper.make_tensor("x_scale", TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("x_zero_point", TensorProto.UINT8, [], [128]),
             helper.make_tensor("w_quantized", TensorProto.INT8, [3], [1, -2, 3]),
             helper.make_tensor("w_scale", TensorProto.FLOAT, [], [0.5]),
             helper.make_tensor("w_zero_point", TensorProto.INT8, [], [0]),
             helper.make_tensor("m_dq", TensorProto.FLOAT, [3], [1, 1, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y_DequantizeLinear_Output", TensorProto.FLOAT,
                                       ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = run(model)
    size = model.ByteSize()
    assert shorten_names(model) == 9  # 6 tensors, 3 node names
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model), before)
    assert model.ByteSize() < size
    names = {t.name for t in model.graph.initializer}
    assert names == {"x_scale", "x_zp", "w_int8", "w_scale", "w_zp", "m_dq"}
    assert [n.name for n in model.graph.node] == ["x_q", "x_dq", "w_dq", "layer/Mul", "add",
                                                  "out"]
    assert [list(n.output) for n in model.graph.node][:2] == [["x_q"], ["x_dq"]]
    assert model.graph.node[4].output[0] == "m_DequantizeLinear_Output"  # m_dq is taken
    assert model.graph.output[0].name == "y_DequantizeLinear_Output"  # the interface stays
    assert shorten_names(model) == 0
