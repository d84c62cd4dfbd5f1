"""The performance suite: edge-infer against the alternatives, one command, figures as ratios.

On the zoo's trained models (``cnn``, ``cifar_cnn`` and ``autoencoder`` on digits, ``lstm`` on
waves; offline), each comparison timed in its own process:

1. ``Model.run`` vs a bare ``InferenceSession.run`` (the runtime's overhead), batch 1 and 64.
2. ``edge-infer run`` as a whole process vs a bare onnxruntime script: wall time, peak memory.
3. ONNX float32 vs the best INT8 recipe (``quantize --method auto``) vs FP16.
4. Keras ``model(x)`` and ``model.predict`` vs edge-infer.
5. TensorFlow Lite (LiteRT's interpreter, XNNPACK, same threads): float32, dynamic-range INT8
   and full INT8 with a representative dataset, converted from a SavedModel export, with
   accuracy side by side; where the converter refuses a model the reason is printed.

ONNX and TFLite run in children that never import TensorFlow (its thread pools slowed
onnxruntime by up to 2x). Needs the train and bench extras.

    python benchmarks/suite.py                      # about 6 minutes on 2 cores
    python benchmarks/suite.py --quick              # 1 epoch, few runs: checks it works (CI)
    python benchmarks/suite.py --save figures.json  # and --load figures.json to reprint

On a target without TensorFlow (a Raspberry Pi, a Jetson, a VNNI server), in two halves:

    python benchmarks/suite.py --prepare DIR --device rpi5      # here: train, export, quantize
    python benchmarks/suite.py --measure DIR --threads 4        # there: needs only the runtime
                                                                # (and ai-edge-litert for TFLite)

``--device`` takes several profiles (``x86-vnni,x86-avx2,arm64``) to time each one's recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (BATCHES, add_split_arguments, keras_timings,  # noqa: E402
                    litert_figures, onnx_figures, read_prepared, tflite_models, train_run)
from runtime_overhead import EDITABLE_NOTE  # noqa: E402

MODELS = {"cnn": "digits", "cifar_cnn": "digits", "lstm": "waves", "autoencoder": "digits"}
SPEC = "suite.json"  # what --prepare writes and --measure reads


def _child(*args: str) -> Any:
    """Run this script in a fresh interpreter (no TensorFlow) and return its JSON."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- children -----------------------------------------------------------------------------------

def child_overhead(spec: dict[str, Any]) -> dict[str, Any]:
    from runtime_overhead import in_process

    with np.load(spec["data"]) as d:
        x = d["x"]
    return {str(b): in_process(Path(spec["model"]), spec["calls"], spec["threads"],
                               x=np.ascontiguousarray(x[:b])) for b in BATCHES}


def child_cold_start(spec: dict[str, Any]) -> dict[str, Any]:
    """Whole-process runs, spawned from this small process: children forked from the
    TensorFlow-loaded parent inherit its resident-memory high-water mark."""
    from runtime_overhead import processes

    return processes(Path(spec["model"]), Path(spec["one"]), spec["processes"])


def child_models(spec: dict[str, Any]) -> dict[str, Any]:
    with np.load(spec["data"]) as d:
        x = d["x"]
        y = d["y"] if "y" in d.files else None
    task, runs, threads = spec["task"], spec["runs"], spec["threads"]
    rows = {name: onnx_figures(path, x, y, task, runs, threads)
            for name, path in spec["onnx"].items()}
    rows |= {name: litert_figures(path, x, y, task, runs, threads)
             for name, path in spec["tflite"].items()}
    return rows


# -- the TensorFlow-side preparation ------------------------------------------------------------

def _recipe(settings: dict[str, Any]) -> dict[str, Any]:
    """Quantization settings less the device they were made for: two profiles whose
    recipes are equal make the same file."""
    return {k: v for k, v in settings.items() if k != "device"}


