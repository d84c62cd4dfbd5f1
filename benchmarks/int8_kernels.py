"""The onnxruntime CPU kernels behind the static INT8 recipe's choices, one node at a time.

1. A 3x3 convolution (+ Relu + 2x2 max pool) to 32 channels, float32 against its QDQ U8S8
   per-channel quantization (onnxruntime's own quantizer, calibrated on the same inputs), by
   input channels, at batch 1 and 64: ``QLinearConv`` loops over the images of a batch, and
   with few input channels each image's GEMM is too small to pay for it. This is why
   ``export/qdq.py`` keeps convolutions reading at most 4 channels in float32.
2. A ``Transpose`` NCHW -> NHWC (what onnxruntime puts between such a float32 convolution and
   the next, NHWC, ``QLinearConv``), uint8 and float32, on 1 and 2 intra-op threads.

Each model gets a bare ``InferenceSession`` (no edge-infer code in the path); medians in us.

    python benchmarks/int8_kernels.py [--runs 2000] [--sides 8 32] [--channels 1 3 4 8 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms  # noqa: E402

OUT_CHANNELS = 32


def conv_model(channels: int, side: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.3, (OUT_CHANNELS, channels, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, (OUT_CHANNELS,)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                              name="pool")]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N", OUT_CHANNELS, side // 2, side // 2])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")])
    return _model(graph)


def transpose_model(shape: list[int], uint8: bool) -> Any:
    from onnx import TensorProto, helper

    kind = TensorProto.UINT8 if uint8 else TensorProto.FLOAT
    node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])
    graph = helper.make_graph(
        [node], "transpose", [helper.make_tensor_value_info("x", kind, shape)],
        [helper.make_tensor_value_info("y", kind, [shape[0], shape[2], shape[3], shape[1]])])
    return _model(graph)


def _model(graph: Any) -> Any:
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def quantized(model: Any, x: np.ndarray, folder: Path) -> bytes:
    """``model`` quantized to QDQ U8S8 per channel by onnxruntime's quantizer on ``x``."""
    import onnx
    from onnxruntime import quantization as q

    src, dst = folder / "float.onnx", folder / "int8.onnx"
    onnx.save(model, str(src))

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": x[i:i + 16]} for i in range(0, len(x), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, activation_type=q.QuantType.QUInt8,
                      weight_type=q.QuantType.QInt8)
    return dst.read_bytes()


def session(model: Any, threads: int | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def us(sess: Any, x: np.ndarray, runs: int) -> float:
    feed = {"x": x}
    return median_ms(lambda: sess.run(None, feed), runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--sides", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 3, 4, 8, 32])
    args = parser.parse_args()
    import logging
    import tempfile

    import onnxruntime as ort

    from edge_infer.runtime.bench import machine

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores; onnxruntime {ort.__version__}; median us; "
          f"onnxruntime's default threads unless said")
    print(f"\n1. 3x3 conv + relu + pool to {OUT_CHANNELS} channels: float32 -> QDQ INT8 "
          "(ratio > 1: INT8 slower)")
    print(f"{'in channels':>11} {'side':>4}  {'batch 1':>24}  {'batch 64':>26}")
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            for channels in args.channels:
                x = np.random.default_rng(1).random((64, channels, side, side),
                                                    dtype=np.float32)
                model = conv_model(channels, side)
                f32, i8 = session(model), session(quantized(model, x, Path(tmp)))
                cells = []
                for batch in (1, 64):
                    xb = np.ascontiguousarray(x[:batch])
                    runs = args.runs if batch == 1 else max(20, args.runs // 8)
                    a, b = us(f32, xb, runs), us(i8, xb, runs)
                    cells.append(f"{a:8.1f} -> {b:8.1f} ({b / a:4.2f}x)")
                print(f"{channels:>11} {side:>4}  {cells[0]:>24}  {cells[1]:>26}")
    print("\n2. Transpose NCHW -> NHWC, 1 thread -> 2 threads")
    for shape in ([64, 32, 4, 4], [64, 32, 8, 8], [1, 32, 4, 4]):
        for uint8 in (True, False):
            model = transpose_model(shape, uint8)
            x = (np.random.default_rng(0).random(shape) * 200).astype(
                np.uint8 if uint8 else np.float32)
            one, two = (us(session(model, t), x, args.runs) for t in (1, 2))
            print(f"  {str(shape):16s} {'uint8' if uint8 else 'float32':7s} "
                  f"{one:7.1f} -> {two:7.1f}")


if __name__ == "__main__":
    main()
