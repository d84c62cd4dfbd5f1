"""``evaluate``: any ONNX model (ours, quantized, or foreign with --dataset) over a dataset,
through the runtime itself, so the figures are what a deployment gets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .quantize import load_data
from .samples import count, rows


def classification_report(y: np.ndarray, predicted: np.ndarray, labels: list[str]
                          ) -> dict[str, Any]:
    from edge_infer.train.plots import confusion_matrix

    matrix = confusion_matrix(y, predicted, len(labels))
    per_class = []
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        predicted_i, actual_i = int(matrix[:, i].sum()), int(matrix[i].sum())
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / actual_i if actual_i else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"label": label, "precision": precision, "recall": recall, "f1": f1,
                          "support": actual_i})
    return {"accuracy": float(np.trace(matrix) / max(1, matrix.sum())), "per_class": per_class,
            "confusion_matrix": matrix.tolist()}


def evaluate(model_path: Path, dataset: str | None = None, batch_size: int = 256,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from edge_infer.runtime import Model

    log = log or (lambda _m: None)
    model = Model(model_path, providers=["cpu"])
    _, x, y, task = load_data(Path(model_path), dataset, 1, log)
    task = task or model.metadata.task
    model.run(rows(x, 0, 1))  # warm up: first-call initialisation is not throughput
    start = time.perf_counter()
    out = model.run(x, batch_size=batch_size)[model.signature.output_names[0]]
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {"model": str(model_path), "task": task, "samples": count(x),
                              "throughput_per_s": float(count(x) / elapsed),
                              "batch_size": batch_size}
    if task == "classification" and y is not None:
        from edge_infer.runtime.predictions import predicted_classes

        predicted = predicted_classes(out)
        width = out.reshape(len(out), -1).shape[1]
        labels = list(model.metadata.labels or
                      [str(i) for i in range(max(width, 2, int(y.max()) + 1))])
        result.update(classification_report(y.reshape(-1), predicted, labels))
    elif task in ("regression", "reconstruction") and y is not None:
        err = out.reshape(len(out), -1).astype(np.float64) - y.reshape(len(y), -1)
        result.update({"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))})
    return result


def confusion_lines(labels: list[str], matrix: list[list[int]], max_label: int = 8) -> list[str]:
    """The confusion matrix with the class labels on both axes. Column headers are cut to
    ``max_label`` characters so that long names (CIFAR's ``automobile``) keep the table
    narrow; the row labels are whole."""
    width = max(*(min(len(label), max_label) for label in labels),
                *(len(str(v)) for row in matrix for v in row))
    row_width = max(len(label) for label in labels)
    header = " " * row_width + "  " + " ".join(label[:width].rjust(width) for label in labels)
    return [header] + [label.ljust(row_width) + "  " + " ".join(f"{v:>{width}d}" for v in row)
                       for label, row in zip(labels, matrix)]


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['model']}: {result['samples']} samples, "
             f"{result['throughput_per_s']:,.0f} samples/s (batch {result['batch_size']})"]
    if "accuracy" in result:
        lines.append(f"accuracy {result['accuracy']:.4f}")
        width = max(len("class"), *(len(c["label"]) for c in result["per_class"]))
        lines.append(f"{'class'.ljust(width)}  precision  recall  f1      support")
        for c in result["per_class"]:
            lines.append(f"{c['label'].ljust(width)}  {c['precision']:.4f}     "
                         f"{c['recall']:.4f}  {c['f1']:.4f}  {c['support']}")
        lines.append("confusion matrix (rows: true, columns: predicted):")
        lines += confusion_lines([c["label"] for c in result["per_class"]],
                                 result["confusion_matrix"])
    for key in ("mse", "mae"):
        if key in result:
            lines.append(f"{key} {result[key]:.6f}")
    return "\n".join(lines)
