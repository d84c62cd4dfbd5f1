"""Quantization recipes, the side-by-side report, the accuracy guard, and the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.export import quantize as qmod
from edge_infer.export.exporter import ExportConfig, export
from edge_infer.export.auto import choose_method
from edge_infer.runtime.compat import Requirement, recorded
from edge_infer.export.quantize import AccuracyGuardError, QuantizeConfig, Recipe, quantize
from edge_infer.runtime import Model
from edge_infer.runtime.cli import cli
from edge_infer.runtime.modelfile import read_model_info


def _layers(model, prefix: str = "") -> list[str]:
    """The model's layer names (from its node names) that start with ``prefix``."""
    return [layer.name for layer in read_model_info(model).layers()
            if layer.name.startswith(prefix)]


@pytest.fixture(scope="module")
def exported(trained_runs):
    """cnn and lstm exported as model.onnx inside their run folders."""
    return {arch: export(ExportConfig(trained_runs[arch])).path for arch in ("cnn", "lstm")}


@pytest.mark.parametrize("arch,method,fmt", [("cnn", "static", "QDQ"), ("lstm", "dynamic", "dynamic"),
                                             ("cnn", "fp16", "fp16")])
def test_recipes(exported, tmp_path, caplog, arch, method, fmt):
    out = tmp_path / f"{arch}.{method}.onnx"
    # One-epoch models: this checks formats and reports; quality lives in the benchmarks.
    result = quantize(QuantizeConfig(exported[arch], method=method, out=out,
                                     max_accuracy_drop=100))
    assert "pre-processing" not in caplog.text  # onnxruntime's advice, moot for every recipe
    info = read_model_info(out)
    assert info.quantization()["format"] == fmt
    report = result.report()
    assert report["original"]["metric"] == "accuracy" and report["quantized"]["value"] is not None
    assert report["size_ratio"] < (0.6 if method == "fp16" else 0.5)
    assert result.drop_points == pytest.approx(
        (report["original"]["value"] - report["quantized"]["value"]) * 100)
    assert 0 <= report["top1_agreement"] <= 1 and report["original"]["latency_ms"] > 0
    # The quantized model keeps the contract (labels, preprocessing) and records its report.
    model = Model(out)
    assert model.metadata.labels == Model(exported[arch]).metadata.labels
    recorded = json.loads(model.metadata.raw["edge_infer.quantization"])
    assert recorded["method"] == method and recorded["size_ratio"] == report["size_ratio"]
    # The report states the size of the file it is in, and the file carries no dead weight.
    assert recorded["quantized"]["size_bytes"] == out.stat().st_size
    import onnx

    proto = onnx.load(str(out))
    assert not proto.graph.value_info
    assert {op.domain for op in proto.opset_import} == {n.domain for n in proto.graph.node} | {""}


def test_small_layers_are_those_with_few_constant_weights():
    from onnx import TensorProto, helper, numpy_helper

    from edge_infer.export.quantize import small_layers

    def init(name, *shape):
        return numpy_helper.from_array(np.zeros(shape, np.float32), name)

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "big"], ["a"], name="big/MatMul"),
         helper.make_node("Gemm", ["a", "small", "b"], ["c"], name="head/Gemm"),
         helper.make_node("MatMul", ["c", "c"], ["y"], name="activations/MatMul")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [init("big", 64, 32), init("small", 32, 4), init("b", 4)])
    assert small_layers(helper.make_model(graph), 1024) == {"head/Gemm": 128}
    assert small_layers(helper.make_model(graph), 0) == {}
    assert small_layers(helper.make_model(graph), 4096) == {"big/MatMul": 2048,
                                                            "head/Gemm": 128}


def test_dynamic_keeps_a_small_classifier_in_float(exported, tmp_path):
    """Quantizing a small classifier head makes six operators of one Gemm and a larger file."""
    import onnx

    kept, every = tmp_path / "kept.onnx", tmp_path / "every.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(exported["lstm"]), "--method", "dynamic",
                                      "--max-accuracy-drop", "100", "-o", str(kept)])
    assert result.exit_code == 0, result.output
    assert "keeping small layers in float (fewer than 1024 weights" in result.output
    assert "probabilities (" in result.output
    result = CliRunner().invoke(cli, ["quantize", str(exported["lstm"]), "--method", "dynamic",
                                      "--max-accuracy-drop", "100", "--min-weights", "0",
                                      "-o", str(every)])
    assert result.exit_code == 0, result.output
    ops = {p: [n.op_type for n in onnx.load(str(p)).graph.node] for p in (kept, every)}
    # onnxruntime's dynamic quantizer splits a Gemm into MatMul + Add, float or not.
    assert "MatMul" in ops[kept] and "MatMulInteger" not in ops[kept]
    assert "MatMulInteger" in ops[every] and "MatMul" not in ops[every]
    assert all("DynamicQuantizeLSTM" in o for o in ops.values())
    assert kept.stat().st_size < every.stat().st_size
    recorded = json.loads(Model(kept).metadata.raw["edge_infer.quantization"])
    assert recorded["settings"]["min_weights"] == 1024


