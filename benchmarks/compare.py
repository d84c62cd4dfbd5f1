"""Two ONNX files of one model, before and after a graph change: same inputs, outputs checked
to agree, calls alternating so that neither file gets the quieter moments of a shared machine.

    python benchmarks/compare.py before.onnx after.onnx [--runs 3000] [--batch 1 --batch 64]
                                 [--threads 1]

``edge-infer bench A B`` times A's runs, then B's; on this 2-core shared machine the model
measured first was up to 20% slower at batch 1 for no reason of its own. This script is what
the figures for the export's graph simplifications come from (export/simplify.py).

Each session runs on one thread by default (``--threads 0``: onnxruntime's choice, a pool per
core). Two sessions with their own pools of spinning threads on two cores get in each other's
way: the batch-64 ratio of one pair of files (a PReLU fold) read 0.69x, 1.01x and 1.51x in
three runs that way, and 0.91x to 0.96x on one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort


def _inputs(session: ort.InferenceSession, batch: int, open_size: int = 1
            ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for spec in session.get_inputs():
        shape = [batch if i == 0 else (d if isinstance(d, int) else open_size)
                 for i, d in enumerate(spec.shape)]
        if "int" in spec.type:
            feed[spec.name] = rng.integers(0, 10, shape).astype(
                np.int32 if spec.type == "tensor(int32)" else np.int64)
        else:
            feed[spec.name] = rng.random(shape, dtype=np.float32)
    return feed


def compare(before: str, after: str, batch: int, runs: int,
            feed: dict[str, np.ndarray] | None = None, threads: int = 1, open_size: int = 1
            ) -> tuple[float, float, float]:
    """Median microseconds per call of each file, and the largest output difference; on
    ``feed``, or on random inputs of the first file's signature (``open_size`` where a
    dimension after the batch is open); ``threads`` per session (0: onnxruntime's choice)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = [ort.InferenceSession(p, options, providers=["CPUExecutionProvider"])
                for p in (before, after)]
    feed = _inputs(sessions[0], batch, open_size) if feed is None else feed
    outs = [s.run(None, feed)[0] for s in sessions]
    diff = float(np.abs(outs[0].astype(np.float64) - outs[1]).max())
    names = [[o.name for o in s.get_outputs()] for s in sessions]
    times: list[list[float]] = [[], []]
    for _ in range(max(20, runs // 10)):
        for s, n in zip(sessions, names):
            s.run(n, feed)
    for r in range(runs):
        for k in ((0, 1) if r % 2 else (1, 0)):
            start = time.perf_counter()
            sessions[k].run(names[k], feed)
            times[k].append(time.perf_counter() - start)
    return float(np.median(times[0]) * 1e6), float(np.median(times[1]) * 1e6), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per session (default 1; 0: onnxruntime's choice)")
    parser.add_argument("--open-size", type=int, default=1,
                        help="size of an open dimension after the batch, such as steps "
                             "(default 1)")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}; {args.runs} alternating runs; median per call; "
          f"threads {args.threads or 'onnxruntime default'}"
          + (f"; open dimensions {args.open_size}" if args.open_size != 1 else ""))
    for batch in args.batch or [1, 64]:
        a, b, diff = compare(args.before, args.after, batch, args.runs, threads=args.threads,
                             open_size=args.open_size)
        print(f"batch {batch}: before {a:.1f} us, after {b:.1f} us ({a / b:.2f}x), "
              f"largest output difference {diff:.2g}")


if __name__ == "__main__":
    main()
