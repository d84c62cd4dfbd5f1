"""What the export's rewrites of Keras layers give, each against the graph without it, on the
same weights:

- ``LSTM``, ``GRU``, ``SimpleRNN``: a masked recurrent layer as tf2onnx's ``Loop`` against the
  fused operator with sequence lengths (export/masking.py; ``SimpleRNN`` becomes ONNX's ``RNN``
  through export/simple_rnn.py). A text classifier: 40 tokens, vocabulary 500,
  ``Embedding(mask_zero=True)`` 32, LSTM, GRU or SimpleRNN 32, softmax over 4; timed on rows of
  5 to 40 tokens padded after (what the runtime's tokenizer writes).
- ``frames``: ``TimeDistributed`` layers unrolled into one call per step against one call on
  batch x time (export/time_distributed.py). A frame classifier: 16 frames of 12x12,
  ``TimeDistributed(Conv2D(8, 3))``, ``TimeDistributed(GlobalAveragePooling2D())``, LSTM 16,
  softmax over 3; timed on uniform random frames.
- ``attention``: ``MultiHeadAttention`` as Keras' einsums against transposes and matmuls on
  ``[batch, heads, steps, size]`` (export/attention.py). A masked text classifier over the same
  tokens: ``Embedding(mask_zero=True)`` 32, ``MultiHeadAttention(4, 8)`` over itself with a
  residual ``Add`` and ``LayerNormalization``, ``GlobalAveragePooling1D``, softmax over 4.

Each model is exported twice in a child process that imports TensorFlow: by ``export()``, and
with the same optimisation and simplifications but without that rewrite. Both files are timed
here, in a process that never imports TensorFlow, with calls alternating, one thread per
session (see compare.py), and their outputs compared.

    python benchmarks/keras_rewrites.py [--runs 2000] [--batch 1 --batch 64] [--case LSTM ...]

``--accuracy`` instead trains the zoo's text LSTM (embedding 64, LSTM 64) with and without the
mask on 3,000 made-up rows of 3-40 words, padded after, whose class is set by one of the first
four words, and prints the test accuracy per epoch (why the zoo's text models mask: the padding
after a short row is what an unmasked LSTM reads last).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LENGTH, VOCABULARY, FRAMES = 40, 500, (16, 12, 12, 1)
CASES = ("LSTM", "GRU", "SimpleRNN", "frames", "attention")


def export_both(case: str, out: Path) -> None:
    """TensorFlow process: write ``{case}.before.onnx`` (without the rewrite) and
    ``{case}.after.onnx`` (``export()``) in ``out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import onnx

    from edge_infer.export.exporter import ExportConfig, _convert, _name, export

    layers = keras.layers
    keras.utils.set_random_seed(0)
    if case == "frames":
        inputs = keras.Input(FRAMES, name="frames")
        x = layers.TimeDistributed(layers.Conv2D(8, 3, activation="relu"))(inputs)
        x = layers.LSTM(16)(layers.TimeDistributed(layers.GlobalAveragePooling2D())(x))
        classes = 3
    elif case == "attention":
        inputs = keras.Input((LENGTH,), dtype="int64", name="tokens")
        x = layers.Embedding(VOCABULARY, 32, mask_zero=True)(inputs)
        x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(4, 8)(x, x)]))
        x = layers.GlobalAveragePooling1D()(x)
        classes = 4
    else:
        inputs = keras.Input((LENGTH,), dtype="int64", name="tokens")
        x = layers.Embedding(VOCABULARY, 32, mask_zero=True)(inputs)
        x = getattr(layers, case)(32)(x)
        classes = 4
    model = keras.Model(inputs, layers.Dense(classes, activation="softmax", name="label")(x))
    model.save(out / f"{case}.keras")
    export(ExportConfig(out / f"{case}.keras", out=out / f"{case}.after.onnx"))
    before = _convert(model, ExportConfig(out / f"{case}.keras"),
                      rewrite_layers=case not in ("frames", "attention"))
    _name(before, model)
    onnx.save(before, out / f"{case}.before.onnx")


def accuracy(out: Path, epochs: int = 15) -> None:
    """TensorFlow process: the zoo's text LSTM trained with and without the mask."""
    import csv
    import random

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edge_infer.train.datasets import load_dataset

    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    with open(out / "texts.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        for i in range(3000):
            row = rng.choices(words[10:], k=rng.randint(3, 40))
            if i % 2:  # the class: one of ten signal words among the first four
                row[rng.randint(0, min(3, len(row) - 1))] = rng.choice(words[:10])
            writer.writerow(["signal" if i % 2 else "noise", " ".join(row)])
    data = load_dataset(str(out / "texts.csv"), seed=0)
    print(f"{len(data.x_train)} training rows of {data.x_train.shape[1]} tokens, "
          f"{len(data.x_test)} test rows; test accuracy after each epoch:")
    for mask in (False, True):
        keras.utils.set_random_seed(0)
        tokens = keras.Input(data.x_train.shape[1:], dtype="int64")
        x = keras.layers.Embedding(int(data.x_train.max()) + 1, 64, mask_zero=mask)(tokens)
        x = keras.layers.LSTM(64)(x)
        model = keras.Model(tokens, keras.layers.Dense(2, activation="softmax")(x))
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0,
                            validation_data=(data.x_test, data.y_test)).history
        print(f"  {'masked' if mask else 'unmasked':8s} "
              + " ".join(f"{a:.3f}" for a in history["val_accuracy"]))


def padded_rows(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, VOCABULARY, (batch, LENGTH)).astype(np.int64)
    for row, kept in zip(rows, rng.integers(5, LENGTH + 1, batch)):
        row[kept:] = 0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--case", choices=CASES, action="append")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--export", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_both(args.export[0], Path(args.export[1]))
        return
    if args.accuracy:
        with tempfile.TemporaryDirectory() as tmp:
            accuracy(Path(tmp))
        return

    import onnx
    import onnxruntime as ort

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compare import compare

    print(f"onnxruntime {ort.__version__}; {args.runs} alternating runs; median per call; "
          "one thread per session")
    names = {"frames": ("unrolled", "folded"), "attention": ("einsums", "matmuls")}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.case or list(CASES):
            subprocess.run([sys.executable, __file__, "--export", case, tmp], check=True)
            before, after = (str(Path(tmp) / f"{case}.{kind}.onnx") for kind in ("before", "after"))
            was, now = names.get(case, ("loop", "fused"))
            ops = [len(onnx.load(path).graph.node) for path in (before, after)]
            print(f"{case}: {was} {ops[0]} operators, {now} {ops[1]}")
            for batch in args.batch or [1, 64]:
                feed = ({"frames": np.random.default_rng(0).random((batch, *FRAMES),
                                                                   dtype=np.float32)}
                        if case == "frames" else {"tokens": padded_rows(batch)})
                a, b, diff = compare(before, after, batch, args.runs, feed=feed)
                print(f"  batch {batch}: {was} {a:.1f} us, {now} {b:.1f} us ({a / b:.2f}x), "
                      f"largest output difference {diff:.2g}")


if __name__ == "__main__":
    main()
