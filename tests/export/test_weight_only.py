"""Weight-only INT8: weights stored in int8, dequantized by onnxruntime when the model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.export.exporter import ExportConfig, export
from edge_infer.export.quantize import NothingQuantizedError, QuantizeConfig, quantize
from edge_infer.export.weight_only import quantize_weight, small_weights, store_weights_int8
from edge_infer.runtime import Model
from edge_infer.runtime.cli import cli
from edge_infer.runtime.modelfile import read_model_info

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def test_weights_round_to_int8_with_a_scale_per_channel():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5, 3)).astype(np.float32) * np.array([1, 10, 0.1, 0, 3])[None, :, None]
    q, scale = quantize_weight(w, axis=1)
    assert q.dtype == np.int8 and scale.shape == (1, 5, 1) and scale.dtype == np.float32
    assert q.min() >= -127  # symmetric: -128 is never used
    # Each channel's largest weight maps to +-127 and the error is at most half a step.
    assert np.all(np.abs(q[:, [0, 1, 2, 4]]).max(axis=(0, 2)) == 127)
    assert np.all(np.abs(q * scale - w) <= scale / 2 + 1e-7)
    assert np.all(q[:, 3] == 0) and scale[0, 3, 0] == 1.0  # an all-zero channel stays zero
    q1, one = quantize_weight(w, axis=None)
    assert one.shape == (1, 1, 1) and one.item() == pytest.approx(np.abs(w).max() / 127)
    # one scale for the tensor: the small channel loses its precision, per channel it keeps it
    assert np.abs(q1 * one - w)[:, 2].max() > 10 * np.abs(q * scale - w)[:, 2].max()


def _graph(op: str):
    """A one-operator model, its feed, and the weight's name, shape and channel axis."""
    rng = np.random.default_rng(1)
    x = rng.normal(size={"Conv": (2, 4, 6, 6), "ConvTranspose": (2, 4, 5, 5),
                         "Gemm": (2, 16), "GemmT": (2, 16), "MatMul": (2, 16),
                         "LSTM": (5, 2, 16), "Gather": (2, 3)}[op]).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))]
    if op == "Gather":
        x = np.array([[0, 5, 19], [3, 3, 7]], dtype=np.int64)
        inputs = [helper.make_tensor_value_info("x", TensorProto.INT64, [2, 3])]
    shape, axis, node, extra = {
        "Conv": ((8, 4, 3, 3), 0, helper.make_node("Conv", ["x", "w"], ["y"], name="l/op"), []),
        "ConvTranspose": ((4, 8, 3, 3), 1, helper.make_node("ConvTranspose", ["x", "w"], ["y"],
                                                             strides=[2, 2], name="l/op"), []),
        "Gemm": ((16, 8), 1, helper.make_node("Gemm", ["x", "w"], ["y"], name="l/op"), []),
        "GemmT": ((8, 16), 0, helper.make_node("Gemm", ["x", "w"], ["y"], transB=1,
                                               name="l/op"), []),
        "MatMul": ((16, 8), 1, helper.make_node("MatMul", ["x", "w"], ["y"], name="l/op"), []),
        "LSTM": ((1, 32, 16), 1, helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=8,
                                                   name="l/op"),
                 [numpy_helper.from_array(rng.normal(size=(1, 32, 8)).astype(np.float32), "r")]),
        "Gather": ((20, 16), 0, helper.make_node("Gather", ["w", "x"], ["y"], name="l/op"), []),
    }[op]
    weight = numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), "w")
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [weight, *extra])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), x, shape, axis


def _run(proto, x, tmp_path, name):
    """Outputs, and the operators onnxruntime runs after its optimisations."""
    path, optimized = tmp_path / f"{name}.onnx", tmp_path / f"{name}.opt.onnx"
    onnx.save(proto, str(path))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimized)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(optimized)).graph.node]
    return session.run(None, {"x": x})[0], ops


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose", "Gemm", "GemmT", "MatMul", "LSTM",
                                "Gather"])
def test_each_weight_is_stored_in_int8_and_folded_back_when_the_model_loads(op, tmp_path):
    """The file holds int8 weights and a scale per output channel (on the axis each operator
    keeps them); onnxruntime computes the float weight once at load, so the graph it runs is
    the float model's, and the outputs differ only by the rounding of the weights."""
    proto, x, shape, axis = _graph(op)
    expected, float_ops = _run(proto, x, tmp_path, "float")
    stored = store_weights_int8(proto, min_weights=0)
    assert stored["w"] == int(np.prod(shape))
    inits = {i.name: i for i in proto.graph.initializer}
    assert "w" not in inits and inits["w_int8"].data_type == TensorProto.INT8
    scale_shape = [1] * len(shape)
    scale_shape[axis] = shape[axis]
    assert list(inits["w_scale"].dims) == scale_shape
    got, ops = _run(proto, x, tmp_path, "int8")
    stored = read_model_info(tmp_path / "int8.onnx").int8_stored_weights()
    assert sorted(stored) == (["r", "w"] if op == "LSTM" else ["w"])
    assert ops == float_ops  # Cast and Mul folded away: no operator per call
    assert not np.array_equal(got, expected)  # the weights were rounded ...
    np.testing.assert_allclose(got, expected, atol=0.02 * np.abs(expected).max())  # ... finely