def test_weight_scales_are_per_tensor_for_dynamic_and_per_channel_for_static(exported, tmp_path):
    """Dynamic defaults to one scale per weight tensor (smaller, and as accurate on the
    lstm), static to one per output channel; --per-channel / --per-tensor override both."""
    import onnx
    from onnx import numpy_helper

    def lstm_scales(path):
        proto = onnx.load(str(path))
        inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        nodes = [n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM"]
        assert nodes
        return [inits[n.input[8]].size for n in nodes]  # W_scale

    default, channels = tmp_path / "default.onnx", tmp_path / "channels.onnx"
    for out, flags in ((default, []), (channels, ["--per-channel"])):
        result = CliRunner().invoke(cli, ["quantize", str(exported["lstm"]), "--method",
                                          "dynamic", "--max-accuracy-drop", "100", "-o",
                                          str(out), *flags])
        assert result.exit_code == 0, result.output
    assert set(lstm_scales(default)) == {1}
    assert min(lstm_scales(channels)) > 1  # 4 gates x hidden units
    # ... and `edge-infer info` reads which from the file
    assert [read_model_info(p).quantization()["per_channel"] for p in (default, channels)] \
        == [False, True]
    assert default.stat().st_size < channels.stat().st_size
    settings = {p: json.loads(Model(p).metadata.raw["edge_infer.quantization"])["settings"]
                for p in (default, channels)}
    assert settings[default]["per_channel"] is False
    assert settings[channels]["per_channel"] is True
    assert qmod.resolve(QuantizeConfig(exported["cnn"], method="static")).per_channel is True
    assert qmod.resolve(QuantizeConfig(exported["cnn"], method="static",
                                       per_channel=False)).per_channel is False


def test_auto_picks_static_for_convolutions_and_weight_only_otherwise(exported):
    assert choose_method(exported["cnn"]) == "static"
    assert choose_method(exported["lstm"]) == "weight-only"


def test_accuracy_guard_refuses_and_writes_nothing(exported, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    second_conv = _layers(exported["cnn"], "conv2d")[1]  # Keras numbers them per process

    def ruin(src, dst, config, calibration):  # one layer's weights, zeroed
        model = onnx.load(str(src))
        for init in model.graph.initializer:
            if init.name == f"{second_conv}/kernel":
                init.CopyFrom(numpy_helper.from_array(
                    np.zeros(tuple(init.dims), np.float32), init.name))
        onnx.save(model, str(dst))

    monkeypatch.setitem(qmod.RECIPES, "dynamic", Recipe("dynamic", "ruins the weights", "int8",
                                                        "try something else", ruin))
    out = tmp_path / "bad.onnx"
    # The refusal names the layer where the output error jumps (export/sensitivity.py).
    with pytest.raises(AccuracyGuardError, match=rf"lowers accuracy by .* points.*nothing was "
                                                 rf"written; the error grows most at layer "
                                                 rf"{second_conv} .*try --exclude {second_conv}; "
                                                 rf"try something else"):
        quantize(QuantizeConfig(exported["cnn"], method="dynamic", out=out,
                                max_accuracy_drop=0.5))
    assert not out.exists()


def test_config_is_validated(exported):
    from edge_infer.runtime.errors import UnknownNameError, UsageError

    with pytest.raises(UnknownNameError, match="unknown quantization method 'int4'"):
        QuantizeConfig(exported["cnn"], method="int4")
    with pytest.raises(UsageError, match="max accuracy drop must be >= 0"):
        QuantizeConfig(exported["cnn"], max_accuracy_drop=-1)


def test_paths_given_as_strings_work_from_python(exported, tmp_path):
    """The configs' paths are Path whatever Python callers pass (out.with_name, .suffix)."""
    config = QuantizeConfig(str(exported["cnn"]), method="fp16", out=str(tmp_path / "h.onnx"))
    assert isinstance(config.model, Path) and isinstance(config.out, Path)
    assert quantize(config).path == tmp_path / "h.onnx"
    assert isinstance(ExportConfig("runs/x", out="m.onnx").out, Path)


def test_cli_table_and_json(exported, tmp_path):
    runner = CliRunner()
    out = tmp_path / "q.onnx"
    result = runner.invoke(cli, ["quantize", str(exported["cnn"]), "--out", str(out),
                                 "--max-accuracy-drop", "100"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "latency, batch 1" in result.stdout
    assert f"wrote {out}" in result.stdout
    result = runner.invoke(cli, ["quantize", str(exported["lstm"]), "-m", "fp16", "-f", "json",
                                 "--out", str(tmp_path / "f.onnx")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == "fp16"
    missing = runner.invoke(cli, ["quantize", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    folder = runner.invoke(cli, ["quantize", str(exported["cnn"].parent)])
    assert folder.exit_code == 2
    assert f"{exported['cnn'].parent} is a folder; expected an .onnx model file, such as " \
        in folder.output


def test_device_profile_sets_the_types_and_what_auto_picks(exported, tmp_path):
    assert choose_method(exported["cnn"], "jetson-orin") == "fp16"
    assert choose_method(exported["lstm"], "rpi5") == "weight-only"
    assert choose_method(exported["lstm"], "x86-cuda") == "fp16"
    assert choose_method(exported["cnn"], "rpi4") == "static"
    out = tmp_path / "rpi.onnx"
    result = quantize(QuantizeConfig(exported["cnn"], device="rpi5", out=out,
                                     max_accuracy_drop=100))
    assert result.method == "static"
    info = read_model_info(out).quantization()
    assert info["activation_types"] == ["int8"] and info["weight_types"] == ["int8"]
    recorded = json.loads(Model(out).metadata.raw["edge_infer.quantization"])
    assert recorded["settings"]["device"] == "rpi5"
    assert recorded["settings"]["activation_type"] == "int8"
    assert recorded["settings"]["reduce_range"] is False
    # An explicit flag beats the profile.
    result = quantize(QuantizeConfig(exported["cnn"], device="rpi5", activation_type="uint8",
                                     out=out, max_accuracy_drop=100))
    assert read_model_info(out).quantization()["activation_types"] == ["uint8"]
    gpu = quantize(QuantizeConfig(exported["cnn"], device="jetson-nano",
                                  out=tmp_path / "j.onnx", max_accuracy_drop=100))
    assert gpu.method == "fp16" and read_model_info(gpu.path).quantization()["format"] == "fp16"


def test_a_quantized_model_is_refused_and_its_float32_source_named(exported, tmp_path):
    """onnxruntime's quantizer wrote an unloadable file from a QDQ model (duplicate node
    names), after warnings and a list of recipes to try: now one line, before any work."""
    import shutil

    from onnxruntime.quantization import quantize_dynamic

    src = tmp_path / "model.onnx"
    shutil.copy(exported["cnn"], src)
    quantize_dynamic(str(src), str(tmp_path / "model.int8.onnx"))
    result = CliRunner().invoke(cli, ["quantize", str(tmp_path / "model.int8.onnx"),
                                      "--method", "static"])
    assert result.exit_code == 2, result.output
    assert "model.int8.onnx is already quantized (dynamic); expected a float32 model: " \
           f"quantize {src} instead" in result.output
    shutil.move(tmp_path / "model.int8.onnx", tmp_path / "other.onnx")
    result = CliRunner().invoke(cli, ["quantize", str(tmp_path / "other.onnx")])
    assert result.exit_code == 2 and "the float32 model it was made from" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "other.onnx"]


def test_unknown_device_is_refused_with_the_known_ones(exported):
    from edge_infer.runtime.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown device profile 'toaster'.*rpi5"):
        QuantizeConfig(exported["cnn"], device="toaster")
    result = CliRunner().invoke(cli, ["quantize", str(exported["cnn"]), "--device", "toaster"])
    assert result.exit_code == 2 and "rpi5" in result.output


def test_a_generator_calibrates_on_latent_vectors_not_its_training_images(trained_runs, tmp_path):
    onnx_path = export(ExportConfig(trained_runs["gan"])).path
    result = quantize(QuantizeConfig(onnx_path, method="static", out=tmp_path / "g.onnx"))
    assert result.quantized.metric == "none" and result.max_abs_diff < 1.0
    assert read_model_info(result.path).quantization()["format"] == "QDQ"


def test_a_dataset_of_the_wrong_shape_is_refused(exported):
    from edge_infer.runtime.errors import UsageError

    with pytest.raises(UsageError, match=r"waves gives inputs of shape \[50, 1\].*takes"):
        quantize(QuantizeConfig(exported["cnn"], dataset="waves"))


def test_static_int8_keeps_the_classifier_head_in_float(exported, tmp_path):
    """The last dense layer writes float and the softmax runs in float: probabilities are not
    rounded to 1/255 steps, and onnxruntime still fuses the dense layer into a QGemm."""
    import onnxruntime as ort

    out = tmp_path / "cnn.static.onnx"
    quantize(QuantizeConfig(exported["cnn"], method="static", out=out, max_accuracy_drop=100))
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    session = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in read_model_info(tmp_path / "optimized.onnx").nodes]
    assert ops[-2:] == ["QGemm", "Softmax"], ops
    x = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
    probs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert len(np.unique(probs)) > 256  # a uint8 output would allow at most 256 values


def _qdq_head(dense_is_output: bool):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"], name="dense"),
             helper.make_node("QuantizeLinear", ["logits", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq"),
             helper.make_node("Softmax", ["dq"], ["probs"], name="softmax")]
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.ones(12).tolist()),
             helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
             helper.make_tensor("z", TensorProto.UINT8, [], [128])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])]
    if dense_is_output:
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 4])], outputs, inits)
    return onnx.helper.make_model(graph)


