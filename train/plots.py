"""Training plots: curves, confusion matrix, sample grids. Matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge_infer.runtime.atomic import atomic_open
from edge_infer.runtime.figures import figure_format


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 100) -> None:
    """Write the figure whole or not at all (``evaluate --plot`` takes any path)."""
    import matplotlib.pyplot as plt

    try:
        fmt = figure_format(path)
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)


def training_curves(history: Mapping[str, Sequence[float]], path: Path, title: str) -> None:
    """Loss and each metric per epoch, train against validation."""
    plt = _pyplot()
    metrics = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return matrix


def confusion_plot(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    plt = _pyplot()
    n = len(labels)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    high = matrix.max() / 2 if matrix.size else 0
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if matrix[i, j] > high else "black", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def image_grid(images: np.ndarray, path: Path, title: str, columns: int = 8) -> None:
    """Images in [0, 1], ``[N, H, W, C]``, tiled into one figure."""
    plt = _pyplot()
    n = len(images)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.1 + 0.4),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), images):
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