def prepare(arch: str, dataset: str, root: Path, epochs: int | None, runs: int,
            devices: tuple[str, ...]) -> dict[str, Any]:
    """Train, export, quantize (``auto`` for each device profile, and fp16) and convert to
    TFLite; every file lands under ``root``, named in the result relative to it."""
    from edge_infer.export.exporter import ExportConfig, export
    from edge_infer.export.quantize import QuantizeConfig, quantize
    from edge_infer.train.datasets import load_dataset

    started = time.perf_counter()
    run = train_run(arch, dataset, root / arch, epochs)
    fp32 = export(ExportConfig(run)).path
    onnx = {"float32": fp32}
    recipes: dict[str, Any] = {}
    for device in devices:
        for method in ("auto", "fp16"):
            out = fp32.with_name(f"model.{method}-{device}.onnx")
            r = quantize(QuantizeConfig(fp32, method=method, device=device, out=out,
                                        max_accuracy_drop=100))
            settings = r.report()["settings"]
            if any(_recipe(settings) == _recipe(seen["settings"]) for seen in recipes.values()):
                out.unlink()  # another profile's recipe too: timed once
                continue
            name = "fp16" if r.method == "fp16" else f"int8-{r.method}"
            if len(devices) > 1 and r.method != "fp16":
                name += f" ({device})"
            onnx[name] = r.path
            recipes[name] = {"settings": settings, "accuracy_drop_points": r.drop_points}
    data = load_dataset(dataset, seed=0)
    task = "reconstruction" if arch == "autoencoder" else data.task
    x, y = data.x_test, (None if task == "reconstruction" else data.y_test.reshape(-1))
    np.savez(root / f"{arch}.npz", x=x, **({} if y is None else {"y": y}))
    np.save(root / f"{arch}-one.npy", x[0])
    tflite, errors = tflite_models(run, data.x_train[:200])
    shutil.rmtree(run / "saved_model", ignore_errors=True)  # TFLite's input, not the target's

    def rel(path: str | Path) -> str:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()

    return {"architecture": arch, "dataset": dataset, "task": task,
            "onnx": {k: rel(v) for k, v in onnx.items()},
            "tflite": {k: rel(v) for k, v in tflite.items()},
            "tflite_errors": errors, "recipes": recipes,
            "keras": keras_timings(run, x, y, task, runs), "data": rel(root / f"{arch}.npz"),
            "one": rel(root / f"{arch}-one.npy"),
            "prepare_seconds": round(time.perf_counter() - started, 1)}


def prepare_all(names: list[str], root: Path, epochs: int | None, runs: int,
                devices: tuple[str, ...]) -> dict[str, Any]:
    """The TensorFlow side for every model; writes ``root/suite.json`` (paths relative to
    ``root``) so the folder can be measured on another machine with ``--measure``."""
    from edge_infer.runtime.bench import machine
    from edge_infer.runtime.versions import installed_versions

    root.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, Any] = {
        "machine": machine(), "devices": list(devices),
        "versions": installed_versions("edge-infer", "onnxruntime", "tensorflow", "keras",
                                       "tf2onnx"),
        "models": {}}
    for arch in names:
        print(f"preparing {arch} on {MODELS[arch]}", file=sys.stderr, flush=True)
        prepared["models"][arch] = prepare(arch, MODELS[arch], root, epochs, runs, devices)
    (root / SPEC).write_text(json.dumps(prepared, indent=2))
    return prepared


# -- measuring: TensorFlow-free, on this machine ------------------------------------------------

def measure(root: Path, runs: int, calls: int, processes: int, threads: int,
            with_keras: bool) -> dict[str, Any]:
    """Time the prepared folder's models here. Keras' rows come from the preparing machine,
    so they are shown only when that is this run (``with_keras``)."""
    from edge_infer.runtime.bench import machine
    from edge_infer.runtime.versions import installed_versions

    prepared = read_prepared(root, SPEC)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "versions": installed_versions("edge-infer", "onnxruntime", "tensorflow", "keras",
                                       "tf2onnx", "ai-edge-litert", "numpy"),
        "threads": threads, "runs": runs, "models": {}}
    if not with_keras:
        report["prepared_on"] = {"machine": prepared["machine"],
                                 "versions": prepared["versions"]}
    for arch, prep in prepared["models"].items():
        print(f"measuring {arch}", file=sys.stderr, flush=True)
        at = {k: str(root / v) for k, v in prep["onnx"].items()}
        tflite = {k: str(root / v) for k, v in prep["tflite"].items()}
        data, one = str(root / prep["data"]), str(root / prep["one"])
        spec = root / f"{arch}.measure.json"
        spec.write_text(json.dumps({"onnx": at, "tflite": tflite, "data": data,
                                    "task": prep["task"], "runs": runs, "threads": threads}))
        row = {k: v for k, v in prep.items() if k not in ("onnx", "tflite", "data", "one")}
        if not with_keras:
            row.pop("keras")
        row["side_by_side"] = _child("--child", "models", str(spec))
        spec.write_text(json.dumps({"model": at["float32"], "data": data, "calls": calls,
                                    "threads": threads}))
        row["overhead"] = _child("--child", "overhead", str(spec))
        if not report["models"]:
            spec.write_text(json.dumps({"model": at["float32"], "one": one,
                                        "processes": processes}))
            row["cold_start"] = _child("--child", "cold", str(spec))
        spec.unlink()
        report["models"][arch] = row
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch and few runs: works?")
    parser.add_argument("--only", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000, help="overhead: calls per side")
    parser.add_argument("--processes", type=int, default=15, help="cold start: runs per side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="host",
                        help="device profile(s) to quantize for, comma-separated")
    add_split_arguments(parser)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--load", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, spec = args.child
        fn = {"overhead": child_overhead, "models": child_models,
              "cold": child_cold_start}[kind]
        print(json.dumps(fn(json.loads(Path(spec).read_text()))))
        return
    if args.load:
        print_report(json.loads(args.load.read_text()))
        return
    if args.quick:
        args.runs, args.calls, args.processes = 20, 100, 3
    if args.measure:
        report = measure(args.measure, args.runs, args.calls, args.processes, args.threads,
                         with_keras=False)
    else:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(names) - set(MODELS)
        if unknown:
            raise SystemExit(f"unknown model(s) {sorted(unknown)}; choose from {list(MODELS)}")
        devices = tuple(d.strip() for d in args.device.split(",") if d.strip())
        from edge_infer.devices.profiles import get

        for device in devices:
            get(device)  # an unknown profile is refused before any training
        epochs = 1 if args.quick else None
        if args.prepare:
            prepare_all(names, args.prepare, epochs, args.runs, devices)
            print(f"prepared {', '.join(names)} in {args.prepare}; time them on the target "
                  f"with: python benchmarks/suite.py --measure {args.prepare}")
            return
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            prepare_all(names, Path(tmp), epochs, args.runs, devices)
            report = measure(Path(tmp), args.runs, args.calls, args.processes,
                             args.threads, with_keras=True)
            report["seconds"] = round(time.perf_counter() - started, 1)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


