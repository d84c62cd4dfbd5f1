"""Datasets that need no download: scikit-learn's digits and small generated sets."""

from __future__ import annotations

import numpy as np

from .base import Dataset, class_labels, image_preprocess, register, split


@register("digits", "scikit-learn's bundled handwritten digits: 1,797 8x8 images, 10 classes "
                    "(the default for image models)")
def digits(seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits

    data = load_digits()
    # Values are 0..16 ink; as 0..255 pixels that is v * 255 / 16, and the model sees p / 255.
    x = (data.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = data.target.astype(np.int64)
    return Dataset("digits", "image", "classification", *split(x, y, seed),
                   labels=class_labels(y), preprocess=image_preprocess(x),
                   description="8x8 grey digits, bright ink on a dark background")


@register("xor", "generated: 2-D points labelled by the sign of x*y (binary)")
def xor(seed: int = 0, n: int = 1200) -> Dataset:
    rng = np.random.default_rng(seed + 101)
    x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return Dataset("xor", "tabular", "classification", *split(x, y, seed),
                   labels=("different sign", "same sign"))


@register("moons", "generated: scikit-learn's two interleaving half circles (binary)")
def moons(seed: int = 0, n: int = 1200) -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.15, random_state=seed + 202)
    return Dataset("moons", "tabular", "classification",
                   *split(x.astype(np.float32), y.astype(np.int64), seed),
                   labels=("upper", "lower"))


@register("sine", "generated: y = sin(x) + noise on [-pi, pi] (regression)")
def sine(seed: int = 0, n: int = 1200) -> Dataset:
    rng = np.random.default_rng(seed + 303)
    x = rng.uniform(-np.pi, np.pi, size=(n, 1)).astype(np.float32)
    y = (np.sin(x) + rng.normal(0, 0.05, size=x.shape)).astype(np.float32)
    return Dataset("sine", "tabular", "regression", *split(x, y, seed, stratify=False))


WAVES = ("sine", "square", "sawtooth", "triangle")


@register("waves", "generated: 50-step noisy sine/square/sawtooth/triangle waves (sequences)")
def waves(seed: int = 0, n: int = 1200, steps: int = 50) -> Dataset:
    rng = np.random.default_rng(seed + 404)
    y = rng.integers(0, len(WAVES), size=n).astype(np.int64)
    t = np.linspace(0, 1, steps, dtype=np.float64)[np.newaxis, :]
    cycles = rng.uniform(1.5, 4.0, size=(n, 1))
    phase = rng.uniform(0, 1, size=(n, 1))
    # Sine and triangle differ by at most ~0.21 x amplitude; amplitude >= 0.8 with noise 0.1
    # keeps the four shapes separable (noise 0.15 at amplitude 0.5 made them a coin toss).
    amp = rng.uniform(0.8, 1.5, size=(n, 1))
    u = (t * cycles + phase) % 1.0  # position within the cycle, 0..1
    shapes = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0), 2 * u - 1,
                       1 - 4 * np.abs(u - 0.5)])  # [4, n, steps]
    x = shapes[y, np.arange(n)] * amp + rng.normal(0, 0.1, size=(n, steps))
    x = x[..., np.newaxis].astype(np.float32)  # [n, steps, 1 feature]
    return Dataset("waves", "sequence", "classification", *split(x, y, seed), labels=WAVES)
