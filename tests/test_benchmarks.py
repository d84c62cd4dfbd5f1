"""The benchmark suite in its reduced form: it runs end to end and reports every section.

Figures are not checked (they are the suite's output, not a test's); what could break is the
plumbing: training, export, quantization, TensorFlow Lite conversion, the TensorFlow-free child
processes, and the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
ROOT = Path(__file__).resolve().parents[1]


def test_suite_quick_runs_every_comparison(tmp_path):
    out = tmp_path / "suite.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--quick",
                           "--only", "cnn", "--save", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    cnn = report["models"]["cnn"]
    assert set(cnn["overhead"]) == {"1", "64"}
    assert cnn["overhead"]["1"]["session_run_ms"] > 0
    assert cnn["cold_start"]["cli_wall_s"] > 0 and cnn["cold_start"]["bare_peak_mib"] > 0
    side = cnn["side_by_side"]
    assert {"float32", "int8-static", "fp16"} <= set(side)
    for name in ("float32", "int8-static", "fp16"):
        assert side[name]["1"] > 0 and side[name]["64-bound"] > 0
        assert 0 <= side[name]["accuracy"] <= 1
    assert {"keras model(x)", "keras predict"} <= set(cnn["keras"])
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        assert "not installed" in side["tflite-int8"]["error"]
    else:
        assert side["tflite-int8"]["64"] > 0 and 0 <= side["tflite-int8"]["accuracy"] <= 1
    # The printed report renders from the saved figures.
    shown = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--load",
                            str(out)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "== cnn on digits ==" in shown.stdout


def test_keras_rewrites_compare_each_rewrite_with_the_graph_without_it():
    """The benchmark exports both graphs in a TensorFlow child process and times them here;
    the rewritten file has fewer operators and computes the same."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "keras_rewrites.py"),
                           "--runs", "10", "--batch", "2", "--case", "GRU", "--case", "frames"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for case, was, now in (("GRU", "loop", "fused"), ("frames", "unrolled", "folded")):
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith(f"{case}: "))
        counts = [int(word) for word in line.split() if word.isdigit()]
        assert f"{was} " in line and f"{now} " in line and counts[0] > counts[1], line
    differences = [float(ln.rsplit("difference ", 1)[1]) for ln in done.stdout.splitlines()
                   if "difference" in ln]
    assert len(differences) == 2 and max(differences) <= 1e-5


