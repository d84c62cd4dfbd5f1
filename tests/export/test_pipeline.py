"""The pipeline: a short real run end to end, its report, the guard fallback, and atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from edge_infer.export import pipeline as pmod  # noqa: E402
from edge_infer.export.pipeline import PipelineConfig, pipeline  # noqa: E402
from edge_infer.export.quantize import AccuracyGuardError  # noqa: E402
from edge_infer.runtime.cli import cli  # noqa: E402
from edge_infer.runtime.errors import UnknownNameError, UsageError  # noqa: E402
from edge_infer.runtime.modelfile import read_model_info  # noqa: E402


def _config(out: Path, **kw) -> PipelineConfig:
    kw.setdefault("bench_runs", 3)
    return PipelineConfig("cnn", epochs=1, verbose=0, out=out, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "cnn"
    lines: list[str] = []
    # One epoch: the guard is opened wide here; its refusal has its own test. The classifier
    # layer (named by the zoo, unlike Keras' numbered conv2d_N) stays float (--exclude), which
    # the report must say.
    # 30 timed and profiled calls: with 3, one slow call can make the profiler's share of a
    # call look large enough to leave out the time-per-layer table.
    return pipeline(_config(out, max_accuracy_drop=100, exclude=["probabilities"],
                            bench_runs=30), log=lines.append), lines


def test_pipeline_writes_every_artifact_and_a_consistent_report(finished):
    result, lines = finished
    folder = result.path
    for name in ("model.keras", "model.onnx", "model.int8.onnx", "report.md", "report.json",
                 "curves.png", "confusion.png", "tradeoff.png", "metrics.json"):
        assert (folder / name).is_file(), name
    assert not list(folder.parent.glob(".cnn.partial-*"))
    # Progress: every stage announced in order.
    stages = [line.split("]")[0] for line in lines if line.startswith("[")]
    assert stages == [f"[{i}/6" for i in range(1, 7)]
    report = json.loads((folder / "report.json").read_text())
    assert [r["name"] for r in report["summary"]] == ["float32", "int8-static"]
    for row in report["summary"]:
        assert row["size_bytes"] == (folder / row["file"]).stat().st_size
        assert row["latency_b1_ms"] > 0 and row["throughput_n"] > 0 and row["batch_n"] == 64
    assert report["export"]["parity"]["passed"] is True
    assert report["quantization"]["method"] == "static"
    assert report["evaluation"]["float32"]["accuracy"] == pytest.approx(
        report["summary"][0]["metric_value"])
    assert report["best"] == "int8-static" and result.best == folder / "model.int8.onnx"
    assert set(report["stage_seconds"]) == set(pmod.STAGES)
    md = (folder / "report.md").read_text()
    assert "| int8-static | `model.int8.onnx` |" in md and "![tradeoff](tradeoff.png)" in md
    assert "edge-infer quantize" in md and "edge-infer run model.int8.onnx inputs/" in md
    assert "`edge-infer tune model.int8.onnx`" in md  # what to do on the device
    # The excluded layer and the per-layer errors are in both reports and the commands.
    # The first convolution (one channel) stays float32 too, as the static recipe keeps it.
    excluded = report["quantization"]["settings"]["exclude"]
    assert excluded[0] == "probabilities" and excluded[1].startswith("conv2d")
    layers = [e["layer"] for e in report["quantization"]["layers"]]
    assert len(layers) == 5 and layers[0].startswith("max_pooling2d")
    assert layers[-1] == "probabilities"
    assert "float layers probabilities" in md and f"| {layers[0]} |" in md
    assert any(c.endswith("--exclude probabilities") for c in report["commands"])
    # What the file needs of onnxruntime (its float32 first convolution): in both reports
    [need] = report["quantization"]["requires"]
    assert need["onnxruntime"] == "1.19" and need["purpose"] == "speed"
    assert "; needs onnxruntime >= 1.19 for its speed (" in md
    assert any("model.int8.onnx needs onnxruntime >= 1.19 for its speed" in line
               for line in lines)


def test_the_report_gives_each_models_time_per_layer(finished):
    """The benchmark stage profiles both models; report.md sets their time per Keras layer side
    by side, from the figures report.json keeps."""
    import copy

    from edge_infer.export.report import markdown
    from edge_infer.runtime.profile import NO_LAYER, layer_times

    result, _ = finished
    report = json.loads((result.path / "report.json").read_text())
    times = {}
    for name in ("float32", "int8-static"):
        batch = report["benchmark"][name]["batches"][-1]
        assert batch["batch_size"] == 64 and batch["operators"]["calls"] == 30
        times[name] = layer_times(batch["operators"]["nodes"])
    assert "## Time per layer" in (result.path / "report.md").read_text()
    # Where the profiler's own cost is a small part of a call (here: set so, since on a fast
    # machine it can be a third of one), the layers are set side by side.
    quiet = copy.deepcopy(report)
    for b in quiet["benchmark"].values():
        b["batches"][-1]["latency_ms"]["p50"] = b["batches"][-1]["operators"]["run_us"] / 1000
    md = markdown(quiet, "t")
    section = md.split("## Time per layer\n", 1)[1].split("\n## ", 1)[0]
    assert "| layer | float32 | int8-static | int8-static speed-up |" in section
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in section.splitlines() if line.startswith("| ") and "---" not in line}
    rows.pop("layer")
    error_layers = {e["layer"] for e in report["quantization"]["layers"]}
    assert error_layers <= set(rows)  # the layers the per-layer errors name
    for layer, (f32, q8, ratio) in rows.items():
        assert f32 == (f"{times['float32'][layer]:.1f} us" if layer in times["float32"]
                       else "-")
        assert q8 == (f"{times['int8-static'][layer]:.1f} us"
                      if layer in times["int8-static"] else "-")
        if layer in times["float32"] and layer in times["int8-static"]:
            assert ratio == f"{times['float32'][layer] / times['int8-static'][layer]:.2f}x"
    shared = [k for k in rows if k in times["float32"] and k in times["int8-static"]
              and k != NO_LAYER]
    worst = max(shared, key=lambda k: abs(times["int8-static"][k] - times["float32"][k]))
    assert f"the most in `{worst}`" in section
    # Not where the profiler's own cost is most of a call: its figures would decide.
    slow = copy.deepcopy(report)
    slow["benchmark"]["int8-static"]["batches"][-1]["latency_ms"]["p50"] /= 10
    section = markdown(slow, "t").split("## Time per layer\n", 1)[1].split("\n## ", 1)[0]
    assert "Not compared: at batch 64 the profiler's own cost is" in section
    assert "| layer |" not in section
    # A report without profiles (written before they existed) has no such section.
    for b in report["benchmark"].values():
        b["batches"][-1].pop("operators")
    assert "## Time per layer" not in markdown(copy.deepcopy(report), "t")


def test_the_printed_run_command_works(finished):
    result, _ = finished
    command = result.run_command().split()
    assert command[:3] == ["edge-infer", "run", str(result.best)]
    pngs = sorted(Path(command[3]).glob("*.png"))
    assert len(pngs) == 4
    run = CliRunner().invoke(cli, ["run", *command[2:], "-f", "json"])
    assert run.exit_code == 0, run.output
    predictions = json.loads(run.output)["predictions"]
    assert len(predictions) == 4
    assert all(p[0]["label"] in [str(i) for i in range(10)] for p in predictions)


def test_a_faster_float32_model_is_pointed_out_beside_the_deployed_one(finished):
    """INT8 is slower than float32 on a CPU without VNNI: the report and the last lines say so
    with the command for float32; timings within the noise margin say nothing, and neither
    does float32 faster at batch 1 alone when INT8 has more throughput in batches."""
    import copy

    from edge_infer.export.report import markdown

    result, _ = finished
    report = copy.deepcopy(result.report)
    fp32, int8 = report["summary"]
    int8["latency_b1_ms"], fp32["latency_b1_ms"] = 0.061, 0.052
    int8["throughput_n"], fp32["throughput_n"] = 600_000.0, 900_000.0  # both at batch 64
    assert fp32["batch_n"] == int8["batch_n"]
    faster = pmod.PipelineResult(result.path, result.best, report).faster_line()
    assert faster == (f"edge-infer run {result.path / 'model.onnx'} {result.path}/inputs/  "
                      "(float32: 0.052 against 0.061 ms at batch 1)")
    md = markdown(report, "t")
    assert "is faster on this machine at batch 1 (0.052 against 0.061 ms)" in md
    assert "edge-infer run model.onnx inputs/" in md and "for speed here, deploy" in md
    # The same timings for a weight-only model: it runs the float32 graph, so they are noise.
    weight_only = copy.deepcopy(report)
    weight_only["quantization"]["method"] = "weight-only"
    assert pmod.PipelineResult(result.path, result.best, weight_only).faster_line() is None
    assert "for speed here" not in markdown(weight_only, "t")
    # Faster at batch 1, but INT8 has 1.5x the throughput at batch 64 (the digits cnn on VNNI)
    int8["throughput_n"] = 1_350_000.0
    assert pmod.PipelineResult(result.path, result.best, report).faster_line() is None
    md = markdown(report, "t")
    assert "is faster on this machine" not in md and "for speed here" not in md
    int8["throughput_n"] = 930_000.0  # 3% more: noise, float32 is still the faster one
    assert pmod.PipelineResult(result.path, result.best, report).faster_line() is not None
    fp32["latency_b1_ms"] = 0.059  # 3% faster: noise
    assert pmod.PipelineResult(result.path, result.best, report).faster_line() is None
    md = markdown(report, "t")
    assert "is faster on this machine" not in md and "for speed here" not in md
    # Made for another device (a Raspberry Pi): timings here say nothing about it.
    fp32["latency_b1_ms"] = 0.030
    report["machine"] |= {"device_profile": "rpi4", "host_profile": "x86-avx2"}
    assert pmod.PipelineResult(result.path, result.best, report).faster_line() is None
    md = markdown(report, "t")
    assert "is faster on this machine" not in md and "for speed here" not in md
    assert "not on the `rpi4` the models were made for" in md
    assert "edge-infer bench model.onnx model.int8.onnx -b 1 -b 64" in md


def test_a_refused_quantization_keeps_float32(tmp_path, monkeypatch):
    from edge_infer.export import quantize as qmod

    def refuse(config, log=None):
        raise AccuracyGuardError("static lowers accuracy by 9.00 points; nothing was written")

    monkeypatch.setattr(qmod, "quantize", refuse)
    result = pipeline(_config(tmp_path / "run"))
    report = json.loads((result.path / "report.json").read_text())
    assert report["best"] == "float32" and result.best.name == "model.onnx"
    assert "9.00 points" in report["quantization"]["refused"]
    assert [r["name"] for r in report["summary"]] == ["float32"]
    assert "Quantization was refused, so `model.onnx` is the result: static lowers accuracy" \
        in (result.path / "report.md").read_text()


def test_a_quantized_model_larger_than_float32_is_not_the_result(tmp_path, monkeypatch):
    """onnxruntime has no integer GRU: dynamic INT8 of the zoo's GRU can only quantize its
    small dense head, which adds scales and quantize operators, so the file grows (101%):
    float32 is the model to run. By default that head is too small to quantize
    (``--min-weights``), and the recipe is refused for quantizing nothing. ``auto`` picks
    weight-only INT8 for it, which stores the GRU's weights in int8."""
    import functools

    from edge_infer.export import quantize as qmod

    lines: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(qmod, "QuantizeConfig", functools.partial(qmod.QuantizeConfig,
                                                                min_weights=0))
        result = pipeline(PipelineConfig("gru", method="dynamic", epochs=1, bench_runs=3,
                                         verbose=0, out=tmp_path / "run",
                                         max_accuracy_drop=100), log=lines.append)
    report = json.loads((result.path / "report.json").read_text())
    sizes = {r["name"]: r["size_bytes"] for r in report["summary"]}
    assert sizes["int8-dynamic"] >= sizes["float32"]
    assert report["best"] == "float32" and result.best.name == "model.onnx"
    assert any("not smaller than float32" in line for line in lines), lines
    md = (result.path / "report.md").read_text()
    assert "not smaller than float32" in md and "still the smaller file" not in md
    assert "edge-infer run model.onnx" in md
    # `edge-infer quantize` says so too, and by default refuses to quantize nothing.
    model = str(result.path / "model.onnx")
    run = CliRunner().invoke(cli, ["quantize", model, "--method", "dynamic", "--out",
                                   str(tmp_path / "q.onnx"), "--max-accuracy-drop", "100",
                                   "--min-weights", "0"])
    assert run.exit_code == 0, run.output
    assert "quantization saved nothing here" in run.stderr
    assert "keep the float32 model unless the target needs INT8" in run.stderr
    run = CliRunner().invoke(cli, ["quantize", model, "--method", "dynamic", "--out",
                                   str(tmp_path / "none.onnx")])
    assert run.exit_code == 1, run.output
    assert "dynamic INT8 has nothing to quantize in model.onnx" in run.output
    assert "a GRU has no integer kernel" in run.output and "--min-weights 0" in run.output
    assert not (tmp_path / "none.onnx").exists()
    result = pipeline(PipelineConfig("gru", method="dynamic", epochs=1, bench_runs=3,
                                     verbose=0, out=tmp_path / "dynamic"), log=lines.append)
    assert result.best.name == "model.onnx" and not (result.path / "model.int8.onnx").exists()
    assert "Quantization was refused, so `model.onnx` is the result: dynamic INT8 has " \
        "nothing to quantize" in (result.path / "report.md").read_text()
    result = pipeline(PipelineConfig("gru", epochs=1, bench_runs=3, verbose=0,
                                     out=tmp_path / "default"), log=lines.append)
    report = json.loads((result.path / "report.json").read_text())
    sizes = {r["name"]: r["size_bytes"] for r in report["summary"]}
    assert result.best.name == "model.int8.onnx", report
    assert sizes["int8-weight-only"] < 0.5 * sizes["float32"]
    assert read_model_info(result.best).quantization()["format"] == "weight-only"