def test_float_head_drops_only_a_private_quantize_pair():
    from edge_infer.export.qdq import float_head, head_activations

    proto = _qdq_head(dense_is_output=False)
    assert head_activations(proto) == ["softmax"]
    assert float_head(proto, ["softmax"]) == 1
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Softmax"]
    assert proto.graph.node[1].input[0] == "logits"
    assert {i.name for i in proto.graph.initializer} == {"w"}  # scale and zero point dropped
    # The quantized logits are also an output: the pair is not ours to remove.
    shared = _qdq_head(dense_is_output=True)
    assert float_head(shared, ["softmax"]) == 0 and len(shared.graph.node) == 4


def _biased(zero_points: dict[str, list[int]]):
    """x + dequantized int32 bias per named zero point, plus an int8 weight with a zero
    zero point, and a declared but unused opset and an intermediate shape annotation."""
    import onnx
    from onnx import TensorProto, helper

    nodes, inits, last = [], [], "x"
    for k, (name, zp) in enumerate(zero_points.items()):
        nodes += [helper.make_node("DequantizeLinear", [f"b{k}", f"s{k}", name], [f"d{k}"], axis=0),
                  helper.make_node("Add", [last, f"d{k}"], [f"a{k}"])]
        inits += [helper.make_tensor(f"b{k}", TensorProto.INT32, [3], [5, -7, 11]),
                  helper.make_tensor(f"s{k}", TensorProto.FLOAT, [3], [0.5, 0.25, 0.125]),
                  helper.make_tensor(name, TensorProto.INT32, [3], zp)]
        last = f"a{k}"
    nodes += [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["dw"]),
              helper.make_node("Mul", [last, "dw"], ["y"])]
    inits += [helper.make_tensor("w", TensorProto.INT8, [3], [1, 2, 3]),
              helper.make_tensor("ws", TensorProto.FLOAT, [], [0.5]),
              helper.make_tensor("wz", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits,
        value_info=[helper.make_tensor_value_info("a0", TensorProto.FLOAT, ["N", 3])])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("ai.onnx.ml", 3)])


def test_tidy_removes_only_what_nothing_reads():
    import onnx
    import onnxruntime as ort

    from edge_infer.export.tidy import tidy

    proto = _biased({"zero": [0, 0, 0], "nonzero": [0, 1, 0]})
    onnx.checker.check_model(proto)
    x = np.random.default_rng(0).random((2, 3), dtype=np.float32)

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    before = run(proto)
    proto.metadata_props.add(key="onnx.quant.pre_process", value="onnxruntime.quant")
    proto.metadata_props.add(key="edge_infer.task", value="classification")
    assert tidy(proto) == {"value_info": 1, "opset_imports": 1, "bias_zero_points": 1,
                           "tool_props": 1, "names": 0}
    onnx.checker.check_model(proto)
    np.testing.assert_array_equal(run(proto), before)
    names = {i.name for i in proto.graph.initializer}
    assert "zero" not in names and {"nonzero", "wz"} <= names  # int8 and non-zero ones stay
    assert [len(n.input) for n in proto.graph.node if n.op_type == "DequantizeLinear"] == [2, 3, 3]
    assert [op.domain for op in proto.opset_import] == [""]
    assert [p.key for p in proto.metadata_props] == ["edge_infer.task"]  # ours stay
    assert tidy(proto) == {"value_info": 0, "opset_imports": 0, "bias_zero_points": 0,
                           "tool_props": 0, "names": 0}