def test_layer_coverage_reports_each_layer_it_is_asked_for():
    """One row per layer with its operator count, loop and parity; an unknown layer is a usage
    error naming the known ones."""
    script = str(ROOT / "benchmarks" / "layer_coverage.py")
    done = subprocess.run([sys.executable, script, "--layer", "Conv1D", "--layer", "SimpleRNN"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"Keras layer", "Conv1D", "SimpleRNN"}
    assert rows["SimpleRNN"][1] == "no" and "RNN" in rows["SimpleRNN"][3]
    assert int(rows["Conv1D"][0]) > 0 and float(rows["Conv1D"][2]) <= 1e-4
    bad = subprocess.run([sys.executable, script, "--layer", "Conv9D"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "unknown layer 'Conv9D'" in bad.stderr


def test_suite_prepares_here_and_measures_a_moved_folder(tmp_path):
    """--prepare writes everything under one folder with relative paths, so the folder can be
    copied to a target and timed there with --measure (no TensorFlow; Keras is not timed)."""
    script = str(ROOT / "benchmarks" / "suite.py")
    made = subprocess.run([sys.executable, script, "--quick", "--only", "cnn",
                           "--prepare", str(tmp_path / "here")],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    assert "--measure" in made.stdout
    moved = tmp_path / "there"
    (tmp_path / "here").rename(moved)
    out = tmp_path / "figures.json"
    timed = subprocess.run([sys.executable, script, "--quick", "--measure", str(moved),
                            "--save", str(out)], capture_output=True, text=True, timeout=600)
    assert timed.returncode == 0, timed.stderr[-3000:]
    report = json.loads(out.read_text())
    cnn = report["models"]["cnn"]
    assert "keras" not in cnn and report["prepared_on"]["versions"]["tensorflow"]
    assert {"float32", "int8-static", "fp16"} <= set(cnn["side_by_side"])
    assert cnn["side_by_side"]["int8-static"]["accuracy"] > 0.5
    assert "Keras is not timed here" in timed.stdout
    missing = subprocess.run([sys.executable, script, "--measure", str(tmp_path / "nothing")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "expected a folder made by --prepare" in missing.stderr


def test_dispatch_cost_fits_a_cost_per_call_and_per_node():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dispatch_cost.py"),
                           "--runs", "20", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line[:22].strip(): line[22:].split() for line in done.stdout.splitlines()[2:]}
    assert set(rows) == {"InferenceSession.run", "Model.run", "Model.bind() runner"}
    for cells in rows.values():
        times = [float(c) for c in cells[:7]]
        per_call, per_node = float(cells[7]), float(cells[9])
        assert times[-1] > times[0] > 0  # 64 nodes take longer than one
        assert per_call > 0 and per_node > 0


def test_int8_kernels_times_each_kernel_it_names():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "int8_kernels.py"),
                           "--runs", "20", "--sides", "8", "--channels", "1", "8"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    convs = [line.split() for line in lines if line.strip()[:2] in ("1 ", "8 ")]
    assert [c[:2] for c in convs] == [["1", "8"], ["8", "8"]]
    for cells in convs:  # in, side, then float32 -> int8 (ratio) for batch 1 and 64
        f32, i8, f32_64, i8_64 = float(cells[2]), float(cells[4]), float(cells[6]), float(cells[8])
        assert min(f32, i8, f32_64, i8_64) > 0 and f32_64 > f32  # 64 images take longer
    transposes = [line for line in lines if line.startswith("  [")]
    assert len(transposes) == 6 and all("->" in line for line in transposes)


def test_weight_scales_compares_both_scales_on_a_trained_lstm():
    """One quick lstm quantized both ways: a row with each, and the per-tensor file smaller
    (it would not be if the per_channel setting stopped reaching the quantizer)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "weight_scales.py"),
                           "--quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(ln for ln in done.stdout.splitlines() if ln.startswith("waves "))
    sizes = [float(word[:-1]) for word in row.split() if word.endswith("%")]
    assert len(sizes) == 4 and sizes[3] < sizes[1], row  # agree, size, agree, size
    assert "over 1 quantizations" in done.stdout and "file smaller 1" in done.stdout


def test_weight_only_compares_the_recipes_and_measures_the_load_cost():
    """The quick form trains one mlp and prints a row per recipe that applies (dynamic and
    weight-only; static only for convolutional models), the weight-only file the smaller; the
    load form prints both files of a generated MLP, the weight-only one a quarter the size."""
    script = str(ROOT / "benchmarks" / "weight_only.py")
    done = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {ln.split()[1]: ln for ln in done.stdout.splitlines() if ln.startswith("mlp ")}
    assert set(rows) == {"dynamic", "weight-only"}, done.stdout
    sizes = {k: float([w for w in row.split() if w.endswith("%")][-1][:-1])  # agree, size
             for k, row in rows.items()}
    assert sizes["weight-only"] < sizes["dynamic"]
    done = subprocess.run([sys.executable, script, "--load", "--layers", "2", "--width", "512",
                           "--runs", "20"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = {ln.split()[0]: float(ln.split()[2]) for ln in done.stdout.splitlines()
             if ln.startswith("  ")}
    assert files["weight-only"] == pytest.approx(files["float32"] / 4, rel=0.05), done.stdout


def test_ort_versions_quick_runs_every_recipe_and_checks_the_compaction():
    """The quick form (this environment's onnxruntime only, no installs): a row per recipe
    with a speed against float32, and the compaction passes found to change nothing that
    onnxruntime runs (they would not be, if a dropped pair were one it does not put back)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ort_versions.py"),
                           "--quick"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {ln.split()[0]: ln.split()[1:] for ln in done.stdout.splitlines()
            if ln.startswith("cnn.")}
    assert set(rows) == {"cnn.static", "cnn.dynamic", "cnn.weight-only", "cnn.fp16"}, done.stdout
    for cells in rows.values():
        b1, b64 = cells[0].removesuffix("x").split("/")
        assert float(b1) > 0 and float(b64) > 0
    assert "same optimised graph and outputs: cnn.static yes, cnn.dynamic yes" in done.stdout
