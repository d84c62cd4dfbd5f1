"""One model on onnxruntime's CPU provider and on another provider, calls alternating.

    python benchmarks/provider_compare.py model.onnx --provider openvino [--batch 1 --batch 64]
        [--threads 2] [-O openvino.load_config={}] [--input x.npy] [--runs 2000]

Both sessions are edge-infer ``Model``s, so the other provider gets what ``edge-infer run -p``
gives it (its defaults included: float32 for OpenVINO's CPU plugin, no TF32 for CUDA). Calls
alternate, as in compare.py, so neither side gets the quieter moments of a shared machine. Each
line gives the median per call of both, their ratio, the largest output difference and the
top-1 agreement. Needs only the runtime (and the provider's package).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def _inputs(model: Any, batch: int, given: np.ndarray | None) -> np.ndarray:
    spec = model.inputs[0]
    if given is not None:
        from edge_infer.runtime.bench import resize_batch

        return resize_batch({spec.name: given}, batch)[spec.name]
    shape = [batch, *[d if isinstance(d, int) else 1 for d in spec.shape[1:]]]
    return np.random.default_rng(0).random(shape, dtype=np.float32).astype(spec.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--provider", required=True, help="the provider set against cpu")
    parser.add_argument("-O", "--provider-option", action="append", default=[],
                        metavar="PROVIDER.KEY=VALUE")
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--input", help="a .npy of samples (default: random in [0, 1))")
    args = parser.parse_args()

    import onnxruntime

    from edge_infer.runtime import Model
    from edge_infer.runtime.cli.options import parse_provider_options
    from edge_infer.runtime.errors import EdgeInferError

    try:
        options = parse_provider_options(tuple(args.provider_option))
        cpu = Model(args.model, providers=["cpu"], threads=args.threads)
        other = Model(args.model, providers=[args.provider], threads=args.threads, strict=True,
                      provider_options=options)
    except EdgeInferError as exc:
        raise SystemExit(f"error: {exc}") from None
    given = np.load(args.input) if args.input else None
    print(f"{args.model}: onnxruntime {onnxruntime.__version__}; cpu vs {other.provider}; "
          f"threads {args.threads or 'default'}; options {args.provider_option or 'none'}")
    for batch in args.batch or [1, 64]:
        x = _inputs(cpu, batch, given)
        ref, out = cpu.run(x), other.run(x)
        name = cpu.signature.output_names[0]
        diff = float(np.abs(out[name].astype(np.float64) - ref[name]).max())
        agree = float(np.mean(out[name].argmax(-1) == ref[name].argmax(-1)))
        runs = max(20, args.runs // batch) if batch > 1 else args.runs
        times: dict[str, list[float]] = {"cpu": [], "other": []}
        for i in range(runs + max(10, runs // 10)):
            for side, model in (("cpu", cpu), ("other", other)):
                start = time.perf_counter()
                model.run(x)
                if i >= max(10, runs // 10):
                    times[side].append(time.perf_counter() - start)
        a, b = (float(np.median(times[k])) * 1e6 for k in ("cpu", "other"))
        print(f"batch {batch}: cpu {a:.1f} us, {other.provider} {b:.1f} us ({a / b:.2f}x), "
              f"largest output difference {diff:.2e}, top-1 agreement {agree:.4f}")


if __name__ == "__main__":
    main()
