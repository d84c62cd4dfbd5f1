"""Weight-only INT8 against the INT8 recipes that compute in integers, on the trained zoo.

Trains each architecture on its embedded dataset, exports it, quantizes it with every recipe
that applies (``dynamic``; ``static`` for models with convolutions; ``weight-only``, which stores
the weights in int8 and lets onnxruntime dequantize them once at load: export/weight_only.py),
then times float32 and the quantized files together in a fresh process (``edge-infer bench``,
batch 1 and 64, onnxruntime's default threads) and prints, per model: the metric, top-1
agreement with float32, the largest output difference, file size, and speed against float32.

    python benchmarks/weight_only.py [--archs mlp,lstm,...] [--runs 1000] [--repeats 2] [--quick]
    python benchmarks/weight_only.py --load [--layers 4 --width 2048]

About 6 minutes for the whole zoo on two cores (the GAN's training is half of it). Needs the
[train] extra. ``--load`` measures what the dequantization at load costs instead, on a
generated MLP large enough to see it (16.8M weights by default): session creation time and the
process's peak memory, float32 against weight-only, each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from common import load_tensorflow, train_run  # noqa: E402

ARCHS = ("mlp", "autoencoder", "regressor", "lstm", "gru", "gan", "cnn", "cifar_cnn",
         "conv_autoencoder")
CONVOLUTIONAL = ("gan", "cnn", "cifar_cnn", "conv_autoencoder")


def quantized_files(model: Path, arch: str) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Each recipe's file (where it quantized something) and its report row."""
    from edge_infer.export.quantize import QuantizeConfig, RefusedError, quantize

    recipes = ["dynamic", "weight-only"] + (["static"] if arch in CONVOLUTIONAL else [])
    files, rows = {}, []
    for method in recipes:
        out = model.with_name(f"model.{method}.onnx")
        try:
            report = quantize(QuantizeConfig(model, method=method, out=out,
                                             max_accuracy_drop=100)).report()
        except RefusedError as e:
            rows.append({"recipe": method, "skipped": str(e).split(":")[0]})
            continue
        files[method] = out
        rows.append({"recipe": method, "metric": report["quantized"]["metric"],
                     "value": report["quantized"]["value"],
                     "float32": report["original"]["value"],
                     "agreement": report["top1_agreement"], "diff": report["max_abs_diff"],
                     "size": report["size_ratio"]})
    return files, rows


def timings(model: Path, files: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """p50 at batch 1 and samples/s at batch 64, per file, from one fresh benchmark process
    (float32 first)."""
    from edge_infer.runtime.bench import BenchConfig, benchmark_subprocess

    results = benchmark_subprocess([model, *files.values()], BenchConfig((1, 64), runs=runs))
    out = {}
    for name, result in zip(["float32", *files], results):
        by_batch = {b["batch_size"]: b for b in result["batches"]}
        out[name] = {"b1": by_batch[1]["latency_ms"]["p50"],
                     "b64": by_batch[64]["throughput_per_s"],
                     "session": result["session_seconds"]}
    return out


def one_arch(arch: str, root: Path, epochs: int | None, runs: int,
             repeats: int) -> list[dict[str, Any]]:
    from edge_infer.export.exporter import ExportConfig, export

    run = train_run(arch, None, root / arch, epochs)  # the embedded dataset, seed 0
    model = export(ExportConfig(run)).path
    files, rows = quantized_files(model, arch)
    timed = [timings(model, files, runs) for _ in range(repeats)]
    for row in rows:
        if "skipped" in row:
            continue
        b1 = [t["float32"]["b1"] / t[row["recipe"]]["b1"] for t in timed]
        b64 = [t[row["recipe"]]["b64"] / t["float32"]["b64"] for t in timed]
        row.update(b1=(min(b1), max(b1)), b64=(min(b64), max(b64)),
                   session=max(t[row["recipe"]]["session"] for t in timed),
                   float_session=max(t["float32"]["session"] for t in timed))
    return rows


def load_cost(layers: int, width: int, runs: int) -> None:
    """Session creation and peak memory of a large generated MLP, float32 and weight-only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_infer.export.weight_only import store_weights_int8
    from edge_infer.runtime.bench import BenchConfig, benchmark_subprocess

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"dense_{i}/kernel"))
        nodes += [helper.make_node("MatMul", [x, f"dense_{i}/kernel"], [f"dense_{i}/MatMul"],
                                   name=f"dense_{i}/MatMul"),
                  helper.make_node("Relu", [f"dense_{i}/MatMul"], [f"dense_{i}/Relu"],
                                   name=f"dense_{i}/Relu")]
        x = f"dense_{i}/Relu"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", width])], [helper.make_tensor_value_info(
            x, TensorProto.FLOAT, ["batch", width])], inits)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "float32.onnx", Path(tmp) / "weight-only.onnx"]
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(proto, str(paths[0]))
        store_weights_int8(proto)
        onnx.save(proto, str(paths[1]))
        print(f"MLP {layers} x {width}x{width} ({layers * width * width / 1e6:.1f}M weights), "
              f"each file in its own process, batch 1, {runs} runs:")
        for path in paths:
            [r] = benchmark_subprocess([path], BenchConfig((1,), runs=runs))
            print(f"  {path.stem:<12} file {path.stat().st_size / 2**20:7.2f} MiB  session "
                  f"{r['session_seconds'] * 1e3:6.0f} ms  peak memory {r['peak_rss_mib']:6.0f} "
                  f"MiB  batch 1 p50 {r['batches'][0]['latency_ms']['p50']:.3f} ms")


def _span(pair: tuple[float, float]) -> str:
    low, high = pair
    return f"{low:.2f}x" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="most epochs (default: the architecture's)")
    parser.add_argument("--runs", type=int, default=1000, help="timed calls per batch size")
    parser.add_argument("--repeats", type=int, default=2,
                        help="bench processes per model; speeds print as the range")
    parser.add_argument("--load", action="store_true",
                        help="measure the load cost on a generated MLP instead")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--quick", action="store_true",
                        help="mlp only, one epoch, 20 runs, one repeat: checks it works")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.load:
        load_cost(args.layers, args.width, min(args.runs, 200))
        return 0
    load_tensorflow()
    archs = ["mlp"] if args.quick else args.archs.split(",")
    epochs, runs, repeats = (1, 20, 1) if args.quick else (args.epochs, args.runs, args.repeats)
    print(f"{'model':<17}{'recipe':<12}{'metric':>17}{'agree':>9}{'max|diff|':>10}{'size':>7}"
          f"{'batch 1':>13}{'batch 64':>13}{'session':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            for r in one_arch(arch, Path(tmp), epochs, runs, repeats):
                if "skipped" in r:
                    print(f"{arch:<17}{r['recipe']:<12}  not applied: {r['skipped']}")
                    continue
                metric = ("" if r["value"] is None else
                          f"{r['metric']} {r['float32']:.4f}>{r['value']:.4f}"
                          if r["metric"] == "accuracy" else f"mse {r['value']:.5f}")
                agree = "" if r["agreement"] is None else f"{r['agreement']:.2%}"
                print(f"{arch:<17}{r['recipe']:<12}{metric:>17}{agree:>9}{r['diff']:>10.4f}"
                      f"{r['size']:>7.1%}{_span(r['b1']):>13}{_span(r['b64']):>13}"
                      f"{r['session'] * 1e3:>6.0f} ms", flush=True)
    print("speeds: float32's time over the recipe's (above 1: faster than float32); session: "
          "creating it, the largest of the repeats")
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
