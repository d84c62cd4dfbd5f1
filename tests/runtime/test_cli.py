"""The ``edge-infer`` command line, in process with click's CliRunner."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime.cli import COMMANDS, cli


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, input=None):
    return runner.invoke(cli, [str(a) for a in args], input=input)


def test_help_everywhere(runner):
    for args in ([], ["-h"], ["--help"], *[[name, "-h"] for name in COMMANDS]):
        result = invoke(runner, *args) if args else invoke(runner, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_version(runner):
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.output.startswith("edge-infer ") and "onnxruntime" in result.output


def test_run_table_for_a_classifier(runner, models, tmp_path):
    path = models.classifier(labels=["cat", "dog", "bird"])
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    result = invoke(runner, "run", path, tmp_path / "x.npy", "--top-k", "2", "-p", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("clf.onnx on cpu: 2 samples in ")
    assert lines[1].split() == ["sample", "1st", "2nd"]
    assert lines[2].startswith("x.npy[0]") and len(lines) == 4
    assert any(label in lines[2] for label in ("cat", "dog", "bird"))


def test_run_json_has_outputs_and_predictions(runner, models, tmp_path):
    path = models.classifier(labels=["cat", "dog", "bird"])
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = invoke(runner, "run", path, tmp_path / "x.npy", "--format", "json", "-p", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["model"] == str(path) and doc["provider"] == "cpu"
    y = np.array(doc["outputs"]["y"])
    assert y.shape == (3, 3)
    best = [row[0] for row in doc["predictions"]]
    assert [b["index"] for b in best] == list(np.argmax(y, axis=1))
    assert all(b["label"] in ("cat", "dog", "bird") for b in best)


def test_run_without_metadata_prints_raw_outputs(runner, models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    np.save(tmp_path / "b.npy", np.ones((2, 3), np.int64))
    path = models.dynamic()
    np.save(tmp_path / "s.npy", np.ones((2, 5, 3), np.float32))
    result = invoke(runner, "run", path, tmp_path / "s.npy")
    assert result.exit_code == 0, result.output
    assert "y: float32 [2, 3]" in result.output and "5." in result.output
    doc = json.loads(invoke(runner, "run", path, tmp_path / "s.npy", "-f", "json").output)
    assert "predictions" not in doc and doc["outputs"]["y"] == [[5.0] * 3] * 2


def test_top_k_makes_a_plain_matrix_a_classifier(runner, models, tmp_path):
    path = models.classifier(softmax=False)  # logits, no metadata
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    doc = json.loads(invoke(runner, "run", path, tmp_path / "x.npy", "-k", "3", "-f",
                            "json").output)
    scores = [p["score"] for p in doc["predictions"][0]]
    assert sum(scores) == pytest.approx(1.0) and scores == sorted(scores, reverse=True)


def test_run_npz_output_for_several_outputs(runner, models, tmp_path):
    np.savez(tmp_path / "in.npz", a=np.ones((2, 3), np.float32), b=np.full((2, 3), 2))
    out = tmp_path / "out.npz"
    result = invoke(runner, "run", models.two_in_two_out(), tmp_path / "in.npz",
                    "--format", "npy", "--output", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert set(saved.files) == {"sum", "mask"}
        np.testing.assert_array_equal(saved["sum"], np.full((2, 3), 3.0))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_run_npy_output_needs_one_output(runner, models, tmp_path):
    np.savez(tmp_path / "in.npz", a=np.ones((1, 3), np.float32), b=np.ones((1, 3)))
    model = models.two_in_two_out()
    result = invoke(runner, "run", model, tmp_path / "in.npz", "-f", "npy", "-o",
                    tmp_path / "o.npy")
    assert result.exit_code == 2 and "has 2 outputs (sum, mask)" in result.output
    assert not (tmp_path / "o.npy").exists()
    result = invoke(runner, "run", model, tmp_path / "in.npz", "-f", "npy", "-o",
                    tmp_path / "o.npy", "--output-name", "sum")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "o.npy").shape == (1, 3)


def test_run_npy_to_stdout(runner, models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    result = runner.invoke(cli, ["run", str(models.classifier()), str(tmp_path / "x.npy"),
                                 "-f", "npy"])
    assert result.exit_code == 0
    assert np.load(io.BytesIO(result.stdout_bytes)).shape == (2, 3)


def test_json_written_to_a_file(runner, models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    out = tmp_path / "r.json"
    result = invoke(runner, "run", models.classifier(), tmp_path / "x.npy", "-f", "json",
                    "-o", out)
    assert result.exit_code == 0 and result.output == ""
    assert json.loads(out.read_text())["outputs"]["y"]


def test_stdin(runner, models):
    result = invoke(runner, "run", models.classifier(), "-", "-f", "json", input="[1, 2, 3, 4]")
    assert result.exit_code == 0, result.output
    assert np.array(json.loads(result.output)["outputs"]["y"]).shape == (1, 3)


def test_batch_size_split_matches(runner, models, tmp_path):
    x = np.random.default_rng(3).normal(size=(7, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    # On CPU: a GPU's kernels may differ with the batch size in the last bits.
    whole = json.loads(invoke(runner, "run", models.classifier(), tmp_path / "x.npy",
                              "-f", "json", "-p", "cpu").output)["outputs"]["y"]
    split = json.loads(invoke(runner, "run", models.classifier(), tmp_path / "x.npy", "-f",
                              "json", "-b", "2", "-p", "cpu").output)["outputs"]["y"]
    np.testing.assert_allclose(split, whole, rtol=1e-6)


def test_image_classifier_from_png_with_labels(runner, models, write_png):
    path = models.image_cnn(labels=["a", "b", "c"])
    png = write_png("digit.png", np.tile(np.arange(8) * 30, (8, 1)))
    result = invoke(runner, "run", path, png, "-f", "json", "-k", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["samples"] == ["digit.png"] and doc["predictions"][0][0]["label"] in "abc"


def test_image_flags_override_metadata(runner, models, write_png):
    meta = {"edge_infer.preprocess": json.dumps({"kind": "image", "scale": 1 / 255})}
    png = write_png("p.png", np.full((4, 4), 255))
    args = ["run", models.pixels(metadata=meta), png, "-f", "json"]
    doc = json.loads(invoke(runner, *args, "--scale", "2", "--offset", "1").output)
    assert np.array(doc["outputs"]["out"]).max() == 511.0
    doc = json.loads(invoke(runner, *args, "--invert").output)
    assert np.array(doc["outputs"]["out"]).max() == 0.0


def test_text_model_from_a_raw_string(runner, models):
    path = models.text_model()
    result = invoke(runner, "run", path, "WIN a FREE prize", "hello friend", "-k", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "spam" in lines[2] and "ham" in lines[3]


def test_provider_fallback_warns_in_one_line(runner, models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    # Core ML exists only in Apple builds of onnxruntime.
    result = invoke(runner, "run", models.classifier(), tmp_path / "x.npy", "-p", "coreml")
    assert result.exit_code == 0
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "coreml is not available" in warnings[0]


def test_provider_options_are_parsed(runner, models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    bad = invoke(runner, "run", models.classifier(), tmp_path / "x.npy", "-O", "fp16")
    assert bad.exit_code == 2 and "NAME.KEY=VALUE" in bad.output
    ok = invoke(runner, "run", models.classifier(), tmp_path / "x.npy", "-O",
                "cpu.arena_extend_strategy=kSameAsRequested")
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("case,code,message", [
    ("missing_model", 2, "does not exist"),
    ("not_onnx", 2, "is a NumPy array (.npy), not an ONNX model"),
    ("truncated", 2, "truncated"),
    ("unknown_provider", 2, "unknown execution provider 'gpu'; known: auto,"),
    ("bad_shape", 2, "input 'x' expects shape [N, 4], got [2, 5]"),
    ("missing_input", 2, "nope.npy does not exist; expected a file"),
    ("strict", 1, "coreml is not available"),
    ("bad_image_size", 2, "--image-size expects HEIGHTxWIDTH"),
])
def test_errors_are_one_line_with_the_right_status(runner, models, tmp_path, case, code, message):
    model = models.classifier()
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), np.float32))
    args = {
        "missing_model": ["run", tmp_path / "nope.onnx", x],
        "not_onnx": ["run", x, x],
        "truncated": ["run", tmp_path / "cut.onnx", x],
        "unknown_provider": ["run", model, x, "-p", "gpu"],
        "bad_shape": ["run", model, tmp_path / "wide.npy"],
        "missing_input": ["run", model, tmp_path / "nope.npy"],
        "strict": ["run", model, x, "-p", "coreml", "--strict"],
        "bad_image_size": ["run", model, x, "--image-size", "big"],
    }[case]
    (tmp_path / "cut.onnx").write_bytes(model.read_bytes()[:60])
    np.save(tmp_path / "wide.npy", np.ones((2, 5), np.float32))
    result = invoke(runner, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_exception(runner, models, tmp_path):
    from edge_infer.runtime.errors import InputError

    np.save(tmp_path / "wide.npy", np.ones((2, 5), np.float32))
    for args in (["--debug", "run"], ["run", "--debug"]):
        result = runner.invoke(cli, [*args, str(models.classifier()), str(tmp_path / "wide.npy")])
        assert isinstance(result.exception, InputError)


def test_info_table_and_json(runner, models):
    path = models.classifier(labels=["a", "b", "c"])
    result = invoke(runner, "info", path)
    assert result.exit_code == 0, result.output
    assert "opset ai.onnx 17" in result.output and "parameters  15" in result.output
    assert "x  float32  [N, 4]" in result.output and "edge_infer.labels" in result.output
    doc = json.loads(invoke(runner, "info", path, "-f", "json").output)
    assert doc["parameters"] == 15 and doc["operators"] == {"Add": 1, "MatMul": 1, "Softmax": 1}
    assert doc["quantization"] == {"format": "none"}
    assert doc["inputs"][0] == {"name": "x", "type": "float32", "kind": "tensor",
                                "shape": ["N", 4]}


def test_info_on_a_bad_file(runner, tmp_path):
    (tmp_path / "x.onnx").write_text("nope")
    result = invoke(runner, "info", tmp_path / "x.onnx")
    assert result.exit_code == 2 and "is not an ONNX model" in result.output


def test_providers_table_and_json(runner):
    import onnxruntime

    result = invoke(runner, "providers")
    assert result.exit_code == 0
    assert "auto picks:" in result.output and "cpu" in result.output
    doc = json.loads(invoke(runner, "providers", "-f", "json").output)
    assert doc["onnxruntime"] == onnxruntime.__version__
    assert doc["auto"][-1] == "cpu" and "cpu" in doc["available"]
    assert {p["name"] for p in doc["providers"]} >= {"cpu", "cuda", "tensorrt", "openvino",
                                                     "xnnpack", "acl", "armnn", "coreml", "dml",
                                                     "qnn"}


def test_providers_marks_a_provider_that_cannot_load(runner, monkeypatch):
    """onnxruntime-gpu without TensorRT: listed by the build, not usable, and auto skips it."""
    import onnxruntime

    from edge_infer.runtime import providers as registry

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(registry, "load_failure", lambda spec: (
        "libnvinfer.so.10: cannot open shared object file" if spec.short == "tensorrt" else None))
    result = invoke(runner, "providers")
    assert result.exit_code == 0
    assert "auto picks: cuda, cpu" in result.output
    assert "* tensorrt is installed but cannot load: libnvinfer.so.10" in result.output
    doc = json.loads(invoke(runner, "providers", "-f", "json").output)
    assert doc["available"] == ["cuda", "cpu"] and doc["auto"] == ["cuda", "cpu"]
    trt = next(p for p in doc["providers"] if p["name"] == "tensorrt")
    assert trt["available"] is False and trt["cannot_load"].startswith("libnvinfer.so.10")
