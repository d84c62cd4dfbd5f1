"""The files BENCHMARKS.md's CUDA figures were timed on, made here for a GPU machine that has
no TensorFlow: MobileNetV2 at 224x224 (width 1.0, random weights with batch-norm statistics
made non-trivial, as ``keras_applications.py`` builds it) as float32, fp16 and static INT8
ONNX, and eight input samples (``mnv2_x8.npy``). The digits ``cnn`` comes from
``edge-infer pipeline cnn --out DIR/cnn`` and ``quantize --method fp16``.

    python benchmarks/gpu_files.py DIR        # about 30 s; 16 MB of models

Then, on the GPU machine (``BENCHMARKS.md``, "CUDA graphs")::

    edge-infer bench DIR/mnv2.onnx DIR/mnv2.fp16.onnx -p cuda --io-binding -b 1 -b 8 -b 64 \\
        -O cuda.graph=1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keras_applications import export_case  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    export_case("MobileNetV2", out, side=224, extra={})
    from edge_infer.export.quantize import QuantizeConfig, quantize

    quantize(QuantizeConfig(out / "MobileNetV2.onnx", method="fp16", max_accuracy_drop=100,
                            dataset=str(out / "MobileNetV2.npz"),
                            out=out / "MobileNetV2.fp16.onnx"))
    for name in ("", ".int8", ".fp16"):
        (out / f"MobileNetV2{name}.onnx").rename(out / f"mnv2{name}.onnx")
    with np.load(out / "MobileNetV2.npz") as samples:
        np.save(out / "mnv2_x8.npy", samples["x_test"][:8])
    (out / "MobileNetV2.npz").unlink()
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")


if __name__ == "__main__":
    main()
