"""evaluate: figures through the runtime, per-class report, confusion plot, regressors."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from edge_infer.export.evaluate import classification_report, confusion_lines, evaluate
from edge_infer.export.exporter import ExportConfig, export
from edge_infer.runtime.cli import cli


def test_classification_report_by_hand():
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    assert report["accuracy"] == 0.75
    a, b = report["per_class"]
    assert (a["precision"], a["recall"], b["precision"], b["recall"]) == (1.0, 0.5, 2 / 3, 1.0)
    assert report["confusion_matrix"] == [[1, 1], [0, 2]]


def test_confusion_matrix_is_labelled_and_aligned():
    lines = confusion_lines(["cat", "automobile"], [[7, 1000], [0, 3]])
    assert lines == ["                 cat automobi",
                     "cat                7     1000",
                     "automobile         0        3"]
    # Every cell ends under the end of its column's label.
    ends = [lines[0].index("cat") + 3, lines[0].index("automobi") + 8]
    assert all(line[end - 1] != " " for line in lines for end in ends)


def test_evaluate_matches_the_training_metrics(trained_runs, tmp_path):
    path = export(ExportConfig(trained_runs["cnn"], out=trained_runs["cnn"] / "eval.onnx")).path
    result = evaluate(path)
    metrics = json.loads((trained_runs["cnn"] / "metrics.json").read_text())
    assert result["samples"] == metrics["test_samples"]
    assert abs(result["accuracy"] - metrics["test_accuracy"]) < 1e-9
    assert np.array(result["confusion_matrix"]).tolist() == metrics["confusion_matrix"]
    assert result["throughput_per_s"] > 0 and len(result["per_class"]) == 10


def test_evaluate_a_regressor_and_the_cli(trained_runs, tmp_path):
    path = export(ExportConfig(trained_runs["regressor"],
                               out=trained_runs["regressor"] / "eval.onnx")).path
    result = CliRunner().invoke(cli, ["evaluate", str(path), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    metrics = json.loads((trained_runs["regressor"] / "metrics.json").read_text())
    assert abs(doc["mse"] - metrics["test_mse"]) < 1e-5
    cnn = export(ExportConfig(trained_runs["cnn"], out=trained_runs["cnn"] / "eval2.onnx")).path
    plot = tmp_path / "cm.png"
    result = CliRunner().invoke(cli, ["evaluate", str(cnn), "--plot", str(plot)])
    assert result.exit_code == 0 and "precision" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The suffix picks the format; one matplotlib cannot write is refused before any work.
    result = CliRunner().invoke(cli, ["evaluate", str(cnn), "--plot", str(tmp_path / "cm.svg")])
    assert result.exit_code == 0 and b"<svg" in (tmp_path / "cm.svg").read_bytes()
    result = CliRunner().invoke(cli, ["evaluate", str(cnn), "--plot", str(tmp_path / "cm.xyz")])
    assert result.exit_code == 2 and "found .xyz" in result.output and "precision" not in \
        result.output
    # A regressor has no confusion matrix: said, and nothing written.
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 0 and "is not a classifier" in result.stderr
    # Only the two figures (matplotlib's first import in a process also makes the isolated
    # XDG cache folder here, so the listing leaves "cache" out).
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["cm.png",
                                                                               "cm.svg"]


def test_a_text_model_is_evaluated_without_tensorflow(trained_runs):
    """The test split of a text run is encoded with the model's own vocabulary by the runtime's
    tokenizer: the figures are the training run's, and TensorFlow is never imported (it was,
    for Keras' TextVectorization, several seconds at every quantize and evaluate)."""
    import subprocess
    import sys

    path = export(ExportConfig(trained_runs["lstm"], out=trained_runs["lstm"] / "eval.onnx")).path
    code = ("import json, sys; from edge_infer.export.evaluate import evaluate; "
            f"r = evaluate({str(path)!r}); "
            "print(json.dumps([r['accuracy'], r['samples'], 'tensorflow' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    accuracy, samples, imported = json.loads(done.stdout.strip().splitlines()[-1])
    metrics = json.loads((trained_runs["lstm"] / "metrics.json").read_text())
    assert samples == metrics["test_samples"] and not imported
    assert abs(accuracy - metrics["test_accuracy"]) < 1e-9
