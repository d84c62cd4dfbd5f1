"""The export and quantization quality bar: figures, not pass/fail tests.

1. Parity: every zoo architecture exported to ONNX (short training: parity does not depend on
   how well a model learned); max |diff| against Keras and top-1 agreement.
2. On fully trained models (the architectures' defaults): static INT8 on ``cnn`` (digits),
   dynamic INT8 on ``lstm`` (waves), FP16 on both: accuracy drop, top-1 agreement, file size.
3. Side by side on the same trained ``cnn``: Keras ``model(x)`` and ``model.predict``, ONNX
   FP32 / INT8 / FP16 through edge-infer, and TensorFlow Lite FP32 and full INT8 (converted
   from a SavedModel export, run by LiteRT's interpreter with XNNPACK, same thread count), at
   batch 1 and 64, with accuracy on the test split.

ONNX and TFLite are timed in a child process that never imports TensorFlow: its thread pools
distort onnxruntime timings. Needs the [train] extra and ``ai-edge-litert`` (the [bench]
extra); without LiteRT the TFLite rows say so.

    python benchmarks/export_quality.py [--runs 300] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (BATCHES, keras_timings, litert_figures, onnx_figures,  # noqa: E402
                    tflite_models, train_run)

# architecture -> dataset for the parity sweep
ZOO = {"mlp": "moons", "regressor": "sine", "cnn": "digits", "cifar_cnn": "digits",
       "lstm": "waves", "gru": "waves", "autoencoder": "digits", "conv_autoencoder": "digits",
       "gan": "digits"}


# -- phase A: TensorFlow process ----------------------------------------------------------------

def parity_sweep(root: Path) -> list[dict[str, Any]]:
    from edge_infer.export.exporter import ExportConfig, export

    rows = []
    for arch, dataset in ZOO.items():
        run = train_run(arch, dataset, root / f"parity-{arch}", epochs=3)
        r = export(ExportConfig(run)).parity
        rows.append({"architecture": arch, "dataset": dataset, "samples": r.samples,
                     "max_abs_diff": r.max_abs_diff, "top1_agreement": r.top1_agreement,
                     "passed": r.passed})
        print(f"  parity {arch:<17} max |diff| {r.max_abs_diff:.2e}"
              + (f", top-1 {r.top1_agreement:.2%}" if r.top1_agreement is not None else ""),
              flush=True)
    return rows


def quantize_all(run: Path, methods: tuple[str, ...] = ("auto", "fp16")) -> dict[str, Any]:
    from edge_infer.export.exporter import ExportConfig, export
    from edge_infer.export.quantize import QuantizeConfig, quantize

    from edge_infer.runtime.modelfile import read_model_info

    fp32 = export(ExportConfig(run)).path
    fp32_tensors = read_model_info(fp32).weights_bytes
    out = {"float32": str(fp32)}
    reports = {}
    for method in methods:
        r = quantize(QuantizeConfig(fp32, method=method, max_accuracy_drop=100,
                                    out=fp32.with_name(f"model.{method}.onnx")))
        out[r.method] = str(r.path)
        reports[r.method] = r.report() | {
            "size_ratio_file": r.path.stat().st_size / fp32.stat().st_size,
            "size_ratio_tensors": read_model_info(r.path).weights_bytes / fp32_tensors,
            "size_ratio_short_names": _short_names_size(r.path) / fp32.stat().st_size}
    return {"files": out, "reports": reports}


def _short_names_size(path: Path) -> int:
    """The file's size if every tensor and node had a short id for a name (inputs and outputs
    kept): how much of the size bar names could win back. Not something the exporter does:
    names are what onnxruntime's profiler and error messages show."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    keep = {v.name for v in (*graph.input, *graph.output)}
    ids: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return ids.setdefault(name, f"t{len(ids)}")

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    return model.ByteSize()


# -- phase B: child process without TensorFlow --------------------------------------------------

def worker(spec: dict[str, Any]) -> dict[str, Any]:
    assert "tensorflow" not in sys.modules
    with np.load(spec["data"]) as d:
        x, y = d["x"], d["y"]
    runs, threads = spec["runs"], spec["threads"]
    results = {name: onnx_figures(path, x, y, "classification", runs, threads)
               for name, path in spec["onnx"].items()}
    results |= {name: litert_figures(path, x, y, "classification", runs, threads)
                for name, path in spec["tflite"].items()}
    return results


