"""The zoo's files on older onnxruntime releases: does each recipe's file load, give the same
outputs, and keep its speed against float32?

The runtime asks for ``onnxruntime>=1.16``, and edge devices often run an older release than
the workstation that made the file (a distribution's package, a vendor's wheel). This trains
each architecture (the embedded dataset), exports it and quantizes it with every recipe that
applies, here; then, for each onnxruntime release asked for, makes a virtual environment with
that release from the package index (once; kept under ``--venvs``) and runs every file in a
fresh process of it, with float32 beside it: whether it loads (and the first line of
onnxruntime's refusal when not), the operators of onnxruntime's optimised graph, the largest
difference from float32 on 64 samples, and the speed against float32 in the same process
(median of timed calls, batch 1 and 64, onnxruntime's default threads; the fastest of three
rounds over all the files).

``--compaction`` also writes each static and dynamic file without the passes that only make it
smaller (``qdq.drop_propagated_pairs``, ``tidy.shorten_names``, ``tidy.drop_tool_props``) and
checks, in every release, that onnxruntime's optimised graph and the outputs are the same.

    python benchmarks/ort_versions.py [--versions 1.16.3,1.19.2,1.24.4] [--archs cnn,lstm]
        [--venvs DIR] [--compaction] [--runs 300] [--quick]

About 20 s per release to make its environment the first time, and under three minutes for
the seven default models. Needs the [train] extra here, and the package index for the
environments. ``--quick`` (the CI's form) uses this environment's onnxruntime only: one cnn,
one epoch, few runs.
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

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("1.16.3", "1.17.3", "1.18.1", "1.19.2", "1.20.1", "1.21.1", "1.22.1", "1.23.2",
            "1.24.4")
ARCHS = ("cnn", "cifar_cnn", "gan", "conv_autoencoder", "lstm", "mlp", "gru")
CONVOLUTIONAL = ("cnn", "cifar_cnn", "gan", "conv_autoencoder")
SAMPLES = 64
ROUNDS = 3


# --- the child: runs in each release's environment, with numpy, onnx and onnxruntime only ---

def child(spec_path: str) -> int:
    """Measure the files a spec names; print one JSON object."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    spec = json.loads(Path(spec_path).read_text())
    runs = spec["runs"]

    def median_us(session: Any, feed: dict[str, Any], n: int) -> float:
        for _ in range(max(5, n // 10)):
            session.run(None, feed)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e6)

    def load(path: str, tmp: str) -> tuple[Any, list[str]]:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = os.path.join(tmp, "optimised.onnx")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
        return session, ops

    results: dict[str, Any] = {"onnxruntime": ort.__version__, "files": {}}
    for arch, files in spec["models"].items():
        x = np.load(spec["inputs"][arch])
        sessions: dict[str, Any] = {}
        for label, path in files.items():
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    sessions[label], ops = load(path, tmp)
                except Exception as e:  # the refusal is the finding
                    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    results["files"][label] = {"error": line[:300]}
                    continue
            results["files"][label] = {"ops": ops}
            disable = spec["disable"].get(label)
            if disable:  # what edge-infer's runtime does with this file on this release
                options = ort.SessionOptions()
                options.log_severity_level = 3
                sessions[f"{label}.runtime"] = ort.InferenceSession(
                    path, options, providers=["CPUExecutionProvider"],
                    disabled_optimizers=disable)
                results["files"][f"{label}.runtime"] = {"ops": [], "disabled": disable}
        feeds = {label: {s.get_inputs()[0].name: x} for label, s in sessions.items()}
        outputs = {label: s.run(None, feeds[label])[0] for label, s in sessions.items()}
        # Rounds over all the files, the fastest median of each: a file timed first (or
        # while the machine is busy) would otherwise read slower than it is.
        for _ in range(ROUNDS):
            for label, session in sessions.items():
                name = session.get_inputs()[0].name
                row = results["files"][label]
                b1 = median_us(session, {name: x[:1]}, runs)
                b64 = median_us(session, {name: x}, max(20, runs // 5))
                row["b1_us"] = min(b1, row.get("b1_us", b1))
                row["b64_us"] = min(b64, row.get("b64_us", b64))
        float_label = next(iter(files))
        for label, y in outputs.items():
            row = results["files"][label]
            if float_label in outputs and label != float_label:
                row["max_diff"] = float(np.abs(y.astype(np.float64) - outputs[float_label]).max())
            if label.endswith(".runtime"):
                row["same_outputs"] = bool(np.array_equal(outputs[label.removesuffix(
                    ".runtime")], y))
            compact = label.removesuffix(".plain")
            if label.endswith(".plain") and compact in outputs:
                row["same_as_compact"] = bool(results["files"][compact]["ops"] == row["ops"]
                                              and np.array_equal(outputs[compact], y))
        for label in files:  # neither loads: the compaction changed nothing there either
            compact = label.removesuffix(".plain")
            if (label.endswith(".plain") and "error" in results["files"][label]
                    and "error" in results["files"].get(compact, {})):
                results["files"][label]["same_as_compact"] = True
    print(json.dumps(results))
    return 0


# --- the parent: makes the files and the environments, and prints the tables ---

def make_files(archs: list[str], root: Path, epochs: int | None,
               compaction: bool) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Train, export and quantize each architecture; returns arch -> {label: path} (float32
    first) and arch -> the .npy of its input samples."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import load_tensorflow, train_run

    load_tensorflow()
    from edge_infer.export.exporter import ExportConfig, export
    from edge_infer.export.quantize import QuantizeConfig, RefusedError, quantize

    models, inputs = {}, {}
    for arch in archs:
        run = train_run(arch, None, root / arch, epochs)
        model = export(ExportConfig(run)).path
        samples = np.load(run / "samples.npz")["x"][:SAMPLES]
        inputs[arch] = str(root / f"{arch}.npy")
        np.save(inputs[arch], samples)
        files = {f"{arch}.float32": str(model)}
        recipes = (["static"] if arch in CONVOLUTIONAL else []) + ["dynamic", "weight-only",
                                                                   "fp16"]
        for method in recipes:
            out = model.with_name(f"model.{method}.onnx")
            try:
                quantize(QuantizeConfig(model, method=method, out=out, max_accuracy_drop=100))
            except RefusedError:
                continue  # nothing for that recipe to quantize in this model
            files[f"{arch}.{method}"] = str(out)
            if compaction and method in ("static", "dynamic"):
                plain = model.with_name(f"model.{method}.plain.onnx")
                with _without_compaction():
                    quantize(QuantizeConfig(model, method=method, out=plain,
                                            max_accuracy_drop=100))
                files[f"{arch}.{method}.plain"] = str(plain)
        models[arch] = files
    return models, inputs


class _without_compaction:
    """The quantizer as it was before the passes that only make the file smaller."""

    def __enter__(self) -> None:
        from edge_infer.export import qdq, tidy

        self.saved = [(qdq, "drop_propagated_pairs", qdq.drop_propagated_pairs),
                      (tidy, "shorten_names", tidy.shorten_names),
                      (tidy, "drop_tool_props", tidy.drop_tool_props)]
        for module, name, _ in self.saved:
            setattr(module, name, lambda proto: 0)

    def __exit__(self, *exc: Any) -> None:
        for module, name, fn in self.saved:
            setattr(module, name, fn)


def environment(version: str, venvs: Path) -> Path:
    """The python of a virtual environment holding onnxruntime ``version`` (made once)."""
    python = venvs / f"ort-{version}" / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
    # the releases before 1.19 were built against numpy 1.x
    numpy = "numpy<2" if tuple(int(p) for p in version.split(".")[:2]) < (1, 19) else "numpy"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", f"onnxruntime=={version}", "onnx",
                           numpy], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"could not install onnxruntime {version}: "
                         f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return python


def measure(python: Path | str, version: str, models: dict[str, dict[str, str]],
            inputs: dict[str, str], runs: int, root: Path) -> dict[str, Any]:
    """Run the child in ``python`` (onnxruntime ``version``). It is told which optimizers
    edge-infer's runtime would disable for each file on that release (``runtime/compat.py``,
    worked out here: the release's environment has no edge-infer), and times those files a
    second time that way."""
    from edge_infer.runtime.compat import older_release_plan
    from edge_infer.runtime.modelfile import read_model_info

    disable = {label: older_release_plan(read_model_info(path).metadata, version, label)[0]
               for files in models.values() for label, path in files.items()}
    spec = root / "spec.json"
    spec.write_text(json.dumps({"models": models, "inputs": inputs, "runs": runs,
                                "disable": disable}))
    done = subprocess.run([str(python), __file__, "--child", str(spec)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        raise SystemExit(f"{python}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell(row: dict[str, Any], float_row: dict[str, Any]) -> str:
    if "error" in row:
        return "no load"
    if not row:
        return "-"
    if "b1_us" not in float_row:
        return "loads"
    return f"{float_row['b1_us'] / row['b1_us']:.2f}/{float_row['b64_us'] / row['b64_us']:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--versions", default=",".join(VERSIONS),
                        help="onnxruntime releases, beside this environment's")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--epochs", type=int, default=1, help="most epochs (default 1)")
    parser.add_argument("--venvs", type=Path,
                        default=Path.home() / ".cache" / "edge-infer" / "ort-versions")
    parser.add_argument("--runs", type=int, default=300, help="timed calls at batch 1")
    parser.add_argument("--compaction", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="this environment only, cnn, one epoch, 20 runs: checks it works")
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started = time.perf_counter()
    versions = [] if args.quick else [v for v in args.versions.split(",") if v]
    archs = ["cnn"] if args.quick else args.archs.split(",")
    runs = 20 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models, inputs = make_files(archs, root, args.epochs, args.compaction or args.quick)
        import onnxruntime

        releases = {v: environment(v, args.venvs) for v in versions}
        releases[onnxruntime.__version__] = Path(sys.executable)
        found = [measure(p, v, models, inputs, runs, root) for v, p in releases.items()]
    names = [r["onnxruntime"] for r in found]
    labels = [label for files in models.values() for label in files
              if not label.endswith((".float32", ".plain"))]
    shimmed = {label for r in found for label in r["files"] if label.endswith(".runtime")}
    labels = [x for label in labels for x in (label, f"{label}.runtime") if x == label
              or x in shimmed]
    print(f"speed against float32 in the same onnxruntime, batch 1 / batch 64 "
          f"(above 1: faster); {runs} calls at batch 1; a .runtime row: the file as "
          f"edge-infer's runtime loads it on a release older than it needs (the optimizers "
          f"it names disabled), '-' where the release needs nothing of it")
    print(f"{'file':<24}" + "".join(f"{n:>13}" for n in names))
    errors: dict[str, str] = {}
    for label in labels:
        arch = label.split(".")[0]
        cells = []
        for r in found:
            row = r["files"].get(label, {})
            if "error" in row:
                errors.setdefault(label, f"{r['onnxruntime']}: {row['error']}")
            cells.append(cell(row, r["files"].get(f"{arch}.float32", {})))
        print(f"{label:<24}" + "".join(f"{c:>13}" for c in cells))
    for label, line in errors.items():
        print(f"  {label} (first refusal) {line}")
    graphs = {}
    for label in labels:
        seen = {tuple(r["files"][label]["ops"]) for r in found
                if "ops" in r["files"].get(label, {})}
        if len(seen) > 1:
            graphs[label] = [(r["onnxruntime"], len(r["files"][label].get("ops", [])))
                             for r in found]
    for label, counts in graphs.items():
        print(f"  {label}: optimised graphs differ between releases (operators: "
              + ", ".join(f"{v} {n}" for v, n in counts) + ")")
    diffs = {label: max((r["files"][label].get("max_diff", 0.0) for r in found
                         if label in r["files"]), default=0.0) for label in labels}
    print("largest difference from float32, any release: "
          + ", ".join(f"{label} {d:.3g}" for label, d in diffs.items()))
    if shimmed:
        same = all(r["files"][label].get("same_outputs") for r in found
                   for label in r["files"] if label.endswith(".runtime"))
        print("the .runtime sessions gave the same outputs as onnxruntime's own, to the bit: "
              + ("yes" if same else "NO"))
    compacted = [label for files in models.values() for label in files
                 if label.endswith(".plain")]
    if compacted:
        print("without the compaction passes, same optimised graph and outputs: "
              + ", ".join(f"{label.removesuffix('.plain')} "
                          + ("yes" if all(r["files"].get(label, {}).get("same_as_compact")
                                          for r in found) else "NO")
                          for label in compacted)
              + f" (in {', '.join(names)})")
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