def test_accuracy_change_reads_as_words():
    from edge_infer.export.report import accuracy_change

    assert accuracy_change(0.4178) == "drop 0.42 points"
    assert accuracy_change(-0.2786) == "gain 0.28 points"
    assert accuracy_change(0.0) == accuracy_change(-0.001) == "no change"


@pytest.mark.parametrize("method", ["static", "dynamic", "weight-only", "fp16"])
def test_excluded_layers_stay_float(exported, tmp_path, method):
    """``--exclude LAYER`` keeps a Keras layer's operators in float32 (exported names are the
    Keras layers', export/names.py); the other layers are still quantized."""
    import onnx

    if method == "dynamic":
        arch, layer, other = "lstm", "probabilities", _layers(exported["lstm"], "lstm")[0]
    else:
        arch, (layer, other) = "cnn", _layers(exported["cnn"], "conv2d")
    out = tmp_path / f"{method}.onnx"
    result = quantize(QuantizeConfig(exported[arch], method=method, out=out,
                                     exclude=(layer,), max_accuracy_drop=100))
    assert result.settings["exclude"] == [layer]
    graph = onnx.load(str(out)).graph
    inits = {i.name: i.data_type for i in graph.initializer}
    # The excluded kernel is the float32 original, read by its operator directly.
    assert inits[f"{layer}/kernel"] == onnx.TensorProto.FLOAT
    reader = next(n for n in graph.node if f"{layer}/kernel" in n.input)
    assert reader.op_type in ("Conv", "Gemm", "MatMul")
    # Another layer is quantized (compare types: dynamic INT8 and fp16 rename nothing, and
    # weight-only's int8 tensor is NAME_int8).
    quantized = [name for name, t in inits.items() if name.startswith(f"{other}/")
                 and t != onnx.TensorProto.FLOAT]
    assert quantized, inits


