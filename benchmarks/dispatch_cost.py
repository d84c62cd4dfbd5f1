"""What onnxruntime costs per call and per node, apart from the work the nodes do.

    python benchmarks/dispatch_cost.py [--runs 3000] [--threads 2]

Times chains of N ``Relu`` nodes on a ``[1, 8]`` float tensor (nothing to compute) for several
N, through ``InferenceSession.run`` and edge-infer's ``Model.run`` and a ``Model.bind()``
runner, and fits ``time = per call + N x per node`` by least squares. The docs say that small
models are dominated by per-operator overhead (the digits ``cnn`` runs 8 to 9 nodes in about
0.05 ms at batch 1); this is the figure behind that sentence.

onnxruntime would fuse or drop some chains, so each ``Relu`` reads the previous one's output
and the graph is loaded with its optimisations off (``ORT_DISABLE_ALL``): what is timed is
the dispatch of N real nodes. Runs in a process that never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms  # noqa: E402

LENGTHS = (1, 2, 4, 8, 16, 32, 64)


def chain(length: int, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    names = ["x", *(f"r{i}" for i in range(length - 1)), "y"]
    nodes = [helper.make_node("Relu", [names[i]], [names[i + 1]], name=f"relu{i}")
             for i in range(length)]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def fit(lengths: list[int], ms: list[float]) -> tuple[float, float]:
    """(per call, per node) in microseconds."""
    slope, intercept = np.polyfit(np.array(lengths, float), np.array(ms) * 1000, 1)
    return float(intercept), float(slope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: onnxruntime's choice)")
    args = parser.parse_args()

    import onnxruntime as ort

    from edge_infer.runtime import Model
    from edge_infer.runtime.bench import machine
    from edge_infer.runtime.model import SessionConfig

    x = np.zeros((1, 8), np.float32)
    rows: dict[str, list[float]] = {"InferenceSession.run": [], "Model.run": [],
                                    "Model.bind() runner": []}
    with tempfile.TemporaryDirectory() as tmp:
        for length in LENGTHS:
            path = chain(length, Path(tmp) / f"chain{length}.onnx")
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if args.threads is not None:
                so.intra_op_num_threads = args.threads
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            model = Model(path, providers=["cpu"],
                          config=SessionConfig(threads=args.threads, optimization="disable"))
            runner = model.bind(1)
            rows["InferenceSession.run"].append(
                median_ms(lambda s=session: s.run(None, {"x": x}), args.runs))
            rows["Model.run"].append(median_ms(lambda m=model: m.run(x), args.runs))
            rows["Model.bind() runner"].append(median_ms(lambda r=runner: r(x), args.runs))
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; threads "
          f"{args.threads if args.threads is not None else 'onnxruntime default'}; median of "
          f"{args.runs} calls; chains of Relu on [1, 8], optimisations off")
    print(f"{'nodes':<22}" + "".join(f"{n:>8}" for n in LENGTHS) + "   per call  per node")
    for name, ms in rows.items():
        per_call, per_node = fit(list(LENGTHS), ms)
        print(f"{name:<22}" + "".join(f"{t * 1000:>8.1f}" for t in ms)
              + f"   {per_call:6.1f} us {per_node:6.2f} us")


if __name__ == "__main__":
    main()
