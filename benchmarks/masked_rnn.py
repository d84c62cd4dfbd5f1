"""Masked recurrent layers: tf2onnx's ``Loop`` against the fused operator with sequence lengths
that ``edge-infer export`` writes (export/masking.py), on the same weights.

A text classifier (40 tokens, vocabulary 500, ``Embedding(mask_zero=True)`` 32, LSTM or GRU 32,
softmax over 4) is exported twice in a child process that imports TensorFlow: once with the
exporter's optimisation and simplifications but without the masking pass (tf2onnx's loop), once
by ``export()``. Both files are timed here, in a process that never imports TensorFlow, with
calls alternating, on rows of 5 to 40 tokens padded after (what the runtime's tokenizer
writes), and their outputs compared.

    python benchmarks/masked_rnn.py [--runs 2000] [--batch 1 --batch 64] [--cell LSTM --cell GRU]

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
LENGTH, VOCABULARY = 40, 500


def export_both(cell: str, out: Path) -> None:
    """TensorFlow process: write ``{cell}.loop.onnx`` and ``{cell}.fused.onnx`` in ``out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import onnx

    from edge_infer.export.exporter import ExportConfig, _convert, _name, export

    keras.utils.set_random_seed(0)
    tokens = keras.Input((LENGTH,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(VOCABULARY, 32, mask_zero=True)(tokens)
    x = getattr(keras.layers, cell)(32)(x)
    model = keras.Model(tokens, keras.layers.Dense(4, activation="softmax", name="label")(x))
    model.save(out / f"{cell}.keras")
    export(ExportConfig(out / f"{cell}.keras", out=out / f"{cell}.fused.onnx"))
    loop = _convert(model, ExportConfig(out / f"{cell}.keras"))
    _name(loop, model)
    onnx.save(loop, out / f"{cell}.loop.onnx")


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
    parser.add_argument("--cell", choices=("LSTM", "GRU"), action="append")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--export", nargs=2, metavar=("CELL", "DIR"), help=argparse.SUPPRESS)
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
          f"rows of 5-{LENGTH} tokens padded after")
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cell or ["LSTM", "GRU"]:
            subprocess.run([sys.executable, __file__, "--export", cell, tmp], check=True)
            loop, fused = (str(Path(tmp) / f"{cell}.{kind}.onnx") for kind in ("loop", "fused"))
            ops = [len(onnx.load(path).graph.node) for path in (loop, fused)]
            print(f"{cell}: loop {ops[0]} operators, fused {ops[1]}")
            for batch in args.batch or [1, 64]:
                a, b, diff = compare(loop, fused, batch, args.runs,
                                     feed={"tokens": padded_rows(batch)})
                print(f"  batch {batch}: loop {a:.1f} us, fused {b:.1f} us ({a / b:.2f}x), "
                      f"largest output difference {diff:.2g}")


if __name__ == "__main__":
    main()
