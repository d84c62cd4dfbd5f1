"""Real architectures through the whole path: ``keras.applications`` models (random weights, so
nothing is downloaded) exported with a parity proof, quantized to static INT8, and timed.

Each case is built and exported in a child process that imports TensorFlow (batch-norm
statistics made non-trivial, so that folding them is exercised; 32 uniform 0-255 images to
prove parity on, 64 more to calibrate and compare INT8 on). The float32 and INT8 files are
then timed here, in a process without TensorFlow, calls alternating, one thread per session
(``compare.py``).

    python benchmarks/keras_applications.py [--case mobilenetv2 ...] [--runs 200]
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

ROOT = Path(__file__).resolve().parents[1]
# name -> (keras.applications class, input side, extra constructor arguments)
CASES = {
    "MobileNetV2": ("MobileNetV2", 96, {"alpha": 0.35}),
    "MobileNetV3Small": ("MobileNetV3Small", 96, {}),
    "EfficientNetB0": ("EfficientNetB0", 96, {}),
    "NASNetMobile": ("NASNetMobile", 96, {}),
    "DenseNet121": ("DenseNet121", 64, {}),
    "ResNet50": ("ResNet50", 64, {}),
    "ConvNeXtTiny": ("ConvNeXtTiny", 64, {}),
}


def export_case(name: str, out: Path, side: int | None = None,
                extra: dict[str, Any] | None = None) -> None:
    """TensorFlow process: ``{name}.onnx``, ``{name}.int8.onnx``, ``{name}.json`` and the
    samples in ``{name}.npz``; ``side`` and ``extra`` replace the case's input side and
    constructor arguments."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from edge_infer.export import export_keras
    from edge_infer.export.quantize import QuantizeConfig, quantize

    cls, case_side, case_extra = CASES[name]
    side = side or case_side
    extra = case_extra if extra is None else extra
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, cls)(weights=None, input_shape=(side, side, 3),
                                             classes=10, **extra)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        elif "moving_mean" in weight.path or "beta" in weight.path:
            weight.assign(rng.normal(0.0, 0.2, weight.shape))
    x = np.random.default_rng(0).random((96, side, side, 3), dtype=np.float32) * 255
    started = time.perf_counter()
    logs: list[str] = []
    exported = export_keras(model, out / f"{name}.onnx", samples=x[:32], log=logs.append)
    seconds = time.perf_counter() - started
    labels = np.argmax(np.asarray(model.predict(x[32:], verbose=0)), axis=1)
    np.savez(out / f"{name}.npz", x_train=x[32:], y_train=labels, x_test=x[32:], y_test=labels,
             kind="image")
    quantized = quantize(QuantizeConfig(out / f"{name}.onnx", method="static",
                                        dataset=str(out / f"{name}.npz"), calibration_size=32,
                                        max_accuracy_drop=100, out=out / f"{name}.int8.onnx"))
    graph = next((line for line in logs if line.startswith("graph:")), "")
    (out / f"{name}.json").write_text(json.dumps({
        "parameters": int(model.count_params()), "export_s": round(seconds, 1),
        "parity": exported.parity.max_abs_diff, "top1": exported.parity.top1_agreement,
        "graph": graph, "operators": sum(exported.operators.values()),
        "int8_agreement": quantized.agreement, "int8_size": quantized.report()["size_ratio"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=list(CASES), action="append")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--export", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_case(args.export[0], Path(args.export[1]))
        return

    import onnxruntime as ort

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare import compare

    print(f"onnxruntime {ort.__version__}; {args.runs} alternating runs at batch 1; median per "
          "call; one thread per session; random weights")
    print(f"{'model':17s} {'params':>8s} {'input':>7s} {'export':>7s} {'parity':>8s} "
          f"{'ops':>5s} {'int8 size':>9s} {'int8 top-1':>10s} {'fp32 ms':>8s} {'int8 ms':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or list(CASES):
            done = subprocess.run([sys.executable, __file__, "--export", name, tmp],
                                  capture_output=True, text=True)
            if done.returncode:
                print(f"{name:17s} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            f = json.loads((Path(tmp) / f"{name}.json").read_text())
            fp32, int8, _ = compare(str(Path(tmp) / f"{name}.onnx"),
                                    str(Path(tmp) / f"{name}.int8.onnx"), 1, args.runs)
            side = CASES[name][1]
            print(f"{name:17s} {f['parameters'] / 1e6:7.2f}M {side:>3d}x{side:<3d} "
                  f"{f['export_s']:6.1f}s {f['parity']:8.1e} {f['operators']:5d} "
                  f"{f['int8_size']:9.0%} {f['int8_agreement']:10.1%} {fp32 / 1e3:8.2f} "
                  f"{int8 / 1e3:8.2f}")


if __name__ == "__main__":
    main()
