"""The training quality bar: figures for every zoo model on the offline datasets.

Prints, per case, the test metric against its goal and the training time (figures, not
pass/fail tests). Needs the [train] extra. Cases:

    cnn on digits            test accuracy >= 0.97 in under a minute
    mlp on xor, moons        accuracy >= 0.95
    regressor on sine        test MSE (printed)
    autoencoder on digits    reconstruction MSE (printed)
    lstm on a generated spam/ham text file, and on waves: accuracy >= 0.95
    gru on waves             accuracy (printed)
    gan on digits            share of generated samples that a digits cnn classifies with
                             confidence >= 0.9 (printed)

    python benchmarks/train_quality.py [--only cnn,gan] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPAM = ("win free prize cash claim now urgent offer winner credit reply stop call txt "
        "guaranteed award bonus").split()
HAM = ("hey see you later lunch tomorrow thanks meeting home love dinner sure call ok "
       "running late talk soon").split()


def write_messages(path: Path, n: int = 1000, seed: int = 0) -> Path:
    """Spam/ham-style messages; both share some words ('call') so it is not trivially separable."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", "text"])
        for i in range(n):
            spam = i % 2 == 1
            words = rng.choices(SPAM if spam else HAM, k=rng.randint(4, 14))
            words += rng.choices(HAM if spam else SPAM, k=rng.randint(0, 2))  # noise
            rng.shuffle(words)
            text = " ".join(words)
            writer.writerow(["spam" if spam else "ham", text.upper() + "!" if spam else text + "."])
    return path


CASES = [
    ("cnn", "digits", "test_accuracy", 0.97),
    ("mlp", "xor", "test_accuracy", 0.95),
    ("mlp", "moons", "test_accuracy", 0.95),
    ("regressor", "sine", "test_mse", None),
    ("autoencoder", "digits", "test_mse", None),
    ("lstm", "TEXT", "test_accuracy", 0.95),
    ("lstm", "waves", "test_accuracy", 0.95),
    ("gru", "waves", "test_accuracy", None),
    ("gan", "digits", "confident_share", None),
]


def gan_confidence(generator_path: Path, classifier_path: Path, n: int = 256, seed: int = 0
                   ) -> dict[str, float]:
    import keras
    import numpy as np

    from edge_infer.train.models.gan import LATENT

    gen = keras.models.load_model(generator_path)
    clf = keras.models.load_model(classifier_path)
    z = np.random.default_rng(seed).normal(size=(n, LATENT)).astype(np.float32)
    probs = np.asarray(clf.predict(np.asarray(gen.predict(z, verbose=0)), verbose=0))
    best = probs.max(axis=1)
    classes = probs.argmax(axis=1)
    return {"confident_share": float(np.mean(best >= 0.9)), "mean_confidence": float(best.mean()),
            "distinct_digits": int(len(np.unique(classes[best >= 0.9])))}


def main() -> None:
    parser = argparse.ArgumentParser(description="edge-infer training quality bar")
    parser.add_argument("--only", default="", help="comma-separated architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    from edge_infer.train.config import TrainConfig
    from edge_infer.train.tf_logging import quiet_tensorflow
    from edge_infer.train.trainer import train

    quiet_tensorflow(load=True)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        text = write_messages(Path(tmp) / "messages.csv", seed=args.seed)
        cnn_path = None
        for arch, dataset, metric, goal in CASES:
            if only and arch not in only and not (arch == "cnn" and "gan" in only):
                continue
            spec = str(text) if dataset == "TEXT" else dataset
            started = time.perf_counter()  # the architecture's default epochs and learning rate
            run = train(TrainConfig(arch, spec, seed=args.seed,
                                    out=Path(tmp) / f"{arch}-{Path(spec).stem}", verbose=0))
            wall = time.perf_counter() - started
            m = dict(run.metrics)
            if arch == "cnn":
                cnn_path = run.path / "model.keras"
            if arch == "gan" and cnn_path is not None:
                m.update(gan_confidence(run.path / "model.keras", cnn_path, seed=args.seed))
            value = m.get(metric)
            results.append({"architecture": arch, "dataset": "messages.csv" if dataset == "TEXT"
                            else dataset, "metric": metric, "value": value, "goal": goal,
                            "met": None if goal is None or value is None else value >= goal,
                            "epochs": m["epochs_run"], "train_seconds": m["train_seconds"],
                            "wall_seconds": round(wall, 1),
                            **({k: m[k] for k in ("mean_confidence", "distinct_digits")
                                if k in m})})
            r = results[-1]
            if not args.json:
                goal_text = f">= {goal}" if goal is not None else "printed"
                verdict = {True: "met", False: "MISSED", None: ""}[r["met"]]
                extra = (f", mean confidence {r['mean_confidence']:.3f}, "
                         f"{r['distinct_digits']} distinct digits") if "mean_confidence" in r else ""
                print(f"{arch:<12} {r['dataset']:<13} {metric} {value:.4f} ({goal_text}) {verdict:<6}"
                      f" {r['epochs']:>3} epochs, {r['train_seconds']:.1f} s training{extra}",
                      flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
