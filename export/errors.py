"""Export errors, in the runtime's families (exit 2 for bad input, 1 for failures)."""

from __future__ import annotations

from edge_infer.runtime.errors import EdgeInferError, UsageError


class SourceError(UsageError):
    """The thing to export is missing or is not a Keras model or run folder."""


class ParityError(EdgeInferError):
    """ONNX and Keras disagree beyond the tolerance; nothing was written."""


class ConversionError(EdgeInferError):
    """tf2onnx or the ONNX checker rejected the model."""