def test_small_tensors_excluded_nodes_and_thin_channels(tmp_path):
    """Below min_weights a weight stays float; a node named in ``exclude`` keeps its weight
    even when another node reads it too; an LSTM's recurrence weights with 8 values per
    channel get one scale for the tensor (32 scales would weigh half the int8 weights)."""
    proto, *_ = _graph("LSTM")
    assert store_weights_int8(proto, min_weights=512 + 1) == {}  # W has 512, R 256
    assert store_weights_int8(proto, min_weights=512) == {"w": 512}
    inits = {i.name: i for i in proto.graph.initializer}
    assert list(inits["w_scale"].dims) == [1, 32, 1] and inits["r"].data_type == TensorProto.FLOAT
    proto, *_ = _graph("LSTM")
    store_weights_int8(proto, min_weights=0)
    assert list({i.name: i for i in proto.graph.initializer}["r_scale"].dims) == [1, 1, 1]
    proto, *_ = _graph("LSTM")
    assert store_weights_int8(proto, min_weights=0, exclude=["l/op"]) == {}
    proto, *_ = _graph("Conv")
    proto.graph.node.append(helper.make_node("Conv", ["x", "w"], ["y2"], name="m/op"))
    assert store_weights_int8(proto, min_weights=0, exclude=["m/op"]) == {}
    assert store_weights_int8(proto, min_weights=0, per_channel=False) == {"w": 288}
    assert list({i.name: i for i in proto.graph.initializer}["w_scale"].dims) == [1, 1, 1, 1]


@pytest.mark.parametrize("op", ["ConvTranspose", "LSTM", "Gather"])
def test_small_layers_are_those_whose_every_weight_stays_float(op):
    """What quantize names as the small layers it keeps in float: every operator weight-only
    stores (not only the dynamic recipe's MatMul, Gemm and Conv), and an LSTM only when its
    recurrence weights stay float too."""
    proto, _, shape, _ = _graph(op)
    size = int(np.prod(shape))
    assert small_weights(proto, size) == {}  # its weight (the LSTM's W, 512) is stored
    assert small_weights(proto, size + 1) == {"l/op": size}
    if op == "LSTM":  # R (256 values) alone below the limit: the layer is still stored
        assert small_weights(proto, 300) == {}
        assert store_weights_int8(proto, min_weights=300) == {"w": 512}


@pytest.fixture(scope="module")
def exported(trained_runs):
    return {arch: export(ExportConfig(trained_runs[arch])).path for arch in ("lstm", "gan")}


def test_the_recipe_writes_a_smaller_file_that_runs_the_float_graph(exported, tmp_path):
    """On the zoo's lstm: a file under 40% of float32 (the one-epoch model's), the same
    labels, the report recorded, and ``info`` naming the format; the runtime runs it."""
    out = tmp_path / "lstm.w.onnx"
    result = quantize(QuantizeConfig(exported["lstm"], method="weight-only", out=out,
                                     max_accuracy_drop=100))
    report = result.report()
    assert report["size_ratio"] < 0.4 and report["top1_agreement"] >= 0.95
    assert result.settings == {"device": result.settings["device"], "per_channel": True,
                               "weight_type": "int8", "min_weights": 128}
    quantization = read_model_info(out).quantization()
    assert quantization["format"] == "weight-only" and quantization["weight_types"] == ["int8"]
    model = Model(out)
    assert model.metadata.labels == Model(exported["lstm"]).metadata.labels
    assert json.loads(model.metadata.raw["edge_infer.quantization"])["method"] == "weight-only"
    shown = CliRunner().invoke(cli, ["info", str(out)])
    assert "weight-only (int8 weights, per-channel)" in shown.output, shown.output


def test_a_generator_keeps_its_transposed_convolutions_float_at_run_time(exported, tmp_path):
    """The gan generator's ConvTranspose weights (most of the model) are stored in int8, and
    the graph onnxruntime runs has no DequantizeLinear: static INT8 left one per weight there,
    run on every call, as the CPU provider has no INT8 ConvTranspose."""
    out = tmp_path / "gan.w.onnx"
    lines: list[str] = []
    result = quantize(QuantizeConfig(exported["gan"], out=out), log=lines.append)
    assert result.method == "weight-only"  # auto, and the log says why
    assert any(line.startswith("auto picks weight-only, not static: most of its convolution "
                               "weights are in ConvTranspose") for line in lines), lines
    stored = read_model_info(out).int8_stored_weights()
    assert sum("conv2d_transpose" in name for name in stored) == 2, stored
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "ConvTranspose" in ops and not ops & {"Cast", "Mul", "DequantizeLinear"}, ops


def test_nothing_to_store_is_refused(tmp_path):
    from onnx import helper as h

    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="r/Relu")], "g",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "relu.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    with pytest.raises(NothingQuantizedError, match="nothing to store in int8 in relu.onnx"):
        quantize(QuantizeConfig(path, method="weight-only", out=tmp_path / "q.onnx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu.onnx"]


def test_names_stay_unique_and_an_overridable_initializer_stays_float():
    """A tensor already called ``w_int8`` gets company, not a twin; a weight that is also a
    graph input (a default the caller may override, IR < 4 style) is left alone."""
    proto, *_ = _graph("MatMul")
    proto.graph.node.append(helper.make_node("Relu", ["y"], ["w_int8"], name="w_int8"))
    store_weights_int8(proto, min_weights=0)
    names = [i.name for i in proto.graph.initializer]
    assert "w_int8_1" in names and "w_int8" not in names
    assert len({n.name for n in proto.graph.node}) == len(proto.graph.node)
    proto, *_ = _graph("MatMul")
    proto.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [16, 8]))
    assert store_weights_int8(proto, min_weights=0) == {}