def test_an_unknown_layer_to_exclude_is_refused_with_the_layers(exported, tmp_path):
    from edge_infer.runtime.errors import UsageError

    out = tmp_path / "x.onnx"
    with pytest.raises(UsageError, match="--exclude conv9: no layer.*conv2d.*, max_pooling2d"):
        quantize(QuantizeConfig(exported["cnn"], method="static", out=out, exclude=("conv9",)))
    assert not out.exists()
    result = CliRunner().invoke(cli, ["quantize", str(exported["cnn"]), "-x", "conv9"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the model's layers are conv2d" in result.output  # conv2d or conv2d_N


def test_per_layer_errors_follow_the_graph_and_stay_small_on_a_good_recipe(exported, tmp_path):
    """Each Keras layer's output, compared after the Quantize/Dequantize pair the next layer
    reads (the quantizer drops a Relu the uint8 range clips: the tensor before the pair is
    not the layer's output)."""
    result = quantize(QuantizeConfig(exported["cnn"], method="static", per_layer=True,
                                     out=tmp_path / "q.onnx", max_accuracy_drop=100))
    layers = result.report()["layers"]
    kept = result.settings["exclude"]  # the first convolution (one channel) stays float32
    assert len(kept) == 1 and kept[0].startswith("conv2d")
    assert [e["layer"] for e in layers] == [n for n in _layers(exported["cnn"]) if n not in kept]
    assert [e["layer"].rstrip("_0123456789") for e in layers] == [
        "max_pooling2d", "conv2d", "max_pooling2d", "flatten", "probabilities"]
    assert all(0 < e["relative_error"] < 0.2 and e["sqnr_db"] > 14 for e in layers), layers
    # A diagnosis for the user: the shipped model does not carry it.
    stored = json.loads(Model(result.path).metadata.raw["edge_infer.quantization"])
    assert "layers" not in stored and stored["method"] == "static"
    table = CliRunner().invoke(cli, ["quantize", str(exported["cnn"]), "--per-layer", "-o",
                                     str(tmp_path / "q2.onnx"), "--max-accuracy-drop", "100"])
    assert table.exit_code == 0, table.output
    assert "output error per layer" in table.output and "<- largest jump" in table.output


def _two_input_classifier(path):
    """a[N, 4] and b[N, 3] -> concatenated -> dense -> softmax over 3 classes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(7, 3)).astype(np.float32), "dense/kernel")
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], name="concat/Concat", axis=1),
             helper.make_node("MatMul", ["ab", "dense/kernel"], ["logits"], name="dense/MatMul"),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="dense/Softmax")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_model_with_two_inputs_quantizes_on_an_npz_of_named_arrays(tmp_path):
    """One array per input, named after it, and y: calibration, evaluation and the per-layer
    comparison all feed every input."""
    import onnxruntime as ort

    path = _two_input_classifier(tmp_path / "two.onnx")
    rng = np.random.default_rng(1)
    a, b = rng.random((200, 4), dtype=np.float32), rng.random((200, 3), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"a": a, "b": b})[0].argmax(axis=1)  # the float model's answers
    data = tmp_path / "inputs.npz"
    np.savez(data, a=a, b=b, y=y)
    for method in ("static", "dynamic"):
        result = quantize(QuantizeConfig(path, method=method, dataset=str(data), per_layer=True,
                                         out=tmp_path / f"two.{method}.onnx",
                                         max_accuracy_drop=100, min_weights=0))
        assert result.original.metric == "accuracy" and result.original.value == 1.0
        assert result.quantized.value >= 0.9 and result.agreement >= 0.9
        assert [e.layer for e in result.layers][-1] == "dense"
    evaluated = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "two.static.onnx"),
                                         "--dataset", str(data), "-f", "json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["samples"] == 200


def _upsampled_residual(path):
    """x[N, 2, 4, 4] + AveragePool(Resize x2(x)) -> global pooling -> dense -> softmax: an
    UpSampling2D as edge-infer exports it (Resize by scales), added to its own input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up/scales"),
             numpy_helper.from_array(rng.normal(size=(2, 3)).astype(np.float32), "dense/kernel")]
    nodes = [helper.make_node("Resize", ["x", "", "up/scales"], ["up"], name="up/Resize",
                              mode="nearest"),
             helper.make_node("AveragePool", ["up"], ["pooled"], name="pool/AveragePool",
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Add", ["x", "pooled"], ["sum"], name="add/Add"),
             helper.make_node("GlobalAveragePool", ["sum"], ["gap"], name="gap/Pool"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="gap/Flatten"),
             helper.make_node("MatMul", ["flat", "dense/kernel"], ["logits"], name="dense/MatMul"),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="dense/Softmax")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_static_quantizes_an_upsampling_added_to_its_input(tmp_path):
    """onnxruntime's shape inference gives the Resize's batch as floor(1.0*N), which it could
    not match with N at the Add: quant_pre_process stopped with "Incomplete symbolic shape
    inference" unless told to merge them."""
    import onnxruntime as ort

    path = _upsampled_residual(tmp_path / "up.onnx")
    x = np.random.default_rng(1).random((64, 2, 4, 4), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x, y_train=session.run(None, {"x": x})[0].argmax(axis=1))
    result = quantize(QuantizeConfig(path, method="static", dataset=str(data),
                                     out=tmp_path / "up.int8.onnx", max_accuracy_drop=100))
    assert result.path.is_file() and result.max_abs_diff < 0.1


def _pooled_classifier(path, shape: list, ids: bool):
    """[N, *shape] -> (embedding lookup when ``ids``) -> mean over axis 1 -> dense -> softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    width = 4 if ids else shape[-1]
    inits = [numpy_helper.from_array(rng.normal(size=(width, 3)).astype(np.float32), "dense/w")]
    nodes = [helper.make_node("ReduceMean", ["features"], ["pooled"], name="pool/Mean",
                              axes=[1], keepdims=0),
             helper.make_node("MatMul", ["pooled", "dense/w"], ["logits"], name="dense/MatMul"),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="dense/Softmax")]
    if ids:
        inits.append(numpy_helper.from_array(rng.normal(size=(20, 4)).astype(np.float32),
                                             "embedding/table"))
        nodes.insert(0, helper.make_node("Gather", ["embedding/table", "x"], ["features"],
                                         name="embedding/Gather"))
    else:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["features"], name="input/Identity"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(
            "x", TensorProto.INT32 if ids else TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("ids", [False, True])
def test_an_npz_is_read_as_the_models_input_says(tmp_path, ids):
    """Alone, x of [N, 12, 16] floats looks like images (a channel axis was added, and the
    model refused the shape), and [N, 6] integers like float features (onnxruntime refused
    float for the int32 input); the model's input says they are a sequence and token ids."""
    import onnxruntime as ort

    shape = [6] if ids else [12, 16]
    path = _pooled_classifier(tmp_path / "m.onnx", shape, ids)
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 20, (80, *shape)).astype(np.int32) if ids
         else rng.random((80, *shape), dtype=np.float32))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0].argmax(axis=1)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    result = quantize(QuantizeConfig(path, method="dynamic", dataset=str(data),
                                     out=tmp_path / "m.int8.onnx", max_accuracy_drop=100,
                                     min_weights=0))
    assert result.original.value == 1.0 and result.agreement >= 0.9
    evaluated = CliRunner().invoke(cli, ["evaluate", str(path), "--dataset", str(data),
                                         "-f", "json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["samples"] == 20


def test_tensors_left_in_float_for_not_being_float_are_not_dumped_in_the_log(tmp_path, caplog):
    """A mask (booleans) is never quantized; onnxruntime logged a dozen lines of protobuf for
    each such tensor, in the middle of the report."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
                                "dense/w")
    zero = numpy_helper.from_array(np.array(0.5, np.float32), "zero")
    axis = numpy_helper.from_array(np.array([2], np.int64), "axis")
    steps_axis = numpy_helper.from_array(np.array([1], np.int64), "steps_axis")
    nodes = [helper.make_node("Greater", ["x", "zero"], ["mask"], name="mask/Greater"),
             helper.make_node("Unsqueeze", ["mask", "axis"], ["mask3"], name="mask/Unsqueeze"),
             helper.make_node("Transpose", ["mask3"], ["steps"], name="mask/Transpose",
                              perm=[0, 2, 1]),
             helper.make_node("Cast", ["steps"], ["weights3"], name="mask/Cast", to=1),
             helper.make_node("Squeeze", ["weights3", "steps_axis"], ["weights"],
                              name="mask/Squeeze"),
             helper.make_node("Mul", ["x", "weights"], ["kept"], name="mask/Mul"),
             helper.make_node("MatMul", ["kept", "dense/w"], ["logits"], name="dense/MatMul"),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="dense/Softmax")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [w, zero, axis, steps_axis])
    path = tmp_path / "masked.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = np.random.default_rng(1).random((60, 4), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x, y_train=session.run(None, {"x": x})[0].argmax(axis=1))
    caplog.set_level("WARNING")
    for method in ("dynamic", "static"):
        quantize(QuantizeConfig(path, method=method, dataset=str(data), max_accuracy_drop=100,
                                out=tmp_path / f"masked.{method}.onnx", min_weights=0))
    assert not any("elem_type" in r.getMessage() for r in caplog.records), caplog.text
    assert not logging.getLogger().filters  # the filter is gone afterwards


def _rnn_then_matmul(path):
    """ids -> embedding -> transpose -> RNN -> squeeze -> transpose -> MatMul -> softmax: the
    graph whose fp16 version onnxruntime 1.32's optimizer segfaults on (found by random
    models: a SimpleRNN before attention)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [init("embedding", 40, 16), init("rnn/W", 1, 16, 16), init("rnn/R", 1, 16, 16),
             init("rnn/B", 1, 32), init("dense/w", 16, 3),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["embedded"], name="embedding"),
             helper.make_node("Transpose", ["embedded"], ["steps"], name="rnn/in", perm=[1, 0, 2]),
             helper.make_node("RNN", ["steps", "rnn/W", "rnn/R", "rnn/B"], ["y", "y_h"],
                              name="rnn/RNN", hidden_size=16),
             helper.make_node("Squeeze", ["y", "axes"], ["y3"], name="rnn/Squeeze"),
             helper.make_node("Transpose", ["y3"], ["rows"], name="rnn/out", perm=[1, 0, 2]),
             helper.make_node("MatMul", ["rows", "dense/w"], ["logits"], name="dense/MatMul"),
             helper.make_node("ReduceMean", ["logits"], ["pooled"], name="pool", axes=[1],
                              keepdims=0),
             helper.make_node("Softmax", ["pooled"], ["probabilities"], name="dense/Softmax")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", 12])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_quantized_model_onnxruntime_crashes_on_is_refused_and_this_process_survives(
        tmp_path):
    """Opening the quantized file is tried in a child process first: a crash there is a
    refusal with the alternatives, not the end of the caller. (If onnxruntime no longer
    crashes on this graph, the fp16 model is written as usual.)"""
    import onnxruntime as ort

    from edge_infer.export.quantize import UnloadableError

    path = _rnn_then_matmul(tmp_path / "rnn.onnx")
    ids = np.random.default_rng(1).integers(1, 40, (40, 12)).astype(np.int32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.savez(tmp_path / "ids.npz", x_train=ids, y_train=session.run(None, {"ids": ids})[0]
             .argmax(axis=1))
    config = QuantizeConfig(path, method="fp16", dataset=str(tmp_path / "ids.npz"),
                            max_accuracy_drop=100, out=tmp_path / "rnn.fp16.onnx")
    try:
        quantize(config)
    except UnloadableError as exc:
        assert "crashed" in str(exc) and "try --method weight-only" in str(exc)
        assert not (tmp_path / "rnn.fp16.onnx").exists()
    else:
        assert (tmp_path / "rnn.fp16.onnx").is_file()


def test_opening_failures_are_described(tmp_path, monkeypatch):
    from edge_infer.export.quantize import UnloadableError, _opening_failure

    good = _two_input_classifier(tmp_path / "good.onnx")
    assert _opening_failure(good) is None
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert _opening_failure(tmp_path / "bad.onnx").startswith("failed (")
    monkeypatch.setattr(qmod, "_opening_failure", lambda _path: "crashed (signal 11)")
    with pytest.raises(UnloadableError, match="crashed .signal 11. opening the dynamic model"):
        quantize(QuantizeConfig(_pooled_classifier(tmp_path / "m.onnx", [12, 16], ids=False),
                                method="dynamic", dataset=str(_npz(tmp_path)),
                                out=tmp_path / "q.onnx", min_weights=0))
    assert not (tmp_path / "q.onnx").exists()


def _npz(tmp_path):
    x = np.random.default_rng(2).random((30, 12, 16), dtype=np.float32)
    np.savez(tmp_path / "seq.npz", x_train=x, y_train=np.arange(30) % 3)
    return tmp_path / "seq.npz"


def test_nothing_to_quantize_is_refused_before_any_work(tmp_path):
    """Every layer of this dense model is under --min-weights: dynamic would write float32
    again. The refusal comes before the data is asked for."""
    from edge_infer.export.quantize import NothingQuantizedError

    path = _two_input_classifier(tmp_path / "two.onnx")
    with pytest.raises(NothingQuantizedError, match="nothing to quantize in two.onnx.*"
                                                    "--min-weights 0 quantizes smaller"):
        quantize(QuantizeConfig(path, method="dynamic", out=tmp_path / "q.onnx"))
    with pytest.raises(NothingQuantizedError, match="this model has none \\(a GRU"):
        quantize(QuantizeConfig(path, method="dynamic", min_weights=0, exclude=("dense",),
                                out=tmp_path / "q.onnx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.onnx"]


def test_a_model_with_two_inputs_needs_named_arrays(tmp_path):
    path = _two_input_classifier(tmp_path / "two.onnx")
    result = CliRunner().invoke(cli, ["quantize", str(path), "--method", "dynamic",
                                      "--min-weights", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "has 2 inputs (a, b); pass --dataset FILE.npz with one array per input" \
        in result.output
    np.savez(tmp_path / "half.npz", a=np.zeros((5, 4), np.float32))
    result = CliRunner().invoke(cli, ["quantize", str(path), "-d", str(tmp_path / "half.npz"),
                                      "--min-weights", "0"])
    assert result.exit_code == 2 and "has no array for input b; expected a, b" in result.output



def test_auto_exclude_keeps_the_layer_where_the_error_jumps_and_retries(exported, tmp_path,
                                                                        monkeypatch):
    """A recipe that ruins one layer unless it is excluded: --auto-exclude finds that layer
    from the per-layer errors, keeps it in float, and the second attempt passes the guard."""
    import onnx
    from onnx import numpy_helper

    second_conv = _layers(exported["cnn"], "conv2d")[1]
    attempts: list[tuple[str, ...]] = []

    def ruin_unless_excluded(src, dst, config, calibration):
        attempts.append(config.exclude)
        model = onnx.load(str(src))
        for init in model.graph.initializer:
            if init.name == f"{second_conv}/kernel" and second_conv not in config.exclude:
                init.CopyFrom(numpy_helper.from_array(
                    np.zeros(tuple(init.dims), np.float32), init.name))
        onnx.save(model, str(dst))

    monkeypatch.setitem(qmod.RECIPES, "dynamic", Recipe("dynamic", "ruins one layer", "int8",
                                                        "try something else",
                                                        ruin_unless_excluded))
    lines: list[str] = []
    out = tmp_path / "auto.onnx"
    result = quantize(QuantizeConfig(exported["cnn"], method="dynamic", out=out,
                                     max_accuracy_drop=0.5, auto_exclude=2), log=lines.append)
    assert attempts == [(), (second_conv,)]
    assert result.settings["exclude"] == [second_conv] and out.is_file()
    assert any(f"error jumps at {second_conv}: keeping it in float" in line for line in lines)
    # Without the retry the guard refuses, and says which layer to try.
    attempts.clear()
    with pytest.raises(AccuracyGuardError, match=f"try --exclude {second_conv}"):
        quantize(QuantizeConfig(exported["cnn"], method="dynamic", out=tmp_path / "no.onnx",
                                max_accuracy_drop=0.5))
    assert attempts == [()]


def test_a_slower_quantized_model_gets_the_command_that_shows_where(capsys):
    from types import SimpleNamespace

    from edge_infer.export.cli import _note_slower

    def result(float_ms, int8_ms, method="static"):
        return SimpleNamespace(original=SimpleNamespace(latency_ms=float_ms),
                               quantized=SimpleNamespace(latency_ms=int8_ms),
                               path=Path("runs/x/model.int8.onnx"), method=method)

    _note_slower(Path("runs/x/model.onnx"), result(0.05, 0.0625))
    assert capsys.readouterr().err == (
        "note: model.int8.onnx ran slower than model.onnx at batch 1 here (0.80x); "
        "`edge-infer bench runs/x/model.onnx runs/x/model.int8.onnx -b 1 -b 64 --profile` "
        "shows where the time goes\n")
    for float_ms, int8_ms in ((0.05, 0.052), (0.05, 0.04)):  # within the noise, or faster
        _note_slower(Path("runs/x/model.onnx"), result(float_ms, int8_ms))
        assert capsys.readouterr().err == ""
    # weight-only runs the float32 graph: the same 0.80x is noise there
    _note_slower(Path("runs/x/model.onnx"), result(0.05, 0.0625, "weight-only"))
    assert capsys.readouterr().err == ""


def _convs_and_pools(depthwise_group: int = 32, side: int = 8, quantized_pool_relu=False):
    """x [N, 1, 8, 8] -> a/Conv (1 channel in) -> a/Relu -> pool -> Q/DQ -> b/Conv (32 in)
    -> b/Relu -> pool2 -> Q/DQ -> c/Conv (depthwise, 32 in) -> y; plus a Relu -> MaxPool
    pair whose pool is not quantized (d/). ``quantized_pool_relu``: a Relu between pool2 (which
    reads a dequantized tensor) and its Q/DQ pair."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    def qdq(src, name):
        return [helper.make_node("QuantizeLinear", [src, "s", "z"], [f"{name}_q"],
                                 name=f"{name}_QuantizeLinear"),
                helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_dq"],
                                 name=f"{name}_DequantizeLinear")]

    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [helper.make_node("Conv", ["x", "a/W"], ["a"], name="a/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["a_relu"], name="a/Relu"),
             helper.make_node("MaxPool", ["a_relu"], ["pooled"], name="p/MaxPool", **pool),
             *qdq("pooled", "p"),
             helper.make_node("Conv", ["p_dq", "b/W"], ["b"], name="b/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["b"], ["b_relu"], name="b/Relu"),
             *qdq("b_relu", "br"),
             *([helper.make_node("MaxPool", ["br_dq"], ["pooled2_pre"], name="p2/MaxPool",
                                 **pool),
                helper.make_node("Relu", ["pooled2_pre"], ["pooled2"], name="p2/Relu")]
               if quantized_pool_relu else
               [helper.make_node("MaxPool", ["br_dq"], ["pooled2"], name="p2/MaxPool",
                                 **pool)]),
             *qdq("pooled2", "p2"),
             helper.make_node("Conv", ["p2_dq", "c/W"], ["y"], name="c/Conv",
                              group=depthwise_group),
             helper.make_node("Relu", ["x"], ["d_relu"], name="d/Relu"),
             helper.make_node("MaxPool", ["d_relu"], ["d"], name="d/MaxPool", **pool)]
    inits = [weight("a/W", [32, 1, 3, 3]), weight("b/W", [32, 32, 3, 3]),
             weight("c/W", [32, 32 // depthwise_group, 1, 1]),
             helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]),
             helper.make_tensor("z", TensorProto.UINT8, [], [0])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32, side // 4, side // 4]),
         helper.make_tensor_value_info("d", TensorProto.FLOAT, ["N", 1, side // 2, side // 2])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_thin_convolutions_are_found_by_their_input_channels(monkeypatch):
    from edge_infer.export import simplify
    from edge_infer.export.qdq import thin_conv_layers

    model = _convs_and_pools()
    assert thin_conv_layers(model) == ["a"]  # 1 channel; b reads 32, and so does depthwise c
    assert thin_conv_layers(model, 0) == []
    assert thin_conv_layers(model, 32) == ["a", "b", "c"]
    assert thin_conv_layers(_convs_and_pools(depthwise_group=1), 4) == ["a"]
    # On 64x64 images (4096 pixels out) each image's GEMM is large enough: left to INT8.
    assert thin_conv_layers(_convs_and_pools(side=64)) == []
    assert thin_conv_layers(_convs_and_pools(side=64), max_pixels=64 * 64) == ["a"]

    def refuse(proto):
        raise RuntimeError("onnx shape inference failed")

    monkeypatch.setattr(simplify, "_shapes", refuse)  # sizes unknown: nothing is kept float
    assert thin_conv_layers(model) == []


def test_a_float_relu_before_a_quantized_pool_moves_after_it_with_the_same_outputs():
    import onnx
    import onnxruntime as ort

    from edge_infer.export.qdq import pool_before_activation

    model = _convs_and_pools()
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert pool_before_activation(model) == 1
    onnx.checker.check_model(model)
    ops = [(n.op_type, n.name) for n in model.graph.node]
    # Only a/: b/Relu reads a DequantizeLinear (already quantized) and d/'s pool is not
    # quantized.
    assert ops[:4] == [("Conv", "a/Conv"), ("MaxPool", "p/MaxPool"), ("Relu", "a/Relu"),
                       ("QuantizeLinear", "p_QuantizeLinear")]
    assert ops[4:] == [(n.op_type, n.name) for n in _convs_and_pools().graph.node][4:]
    relu = model.graph.node[2]
    assert relu.output[0] == "pooled" and model.graph.node[1].input[0] == "a"
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(3, 1, 8, 8)).astype(np.float32)
    for old, new in zip(before.run(None, {"x": x}), after.run(None, {"x": x})):
        np.testing.assert_array_equal(old, new)
    assert pool_before_activation(model) == 0  # nothing left to swap


def test_static_keeps_a_thin_first_convolution_in_float(exported, tmp_path):
    """The digits cnn's first convolution reads one channel: it runs in float32 (its weights
    stored in int8 and folded back when the model loads), and its pool runs in float before the
    quantization (not on uint8 in NCHW, onnxruntime's slow kernel); --float-thin-conv 0
    quantizes it as before."""
    import onnx
    import onnxruntime as ort

    out = tmp_path / "kept.onnx"
    result = quantize(QuantizeConfig(exported["cnn"], method="static", out=out,
                                     max_accuracy_drop=100))
    first = _layers(exported["cnn"], "conv2d")[0]  # Keras numbers them per process
    assert result.settings["exclude"] == [first] and result.settings["float_thin_conv"] == 4
    inits = {i.name: i.data_type for i in onnx.load(str(out)).graph.initializer}
    assert inits[f"{first}/kernel_int8"] == onnx.TensorProto.INT8
    assert f"{first}/kernel" not in inits
    assert list(read_model_info(out).int8_stored_weights()) == [f"{first}/kernel"]
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    first_q = ops.index("QuantizeLinear")
    assert "MaxPool" in ops[:first_q] and "QLinearConv" in ops[first_q:], ops
    assert ops[:2] == ["Transpose", "Conv"] and not {"Cast", "Mul"} & set(ops), ops
    # handed over in NHWC: no Transpose on the uint8 side (70 us with two threads here)
    assert "Transpose" not in ops[first_q:], ops
    # onnxruntime 1.16-1.18 ran such files at 0.2x-0.4x float32's speed: the file says so
    [need] = recorded(read_model_info(out).metadata)
    assert (need.onnxruntime, need.purpose) == ("1.19", "speed")
    assert need.disable == ("ReluQuantRewrite",)  # what gives it back there
    all_int8 = tmp_path / "all.onnx"
    result = quantize(QuantizeConfig(exported["cnn"], method="static", out=all_int8,
                                     max_accuracy_drop=100, float_thin_conv=0))
    assert "exclude" not in result.settings
    inits = {i.name for i in onnx.load(str(all_int8)).graph.initializer}
    assert f"{first}/kernel" not in inits  # quantized: conv2d/kernel_int8
    assert recorded(read_model_info(all_int8).metadata) == []  # 1.18 ran it as 1.19 did


def test_dynamic_convolutions_record_the_onnxruntime_that_loads_them(exported, tmp_path):
    """onnxruntime 1.16-1.23 have no ConvInteger for int8 weights (benchmarks/ort_versions.py):
    the file records 1.24 and the quantizer says so; the report names the release that
    measured it."""
    import onnxruntime as ort

    out = tmp_path / "dynamic.onnx"
    lines: list[str] = []
    quantize(QuantizeConfig(exported["cnn"], method="dynamic", out=out, max_accuracy_drop=100),
             log=lines.append)
    info = read_model_info(out)
    assert recorded(info.metadata) == [Requirement("1.24", "loading",
                                                   "ConvInteger with int8 weights")]
    assert "dynamic.onnx needs onnxruntime >= 1.24 to load (ConvInteger with int8 weights)" \
        in lines
    report = json.loads(info.metadata["edge_infer.quantization"])
    assert report["onnxruntime"] == ort.__version__


def test_a_quantized_pool_is_handed_over_in_channels_last_with_the_same_outputs():
    import onnx
    import onnxruntime as ort

    from edge_infer.export.qdq import channels_last_handover, pool_before_activation

    model = _convs_and_pools()
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert channels_last_handover(model) == 0  # the Relu still comes first: nothing to hand
    pool_before_activation(model)
    assert channels_last_handover(model) == 1  # p/ only: p2's pool reads a quantized tensor
    onnx.checker.check_model(model)
    ops = [(n.op_type, n.name) for n in model.graph.node]
    assert ops[:8] == [("Conv", "a/Conv"), ("MaxPool", "p/MaxPool"),
                       ("Transpose", "p/channels_last"), ("Reshape", "p/channels_last_kept"),
                       ("Relu", "a/Relu"), ("QuantizeLinear", "p_QuantizeLinear"),
                       ("DequantizeLinear", "p_DequantizeLinear"),
                       ("Transpose", "p/channels_first")]
    assert model.graph.node[8].name == "b/Conv"
    assert model.graph.node[8].input[0] == model.graph.node[7].output[0] == "pooled"
    # A pool that reads a dequantized tensor is in the quantized part: left as it is.
    inside = _convs_and_pools(quantized_pool_relu=True)
    pool_before_activation(inside)
    assert channels_last_handover(inside) == 1  # p/ only, not p2/
    assert not any(n.name.startswith("p2/channels") for n in inside.graph.node)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).normal(size=(2, 1, 8, 8)).astype(np.float32)
    for old, new in zip(before.run(None, {"x": x}), after.run(None, {"x": x})):
        np.testing.assert_array_equal(old, new)
