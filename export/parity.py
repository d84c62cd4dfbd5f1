"""Proof that the ONNX model computes what the Keras model computes, on real samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_infer.runtime.predictions import predicted_classes


@dataclass(frozen=True)
class ParityReport:
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float | None  # classifiers only
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement in (None, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        text = (f"max |diff| {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}) on "
                f"{self.samples} samples")
        if self.top1_agreement is not None:
            text += f", top-1 agreement {self.top1_agreement:.2%}"
        return text


def differences(keras_out: Any, onnx_out: Any) -> np.ndarray:
    """``|a - b|``, zero where both are NaN (the same result: Keras' masked average of an
    all-padding row is 0/0, and so is the exported model's), NaN where only one is."""
    a = np.asarray(keras_out, dtype=np.float64)
    b = np.asarray(onnx_out, dtype=np.float64).reshape(a.shape)
    both = np.isnan(a) & np.isnan(b)
    return np.abs(np.where(both, 0.0, a) - np.where(both, 0.0, b))


def check(keras_out: np.ndarray, onnx_out: np.ndarray, *, tolerance: float,
          classifier: bool) -> ParityReport:
    a = np.asarray(keras_out, dtype=np.float64)
    b = np.asarray(onnx_out, dtype=np.float64).reshape(a.shape)
    diff = differences(a, b)
    agreement = float(np.mean(predicted_classes(a) == predicted_classes(b))) if classifier else None
    return ParityReport(samples=int(len(a)), max_abs_diff=float(diff.max()) if diff.size else 0.0,
                        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
                        top1_agreement=agreement, tolerance=tolerance)


def check_all(keras_outs: list[np.ndarray], onnx_outs: list[np.ndarray], *, tolerance: float,
              classifiers: list[bool]) -> ParityReport:
    """Every output of a model: the largest difference over all of them, the mean over all
    values, and the lowest top-1 agreement among the classifier outputs."""
    reports = [check(k, o, tolerance=tolerance, classifier=c)
               for k, o, c in zip(keras_outs, onnx_outs, classifiers)]
    if len(reports) == 1:
        return reports[0]
    sizes = [np.asarray(k).size for k in keras_outs]
    agreements = [r.top1_agreement for r in reports if r.top1_agreement is not None]
    return ParityReport(
        samples=reports[0].samples, max_abs_diff=max(r.max_abs_diff for r in reports),
        mean_abs_diff=float(sum(r.mean_abs_diff * n for r, n in zip(reports, sizes))
                            / max(sum(sizes), 1)),
        top1_agreement=min(agreements) if agreements else None, tolerance=tolerance)
