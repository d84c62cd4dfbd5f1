"""Per-channel against per-tensor weight scales for dynamic INT8, on trained ``lstm`` models.

Why the dynamic recipe defaults to per-tensor scales (``export/quantize.py``, PER_CHANNEL):
trains the zoo's ``lstm`` on the embedded ``waves`` sequences and on a generated text set (label,
text rows with a few telling words among filler), for several seeds; exports each; quantizes it
both ways for each device profile; prints accuracy, top-1 agreement with float32, file size and
batch-1 speed relative to float32 (the quantize command's own figures), and a tally.

    python benchmarks/weight_scales.py [--seeds 4] [--devices x86-vnni,x86-avx2] [--quick]

About 5 minutes with the defaults (two cores). Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import load_tensorflow  # noqa: E402

POSITIVE = "good great excellent love wonderful fine happy nice superb enjoy".split()
NEGATIVE = "bad awful terrible hate poor sad boring worst ugly dull".split()
FILLER = "the a movie film story plot actor was is it this and very really quite".split()


def write_text_set(path: Path, rows: int = 1200, seed: int = 1) -> Path:
    """``label,text`` rows: filler words with one to three telling words, and a contrary word
    in one row of ten, so that the task is not trivially perfect."""
    rng = random.Random(seed)
    lines = ["label,text"]
    for _ in range(rows):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 15))]
        telling, contrary = (POSITIVE, NEGATIVE) if label == "pos" else (NEGATIVE, POSITIVE)
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(telling))
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words) + 1), rng.choice(contrary))
        lines.append(f"{label},{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def one_model(dataset: str, seed: int, root: Path, devices: list[str],
              epochs: int | None) -> list[dict[str, Any]]:
    from edge_infer.export.exporter import ExportConfig, export
    from edge_infer.export.quantize import QuantizeConfig, quantize
    from edge_infer.train.config import TrainConfig
    from edge_infer.train.trainer import train

    name = Path(dataset).stem
    run = train(TrainConfig("lstm", dataset, epochs=epochs, seed=seed,
                            out=root / f"{name}-{seed}", verbose=0)).path
    model = export(ExportConfig(run)).path
    rows = []
    for device in devices:
        row: dict[str, Any] = {"dataset": name, "seed": seed, "device": device}
        for per_channel in (True, False):
            out = run / f"{device}-{'channel' if per_channel else 'tensor'}.onnx"
            report = quantize(QuantizeConfig(model, method="dynamic", device=device,
                                             per_channel=per_channel, out=out,
                                             max_accuracy_drop=100)).report()
            row["channel" if per_channel else "tensor"] = {
                "accuracy": report["quantized"]["value"],
                "agreement": report["top1_agreement"], "size": report["size_ratio"],
                "speed": report["speedup"]}
        row["float32"] = report["original"]["value"]
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--devices", default="x86-vnni,x86-avx2")
    parser.add_argument("--quick", action="store_true",
                        help="one seed, waves only, one epoch, x86-vnni: checks it works")
    args = parser.parse_args()
    started = time.perf_counter()
    load_tensorflow()
    devices = ["x86-vnni"] if args.quick else args.devices.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        datasets = ["waves"] if args.quick else ["waves", str(write_text_set(root / "text.csv"))]
        rows = []
        for seed in range(1, 2 if args.quick else args.seeds + 1):
            for dataset in datasets:
                rows += one_model(dataset, seed, root, devices, 1 if args.quick else None)

    print(f"\n{'dataset':<8}{'seed':>5}  {'device':<9}{'float32':>8}   "
          f"{'per-channel: acc  agree  size  speed':<38}{'per-tensor: acc  agree  size  speed'}")
    for r in rows:
        cells = "   ".join(f"{r[k]['accuracy']:.4f} {r[k]['agreement']:7.2%} "
                           f"{r[k]['size']:5.1%} {r[k]['speed']:5.2f}x"
                           for k in ("channel", "tensor"))
        print(f"{r['dataset']:<8}{r['seed']:>5}  {r['device']:<9}{r['float32']:>8.4f}"
              f"   {cells}")
    ties = sum(r["tensor"]["agreement"] == r["channel"]["agreement"] for r in rows)
    better = sum(r["tensor"]["agreement"] > r["channel"]["agreement"] for r in rows)
    smaller = sum(r["tensor"]["size"] < r["channel"]["size"] for r in rows)
    print(f"\nper-tensor against per-channel over {len(rows)} quantizations: top-1 agreement "
          f"higher {better}, equal {ties}, lower {len(rows) - better - ties}; file smaller "
          f"{smaller}")
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