# -- report -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--load", type=Path, help="print a saved report instead of running")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(Path(args.worker).read_text()))))
        return

    if args.load:
        print_report(json.loads(args.load.read_text()))
        return
    from edge_infer.runtime.versions import installed_versions
    from edge_infer.train.datasets import load_dataset

    started = time.perf_counter()
    report: dict[str, Any] = {"versions": installed_versions(
        "edge-infer", "onnxruntime", "tensorflow", "tf2onnx", "ai-edge-litert")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_parity:
            print("parity over the zoo (3 epochs each)", flush=True)
            report["parity"] = parity_sweep(root)
        print("training cnn on digits and lstm on waves with their defaults", flush=True)
        cnn = train_run("cnn", "digits", root / "cnn", None)
        lstm = train_run("lstm", "waves", root / "lstm", None)
        report["cnn"] = quantize_all(cnn)
        # the bar names dynamic INT8; auto now picks weight-only for the lstm (printed too)
        report["lstm"] = quantize_all(lstm, ("dynamic", "auto", "fp16"))
        digits = load_dataset("digits", seed=0)
        x, y = digits.x_test, digits.y_test.reshape(-1)
        np.savez(root / "test.npz", x=x, y=y)
        report["keras"] = keras_timings(cnn, x, y, "classification", args.runs)
        tflite, errors = tflite_models(cnn, digits.x_train[:200])
        tflite.pop("tflite-dynamic", None)
        if errors:
            report["tflite_error"] = errors
        spec = {"data": str(root / "test.npz"), "runs": args.runs, "threads": args.threads,
                "onnx": report["cnn"]["files"], "tflite": tflite}
        (root / "spec.json").write_text(json.dumps(spec))
        child = subprocess.run([sys.executable, __file__, "--worker", str(root / "spec.json")],
                               capture_output=True, text=True, check=True)
        report["side_by_side"] = json.loads(child.stdout.strip().splitlines()[-1])
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    print_report(report)


def _check(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(r: dict[str, Any]) -> None:
    print(f"\nversions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}")
    if "parity" in r:
        worst = max(p["max_abs_diff"] for p in r["parity"])
        top1 = all(p["top1_agreement"] in (None, 1.0) for p in r["parity"])
        print(f"parity over {len(r['parity'])} architectures: worst max |diff| {worst:.2e}, "
              f"top-1 identical everywhere: {top1}  [{_check(worst <= 1e-4 and top1)}]")
    for arch, int8_name, bars in (("cnn", "static", (0.5, 0.30)), ("lstm", "dynamic", (0.5, 0.30))):
        q = r[arch]["reports"]
        s = q[int8_name]
        drop, size = s["accuracy_drop_points"], s["size_ratio_file"]
        print(f"{arch} {int8_name} INT8: accuracy {s['original']['value']:.4f} -> "
              f"{s['quantized']['value']:.4f} (drop {drop:.2f} pts) [{_check(drop <= bars[0])}], "
              f"file {size:.0%} of FP32 [{_check(size <= bars[1])}] (stored tensors alone "
              f"{s['size_ratio_tensors']:.0%}"
              + (f"; every name shortened {s['size_ratio_short_names']:.1%})"
                 if "size_ratio_short_names" in s else ")"))
        if arch == "lstm" and "weight-only" in q:
            w = q["weight-only"]
            print(f"lstm weight-only INT8 (what auto picks): accuracy "
                  f"{w['quantized']['value']:.4f}, file {w['size_ratio_file']:.0%} of FP32, "
                  f"top-1 agreement {w['top1_agreement']:.2%}, batch 1 {w['speedup']:.2f}x "
                  f"float32 (dynamic: {s['speedup']:.2f}x)")
        f = q["fp16"]
        print(f"{arch} fp16: file {f['size_ratio_file']:.0%} of FP32 "
              f"[{_check(f['size_ratio_file'] <= 0.55)}], top-1 agreement "
              f"{f['top1_agreement']:.2%} [{_check(f['top1_agreement'] >= 0.99)}]")
    side = r["side_by_side"]
    keras = r["keras"]
    print("\ncnn on digits, same trained weights; median latency (ms) and test accuracy:")
    print(f"{'':<16}{'batch 1':>10}{'batch 64':>10}{'accuracy':>10}{'size KiB':>10}")
    rows = [(name, keras[name]["1"], keras[name]["64"], keras["accuracy"], None)
            for name in ("keras model(x)", "keras predict")]
    for name, v in side.items():
        if "error" in v:
            print(f"{name:<16}{v['error']}")
            continue
        rows.append((f"onnx {name}" if not name.startswith("tflite") else name, v["1"], v["64"],
                     v["accuracy"], v["size_bytes"] / 1024))
    for name, b1, b64, acc, size in rows:
        print(f"{name:<16}{b1:>10.3f}{b64:>10.3f}{acc:>10.4f}"
              + (f"{size:>10.1f}" if size is not None else ""))
    if "tflite_error" in r:
        print(f"TFLite conversion failed: {r['tflite_error']}")
    fp32, int8 = side.get("float32"), side.get("static")
    if fp32 and int8:
        for b in map(str, BATCHES):
            print(f"batch {b}: ONNX INT8 is {fp32[b] / int8[b]:.2f}x the speed of ONNX FP32"
                  + (f" [{_check(fp32[b] / int8[b] >= 1.5)}]" if b == "1" else ""))
    lite = side.get("tflite-int8")
    if int8 and lite and "error" not in lite:
        for b in map(str, BATCHES):
            print(f"batch {b}: ONNX INT8 is {lite[b] / int8[b]:.2f}x the speed of TFLite INT8, "
                  f"ONNX FP32 {side['tflite-fp32'][b] / fp32[b]:.2f}x of TFLite FP32")
    print(f"\n{r['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
