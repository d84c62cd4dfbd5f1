"""What the runtime costs on top of onnxruntime, for a small MNIST-style CNN.

Prints two comparisons (figures, not pass/fail):

1. In one process, batch-1 latency of ``edge_infer.runtime.Model.run`` against a bare
   ``onnxruntime.InferenceSession.run`` on the same session options, calls interleaved so that
   both see the same machine state.
2. Whole processes: wall time and peak memory of ``edge-infer run model.onnx x.npy`` against a
   bare Python script that imports onnxruntime, loads the model, runs one sample and prints.

Needs the dev extra (onnx builds the model)::

    python benchmarks/runtime_overhead.py [--calls 2000] [--processes 15] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def build_cnn(path: Path) -> Path:
    """Conv 32 -> pool -> Conv 64 -> pool -> dense 10 -> softmax, on 28x28x1 (NHWC)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array((rng.normal(size=shape) * 0.1).astype(np.float32), name)

    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [weight("w1", 32, 1, 3, 3), weight("b1", 32), weight("w2", 64, 32, 3, 3),
         weight("b2", 64), weight("w3", 64 * 5 * 5, 10), weight("b3", 10)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def in_process(path: Path, calls: int, threads: int | None,
               x: np.ndarray | None = None) -> dict[str, float]:
    """Interleaved median latency of ``Model.run`` and a bare ``InferenceSession.run`` on the
    same input (default: one random 28x28x1 image)."""
    import onnxruntime as ort

    from edge_infer.runtime import Model

    model = Model(path, providers=["cpu"], threads=threads)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    bare = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    if x is None:
        x = np.random.default_rng(1).random((1, 28, 28, 1), dtype=np.float32)
    feed = {bare.get_inputs()[0].name: x}
    for _ in range(50):
        model.run(x)
        bare.run(None, feed)
    ours, theirs = [], []
    clock = time.perf_counter_ns
    pair = ((lambda: model.run(x), ours), (lambda: bare.run(None, feed), theirs))
    for i in range(calls):
        # Alternate which call goes first, so that neither side always runs right after the
        # other (on caches and a thread pool the other just used).
        for call, times in (pair if i % 2 else pair[::-1]):
            t0 = clock()
            call()
            times.append(clock() - t0)
    ours_ms = statistics.median(ours) / 1e6
    bare_ms = statistics.median(theirs) / 1e6
    return {"model_run_ms": ours_ms, "session_run_ms": bare_ms,
            "overhead_pct": (ours_ms / bare_ms - 1) * 100,
            "overhead_us": (ours_ms - bare_ms) * 1000}


BARE_SCRIPT = """
import sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
name = session.get_inputs()[0].name
print(session.run(None, {name: x[np.newaxis] if x.ndim == 3 else x})[0])
"""


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    proc.stderr.close()
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def editable_install() -> bool:
    """True when edge-infer is imported from its source tree (an editable install) rather than
    from site-packages: the editable import hook makes every edge-infer import slower than a
    regular install's, so cold-start figures read high."""
    import edge_infer.runtime

    parts = Path(edge_infer.runtime.__file__).parts
    return "site-packages" not in parts and "dist-packages" not in parts


EDITABLE_NOTE = ("   (editable install: its import hook slows edge-infer's imports; install with "
                 "pip install '.[dev]', not -e, for the figure users get)")


def processes(path: Path, x_path: Path, repeats: int) -> dict[str, Any]:
    exe = shutil.which("edge-infer", path=str(Path(sys.executable).parent)) or "edge-infer"
    ours_cmd = [exe, "run", str(path), str(x_path)]
    bare_cmd = [sys.executable, "-c", BARE_SCRIPT, str(path), str(x_path)]
    for cmd in (ours_cmd, bare_cmd):  # warm the file cache
        _timed(cmd)
    ours, bare = [], []
    for _ in range(repeats):
        ours.append(_timed(ours_cmd))
        bare.append(_timed(bare_cmd))
    ow, om = statistics.median(w for w, _ in ours), max(m for _, m in ours)
    bw, bm = statistics.median(w for w, _ in bare), max(m for _, m in bare)
    return {"cli_wall_s": ow, "bare_wall_s": bw, "wall_ratio": ow / bw,
            "cli_peak_mib": om, "bare_peak_mib": bm, "memory_ratio": om / bm,
            "editable_install": editable_install()}


def main() -> None:
    parser = argparse.ArgumentParser(description="edge-infer runtime overhead benchmark")
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls per side")
    parser.add_argument("--processes", type=int, default=15, help="process runs per side")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        path = build_cnn(Path(tmp) / "cnn.onnx")
        x_path = Path(tmp) / "x.npy"
        np.save(x_path, np.random.default_rng(2).random((28, 28, 1), dtype=np.float32))
        result = {
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "platform": platform.platform(), "onnxruntime": onnxruntime.__version__},
            "in_process": in_process(path, args.calls, args.threads),
            "process": processes(path, x_path, args.processes),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ip, pr = result["in_process"], result["process"]
    m = result["machine"]
    print(f"machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}, "
          f"onnxruntime {m['onnxruntime']}")
    print(f"batch-1 latency, median of {args.calls} interleaved calls (MNIST-style CNN):")
    print(f"  InferenceSession.run  {ip['session_run_ms'] * 1000:8.1f} us")
    print(f"  Model.run             {ip['model_run_ms'] * 1000:8.1f} us   "
          f"overhead {ip['overhead_us']:+.1f} us ({ip['overhead_pct']:+.1f}%)")
    print(f"whole process, median wall time of {args.processes} runs, peak RSS:")
    print(f"  bare onnxruntime script  {pr['bare_wall_s']:6.3f} s  {pr['bare_peak_mib']:6.1f} MiB")
    print(f"  edge-infer run           {pr['cli_wall_s']:6.3f} s  {pr['cli_peak_mib']:6.1f} MiB   "
          f"ratio {pr['wall_ratio']:.2f}x time, {pr['memory_ratio']:.2f}x memory")
    if pr["editable_install"]:
        print(EDITABLE_NOTE)


if __name__ == "__main__":
    main()
