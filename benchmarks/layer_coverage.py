"""Which Keras layers export, and to what: one tiny model per layer, exported by edge-infer,
with the operators it becomes, whether a ``Loop`` (one iteration per time step) is left, and
the parity with Keras.

    python benchmarks/layer_coverage.py [--layer Conv1D --layer SimpleRNN ...]

Each model is the layer between a small input and a ``Dense`` head, with every bias, beta,
moving mean and PReLU alpha set to random values (a fresh Keras layer has zeros there, which
can hide a wrong graph). Parity is checked by the export itself on random inputs (a tolerance
of 1e-4); a layer that fails to export is reported with the reason, not skipped.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _cases() -> dict[str, Callable[[], Any]]:
    """Layer name -> a function building its model (Keras imported by the caller)."""
    import keras

    layers = keras.layers

    def model(shape: tuple[int | None, ...], *body: Any, dtype: str = "float32",
              head: Any = None) -> Any:
        inputs = keras.Input(shape, dtype=dtype, name="x")
        x = inputs
        for layer in body:
            x = layer(x)
        if head is not None:
            x = head(x)
        elif len(x.shape) > 2:
            x = layers.Flatten()(x) if None not in x.shape[1:] else \
                layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, layers.Dense(3)(x))

    def adapted(layer: Any, data: Any) -> Any:
        """A preprocessing layer adapted to ``data`` (a shape: normal values of that shape)."""
        import numpy as np

        layer.adapt(np.random.default_rng(0).normal(2, 3, data).astype("float32")
                    if isinstance(data, tuple) else data)
        return layer

    image, steps = (12, 12, 3), (20, 4)
    return {
        "Dense": lambda: model((6,), layers.Dense(8, activation="relu")),
        "Conv1D": lambda: model(steps, layers.Conv1D(8, 3, activation="relu"),
                                layers.MaxPooling1D()),
        "Conv1DTranspose": lambda: model(steps, layers.Conv1DTranspose(4, 3, strides=2)),
        "SeparableConv1D": lambda: model(steps, layers.SeparableConv1D(4, 3)),
        "UpSampling1D": lambda: model(steps, layers.Conv1D(4, 3), layers.UpSampling1D(),
                                      layers.Conv1D(4, 3)),
        "Conv2D": lambda: model(image, layers.Conv2D(8, 3, activation="relu"),
                                layers.MaxPooling2D()),
        "Conv2DTranspose": lambda: model(image, layers.Conv2DTranspose(4, 3, strides=2)),
        "SeparableConv2D": lambda: model(image, layers.SeparableConv2D(4, 3)),
        "DepthwiseConv2D": lambda: model(image, layers.DepthwiseConv2D(3)),
        "Conv3D": lambda: model((6, 6, 6, 1), layers.Conv3D(2, 3)),
        "BatchNormalization": lambda: model(image, layers.Conv2D(4, 3),
                                            layers.BatchNormalization()),
        "LayerNormalization": lambda: model((10, 8), layers.LayerNormalization()),
        "GroupNormalization": lambda: model(image, layers.Conv2D(4, 3),
                                            layers.GroupNormalization(groups=2)),
        "UnitNormalization": lambda: model((6,), layers.UnitNormalization()),
        "Normalization (adapted)": lambda: model((6,), adapted(layers.Normalization(), (50, 6))),
        "LayerNormalization after Conv2D": lambda: model(image, layers.Conv2D(4, 3),
                                                         layers.LayerNormalization()),
        "Conv2D groups": lambda: model((12, 12, 4), layers.Conv2D(8, 3, groups=2)),
        "AveragePooling2D": lambda: model(image, layers.AveragePooling2D(2)),
        "GlobalMaxPooling2D": lambda: model(image, layers.GlobalMaxPooling2D()),
        "UpSampling2D": lambda: model(image, layers.UpSampling2D()),
        "UpSampling2D bilinear": lambda: model(image, layers.UpSampling2D(
            interpolation="bilinear")),
        "Resizing": lambda: model(image, layers.Resizing(8, 8)),
        "Rescaling": lambda: model(image, layers.Rescaling(1 / 255.0)),
        "ZeroPadding2D": lambda: model(image, layers.ZeroPadding2D(1), layers.Conv2D(2, 3)),
        "Cropping2D": lambda: model(image, layers.Cropping2D(2)),
        "Permute": lambda: model(image, layers.Permute((2, 1, 3))),
        "PReLU": lambda: model(image, layers.Conv2D(4, 3), layers.PReLU(shared_axes=[1, 2])),
        "Dense gelu": lambda: model((6,), layers.Dense(8, activation="gelu")),
        "Embedding": lambda: model((12,), layers.Embedding(30, 8), dtype="int64",
                                   head=layers.GlobalAveragePooling1D()),
        "TextVectorization (string input)": lambda: model(
            (1,), adapted(layers.TextVectorization(max_tokens=20, output_sequence_length=6),
                          ["a b c", "d e f a", "b c d e"]),
            layers.Embedding(20, 4), dtype="string", head=layers.GlobalAveragePooling1D()),
        "SimpleRNN": lambda: model(steps, layers.SimpleRNN(8)),
        "LSTM": lambda: model(steps, layers.LSTM(8)),
        "GRU": lambda: model(steps, layers.GRU(8)),
        "Bidirectional LSTM": lambda: model(steps, layers.Bidirectional(layers.LSTM(8))),
        "LSTM over open steps": lambda: model((None, 4), layers.LSTM(8)),
        "Embedding mask_zero + GRU": lambda: model(
            (12,), layers.Embedding(30, 8, mask_zero=True), layers.GRU(8), dtype="int64"),
        "Masking + LSTM": lambda: model(steps, layers.Masking(), layers.LSTM(8)),
        "TimeDistributed": lambda: model((4, 8, 8, 1), layers.TimeDistributed(
            layers.Conv2D(2, 3)), layers.TimeDistributed(layers.GlobalAveragePooling2D()),
            layers.LSTM(4)),
        "RepeatVector": lambda: model((6,), layers.RepeatVector(5), layers.LSTM(4)),
        "ConvLSTM2D": lambda: model((4, 8, 8, 1), layers.ConvLSTM2D(2, 3)),
        "Attention": lambda: model((10, 4), head=lambda t: layers.GlobalAveragePooling1D()(
            layers.Attention()([t, t]))),
        "MultiHeadAttention": lambda: model((10, 8), head=lambda t: layers.Flatten()(
            layers.MultiHeadAttention(2, 4)(t, t))),
    }


def cover(name: str, build: Callable[[], Any], folder: Path) -> dict[str, Any]:
    """Export one case; its operator counts and parity, or the error."""
    import keras
    import numpy as np
    import onnx

    from edge_infer.export.exporter import ExportConfig, export

    keras.utils.set_random_seed(0)
    try:
        model = build()
        rng = np.random.default_rng(1)
        for weight in model.weights:
            if any(part in weight.path for part in ("bias", "beta", "moving_mean", "alpha")):
                weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.3)
        source = folder / "layer.keras"
        model.save(source)
        result = export(ExportConfig(source, out=folder / "layer.onnx"), log=lambda _m: None)
    except Exception as exc:  # the reason is the finding
        return {"layer": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    ops = collections.Counter(n.op_type for n in onnx.load(str(result.path)).graph.node)
    return {"layer": name, "operators": sum(ops.values()), "loop": "Loop" in ops,
            "max_abs_diff": result.parity.max_abs_diff,
            "kinds": ", ".join(f"{op} {n}" if n > 1 else op for op, n in ops.most_common())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", action="append", help="only these cases (repeatable)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cases = _cases()
    unknown = [name for name in args.layer or [] if name not in cases]
    if unknown:
        parser.error(f"unknown layer {unknown[0]!r}; known: {', '.join(cases)}")
    print("| Keras layer | operators | a Loop left | max \\|diff\\| | ONNX operators |")
    print("|---|---:|---|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.layer or list(cases):
            row = cover(name, cases[name], Path(tmp))
            if "error" in row:
                print(f"| {name} | | | | does not export: {row['error'][:150]} |")
            else:
                print(f"| {name} | {row['operators']} | {'yes' if row['loop'] else 'no'} | "
                      f"{row['max_abs_diff']:.1e} | {row['kinds']} |", flush=True)


if __name__ == "__main__":
    main()