# -- printing -----------------------------------------------------------------------------------

def _ratio(r: float) -> str:
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def _metric(row: dict[str, Any]) -> str:
    if "accuracy" in row:
        return f"acc {row['accuracy']:.4f}"
    if "mse" in row:
        return f"mse {row['mse']:.5f}"
    return ""


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {m['platform']}; "
          + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
          + f"; {r['threads']} threads, median of {r['runs']} runs")
    print(f"command: {r['command']}")
    if "prepared_on" in r:
        p = r["prepared_on"]
        print(f"models prepared on {p['machine']['cpu']} with "
              + ", ".join(f"{k} {v}" for k, v in p["versions"].items())
              + "; Keras is not timed here")
    print()
    for arch, d in r["models"].items():
        print(f"== {arch} on {d['dataset']} ==")
        o = d["overhead"]
        print("1. Model.run vs InferenceSession.run: "
              + ", ".join(f"batch {b} {v['model_run_ms'] * 1000:.1f} vs "
                          f"{v['session_run_ms'] * 1000:.1f} us ({v['overhead_pct']:+.1f}%)"
                          for b, v in o.items()))
        if "cold_start" in d:
            c = d["cold_start"]
            print(f"2. edge-infer run vs bare script: {c['cli_wall_s']:.3f} vs "
                  f"{c['bare_wall_s']:.3f} s ({c['wall_ratio']:.2f}x), peak "
                  f"{c['cli_peak_mib']:.0f} vs {c['bare_peak_mib']:.0f} MiB "
                  f"({c['memory_ratio']:.2f}x)")
            if c.get("editable_install"):
                print(EDITABLE_NOTE)
        side, keras = d["side_by_side"], d.get("keras")
        base = side["float32"]
        print("3-5. median latency in ms (ratio: ONNX float32 through Model.run / this; "
              "bound: Model.bind() runner):")
        rows = [(n, keras[n], _metric(keras), None) for n in ("keras model(x)", "keras predict")
                ] if keras else []
        for n, v in side.items():
            if n.startswith("tflite"):
                rows.append((n, v, _metric(v), v.get("size_bytes")))
            else:
                rows.append((f"onnx {n}", v, _metric(v), v.get("size_bytes")))
                rows.append(("  bound", {b: v[f"{b}-bound"] for b in ("1", "64")}, "", None))
        w = max(18, *(len(row[0]) + 2 for row in rows))
        print(f"   {'':<{w}}{'batch 1':>15}{'batch 64':>15}  {'quality':<14}{'size':>10}")
        for name, v, metric, size in rows:
            if "error" in v:
                print(f"   {name:<{w}}{v['error']}")
                continue
            cells = "".join(f"{v[b]:>8.3f} {_ratio(base[b] / v[b]):>6}" for b in ("1", "64"))
            print(f"   {name:<{w}}{cells}  {metric:<14}"
                  + (f"{size / 1024:>7.1f} KiB" if size else ""))
        for name, why in d["tflite_errors"].items():
            print(f"   {name:<{w}}cannot convert: {why}")
        for name, rec in d["recipes"].items():
            print(f"   {name}: {rec['settings']}")
        print()
    print(f"{r['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
