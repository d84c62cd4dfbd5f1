"""What each lever does to INT8 latency on this CPU: the evidence behind the default recipe.

Trains the digits ``cnn`` (or takes ``--run DIR``), exports it with and without edge-infer's
graph simplification, quantizes it every way onnxruntime offers, and times each variant through
onnxruntime at batch 1 and 64 in a child process without TensorFlow:

- format: QDQ vs QOperator
- types: U8S8, U8U8, S8S8; with and without ``reduce_range``
- weights per channel vs per tensor
- graph: tf2onnx's raw output vs edge-infer's simplified export (constant flatten shapes, layout
  transposes onnxruntime can cancel against its NHWC INT8 kernels)
- threads: 1 vs 2
- input layout: NHWC as Keras has it vs NCHW (tf2onnx's ``inputs_as_nchw``), which drops the
  layout transpose tf2onnx puts after the input
- calls: ``Model.run`` vs ``Model.bind()`` (IO binding)

    python benchmarks/int8_levers.py [--runs 2000] [--run runs/cnn-digits]

To measure on another machine (a Raspberry Pi, a VNNI server) that has only the runtime:
``--prepare DIR`` here, copy DIR, then ``--measure DIR`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (add_split_arguments, load_tensorflow, median_ms, read_prepared,  # noqa: E402
                    train_run)

TYPES = {"U8S8": ("QUInt8", "QInt8"), "U8U8": ("QUInt8", "QUInt8"), "S8S8": ("QInt8", "QInt8")}


def quantize(src: Path, dst: Path, x: np.ndarray, fmt: str, types: str, per_channel: bool,
             reduce_range: bool, exclude: tuple[str, ...] = ()) -> None:
    from onnxruntime import quantization as q

    from edge_infer.export.quantize import calibration_reader

    prepared = dst.with_suffix(".pre.onnx")
    q.quant_pre_process(str(src), str(prepared))
    act, weight = TYPES[types]
    q.quantize_static(str(prepared), str(dst), calibration_reader(src, x),
                      quant_format=getattr(q.QuantFormat, fmt),
                      per_channel=per_channel, reduce_range=reduce_range,
                      activation_type=getattr(q.QuantType, act),
                      weight_type=getattr(q.QuantType, weight), nodes_to_exclude=list(exclude))


def profile(path: str, x: np.ndarray, runs: int = 200) -> dict[str, float]:
    """Median microseconds per node (onnxruntime's profiler, ``runtime/profile.py``), one
    run at ``x``, keyed ``"op node"``, slowest first."""
    from edge_infer.runtime import Model
    from edge_infer.runtime.model import SessionConfig
    from edge_infer.runtime.profile import profile as profile_calls

    def open_profiled(prefix: str) -> Model:
        return Model(path, providers=["cpu"], config=SessionConfig(profile_prefix=prefix))

    found = profile_calls(open_profiled, [x], runs, warmup=20)[0]
    return {f"{n.op} {n.name}": n.us for n in found.nodes}


def export_nchw(run: Path, dst: Path, x: np.ndarray) -> Path:
    """The simplified export of the run's model with a channels-first input. The exporter's
    parity check feeds the NHWC samples, so it is checked here with transposed ones."""
    import keras
    import onnx
    import onnxruntime as ort

    from edge_infer.export.convert import input_name, keras_to_onnx
    from edge_infer.export.exporter import _optimize
    from edge_infer.export.simplify import simplify

    model = keras.models.load_model(run / "model.keras")
    proto = _optimize(keras_to_onnx(model, inputs_as_nchw=(input_name(model.inputs[0]),)))
    simplify(proto)
    onnx.save(proto, str(dst))
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: to_nchw(x)})[0]
    diff = float(np.abs(np.asarray(model(x, training=False)) - got).max())
    if diff > 1e-4:
        raise SystemExit(f"the NCHW export differs from Keras by {diff:.3g}")
    return dst


def to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


FIRST_FLOAT = "first conv float32"
# edge-infer's static recipe: the first conv's layer float32 (qdq.thin_conv_layers), its Relu
# after the MaxPool so the quantization stays behind the pool (qdq.pool_before_activation),
# and the pooled tensor handed over in NHWC (qdq.channels_last_handover)
POOL_FIRST = "first conv float32, pool first, NHWC handover"
PROPAGATION = "QDQPropagationTransformer"  # onnxruntime's pass that moves Q/DQ across MaxPool


def float_island(spec: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    """Why keeping the first convolution in float32 is slower: bare sessions (the pass can only
    be turned off per session, ``disabled_optimizers``), median ms, and a one-node MaxPool on
    a [64, 32, 8, 8] input in float32 and in uint8 (NCHW)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    files = {"float32": spec["variants"]["float32, simplified"][0],
             "INT8 (default recipe)": spec["variants"][DEFAULT][0],
             f"INT8, {FIRST_FLOAT}": spec["variants"][f"{DEFAULT}, {FIRST_FLOAT}"][0]}
    runs = [(name, path, []) for name, path in files.items()]
    runs.append((f"INT8, {FIRST_FLOAT}, {PROPAGATION} off", files[f"INT8, {FIRST_FLOAT}"],
                 [PROPAGATION]))
    if f"{DEFAULT}, {POOL_FIRST}" in spec["variants"]:  # folders prepared before it existed
        runs.append((f"INT8, {POOL_FIRST}", spec["variants"][f"{DEFAULT}, {POOL_FIRST}"][0],
                     []))
    out: dict[str, Any] = {}
    for name, path, off in runs:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=off)
        feed_name = session.get_inputs()[0].name
        out[name] = {str(b): median_ms(lambda s=session, f={feed_name: x[:b]}: s.run(None, f),
                                       spec["runs"] if b == 1 else max(50, spec["runs"] // 10))
                     for b in (1, 64)}
    pools = {}
    for label, dtype, make in (("float32", TensorProto.FLOAT, np.float32),
                               ("uint8", TensorProto.UINT8, np.uint8)):
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
        graph = helper.make_graph([node], "pool",
                                  [helper.make_tensor_value_info("x", dtype, [64, 32, 8, 8])],
                                  [helper.make_tensor_value_info("y", dtype, [64, 32, 4, 4])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        data = (np.random.default_rng(0).random((64, 32, 8, 8)) * 255).astype(make)
        pools[label] = median_ms(lambda s=session, f={"x": data}: s.run(None, f), 300) * 1000
    return {"sessions (ms)": out, "MaxPool [64, 32, 8, 8] NCHW (us)": pools}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    from edge_infer.runtime import Model

    x = np.load(spec["data"])
    nchw = set(spec.get("nchw", ()))
    out: dict[str, Any] = {"profile (us per run)": {
        f"{name}, batch {b}": profile(spec["variants"][name][0], np.ascontiguousarray(x[:b]))
        for name in spec["profile"] for b in (1, 64)}}
    for name, (path, threads) in spec["variants"].items():
        model = Model(path, providers=["cpu"], threads=threads)
        row = {}
        for b in (1, 64):
            xb = to_nchw(x[:b]) if name in nchw else np.ascontiguousarray(x[:b])
            runs = spec["runs"] if b == 1 else max(50, spec["runs"] // 10)
            row[f"run {b}"] = median_ms(lambda model=model, xb=xb: model.run(xb), runs)
            runner = model.bind(b)
            row[f"bound {b}"] = median_ms(lambda runner=runner, xb=xb: runner(xb), runs)
        row["size"] = os.path.getsize(path)
        out[name] = row
    out["float island"] = float_island(spec, np.ascontiguousarray(x[:64]))
    return out


# the x86-avx2 profile's types, everything quantized (the recipe before it kept thin convs float)
DEFAULT = "QDQ U8S8, reduce_range, simplified"
SPEC = "levers.json"  # what --prepare writes and --measure reads


def prepare(root: Path, run: Path | None) -> dict[str, Any]:
    """The TensorFlow side: every variant as a file under ``root``, named relative to it."""
    load_tensorflow()
    import onnx

    from edge_infer.export.exporter import ExportConfig, export

    root.mkdir(parents=True, exist_ok=True)
    run = run or train_run("cnn", "digits", root / "cnn", None)
    with np.load(run / "samples.npz") as d:
        x = d["x"]
    np.save(root / "x.npy", x)
    simplified = export(ExportConfig(run, out=root / "simplified.onnx")).path
    raw = export(ExportConfig(run, out=root / "raw.onnx", optimize=False)).path
    variants: dict[str, tuple[str, int | None]] = {
        "float32, tf2onnx graph": (raw.name, None),
        "float32, simplified": (simplified.name, None),
        "float32, simplified, 1 thread": (simplified.name, 1),
    }
    grid = [("QDQ", t, True, rr) for t in TYPES for rr in (False, True)]
    grid += [("QDQ", "U8S8", False, True), ("QOperator", "U8S8", True, True),
             ("QOperator", "U8U8", True, False), ("QOperator", "U8S8", True, False)]
    for fmt, types, pc, rr in grid:
        for graph, src in (("simplified", simplified),) + (
                (("tf2onnx graph", raw),) if (fmt, types, pc, rr) == ("QDQ", "U8S8", True,
                                                                     True) else ()):
            name = (f"{fmt} {types}{', reduce_range' if rr else ''}"
                    f"{', per-tensor' if not pc else ''}, {graph}")
            dst = root / f"v{len(variants)}.onnx"
            quantize(src, dst, x, fmt, types, pc, rr)
            variants[name] = (dst.name, None)
    variants[DEFAULT + ", 1 thread"] = (variants[DEFAULT][0], 1)
    first_conv = next(n.name for n in onnx.load(str(simplified)).graph.node
                      if n.op_type == "Conv")
    dst = root / "first-float.onnx"
    quantize(simplified, dst, x, "QDQ", "U8S8", True, True, exclude=(first_conv,))
    variants[f"{DEFAULT}, {FIRST_FLOAT}"] = (dst.name, None)
    from edge_infer.export.qdq import (channels_last_handover, pool_before_activation,
                                       thin_conv_layers)
    from edge_infer.export.quantize import excluded_nodes

    proto = onnx.load(str(simplified))
    dst = root / "pool-first.onnx"
    quantize(simplified, dst, x, "QDQ", "U8S8", True, True,
             exclude=tuple(excluded_nodes(proto, thin_conv_layers(proto))))
    proto = onnx.load(str(dst))
    pool_before_activation(proto)
    channels_last_handover(proto)
    onnx.save(proto, str(dst))
    variants[f"{DEFAULT}, {POOL_FIRST}"] = (dst.name, None)
    nchw = export_nchw(run, root / "nchw.onnx", x)
    dst = root / "nchw-int8.onnx"
    quantize(nchw, dst, to_nchw(x), "QDQ", "U8S8", True, True)
    layout = {"float32, NCHW input": nchw.name,
              DEFAULT.replace("simplified", "NCHW input"): dst.name}
    variants.update((name, (path, None)) for name, path in layout.items())
    for path in root.glob("*.pre.onnx"):
        path.unlink()
    spec = {"data": "x.npy", "variants": variants, "nchw": list(layout),
            "profile": ["float32, simplified", DEFAULT, "QDQ U8S8, simplified",
                        f"{DEFAULT}, {POOL_FIRST}"]}
    (root / SPEC).write_text(json.dumps(spec, indent=2))
    return spec


def measure(root: Path, runs: int, threads: int | None = None) -> dict[str, Any]:
    """Time a prepared folder here, in a child process that never imports TensorFlow."""
    spec = read_prepared(root, SPEC)
    spec["data"] = str(root / spec["data"])
    spec["variants"] = {k: (str(root / path), own or threads)
                        for k, (path, own) in spec["variants"].items()}
    spec["runs"] = runs
    child_spec = root / "measure.json"
    child_spec.write_text(json.dumps(spec))
    try:
        done = subprocess.run([sys.executable, __file__, "--child", str(child_spec)],
                              capture_output=True, text=True)
    finally:
        child_spec.unlink()
    if done.returncode != 0:
        raise SystemExit(f"the timing child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--run", type=Path, help="a trained cnn run folder (default: train)")
    add_split_arguments(parser)
    parser.add_argument("--threads", type=int,
                        help="intra-op threads of the variants that do not set their own "
                             "(default: onnxruntime's choice, one per core it sees)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(Path(args.child).read_text()))))
        return
    if args.prepare:
        prepare(args.prepare, args.run)
        print(f"prepared {args.prepare}; time it on the target with: "
              f"python benchmarks/int8_levers.py --measure {args.prepare}")
        return
    if args.measure:
        rows = measure(args.measure, args.runs, args.threads)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            prepare(Path(tmp), args.run)
            rows = measure(Path(tmp), args.runs, args.threads)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    from edge_infer.runtime.bench import machine

    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; {' '.join(sys.argv[1:]) or 'defaults'}")
    profiles = rows.pop("profile (us per run)")
    island = rows.pop("float island")
    base = rows["float32, simplified"]
    print(f"{'variant':<46}{'run b1':>9}{'bound b1':>10}{'run b64':>9}{'bound b64':>10}"
          f"{'size':>9}   (ms; ratio to float32 simplified, Model.run)")
    for name, r in rows.items():
        print(f"{name:<46}{r['run 1']:>9.3f}{r['bound 1']:>10.3f}{r['run 64']:>9.3f}"
              f"{r['bound 64']:>10.3f}{r['size'] / 1024:>7.1f}K   "
              f"b1 {base['run 1'] / r['run 1']:.2f}x, b64 {base['run 64'] / r['run 64']:.2f}x")
    for name, ops in profiles.items():
        top = ", ".join(f"{op} {us:.0f}" for op, us in list(ops.items())[:5])
        print(f"profile, {name}: {top} (median us per run; total {sum(ops.values()):.0f})")
    print(f"\n{FIRST_FLOAT}: bare InferenceSession.run, median ms")
    for name, r in island["sessions (ms)"].items():
        print(f"  {name:<62}b1 {r['1']:.3f}  b64 {r['64']:.3f}")
    pools = island["MaxPool [64, 32, 8, 8] NCHW (us)"]
    print("  one MaxPool 2x2 on [64, 32, 8, 8] NCHW: "
          + ", ".join(f"{k} {v:.0f} us" for k, v in pools.items()))


if __name__ == "__main__":
    main()