def test_a_failing_stage_leaves_nothing(tmp_path, monkeypatch):
    from edge_infer.export import exporter

    def broken(config, log=None):
        raise RuntimeError("export broke")

    monkeypatch.setattr(exporter, "export", broken)
    with pytest.raises(RuntimeError, match="export broke"):
        pipeline(_config(tmp_path / "run"))
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused_before_training(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet'"):
        PipelineConfig("resnet")
    with pytest.raises(UnknownNameError, match="unknown device profile"):
        PipelineConfig("cnn", device="toaster")
    with pytest.raises(UsageError, match="auto-exclude must be >= 0 layers, found -1"):
        PipelineConfig("cnn", auto_exclude=-1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not empty"):
        pipeline(_config(tmp_path / "busy"))
    result = CliRunner().invoke(cli, ["pipeline", "cnn", "--device", "toaster"])
    assert result.exit_code == 2 and "rpi5" in result.output


def test_a_text_model_is_shown_run_on_a_txt_of_its_test_rows(tmp_path):
    """For a text model the printed command runs a .txt of test rows written back as words,
    which the runtime's tokenizer turns into the same ids (padding and empty rows dropped)."""
    import numpy as np

    from edge_infer.runtime.inputs.text import Tokenizer
    from edge_infer.runtime.metadata import TextPreprocess

    pre = TextPreprocess(vocabulary=("", "[UNK]", "win", "cash", "lunch"), sequence_length=4)
    x = np.array([[2, 3, 0, 0], [4, 1, 2, 0], [0, 0, 0, 0], [3, 3, 3, 3]], np.int64)
    np.savez(tmp_path / "samples.npz", x=x, y=np.zeros(4, np.int64))
    meta = {"edge_infer.preprocess": json.dumps(pre.to_dict())}
    argument = pmod._sample_inputs(tmp_path, {"task": "classification", "metadata": meta})
    assert argument == "inputs.txt"
    lines = (tmp_path / "inputs.txt").read_text().splitlines()
    assert lines == ["win cash", "lunch [UNK] win", "cash cash cash cash"]
    np.testing.assert_array_equal(Tokenizer(pre).encode(lines, 4), x[[0, 1, 3]])
