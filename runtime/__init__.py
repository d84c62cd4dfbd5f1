"""edge-infer's runtime: run any ONNX model with onnxruntime, numpy and click only.

``Model`` is imported lazily so that ``import edge_infer.runtime`` (and ``edge-infer info``)
does not load onnxruntime until a session is needed.
"""

from __future__ import annotations

from typing import Any

from .errors import (EdgeInferError, InputError, ModelFileError, ModelRunError,
                     OlderRuntimeWarning, ProviderFallbackWarning, ProviderUnavailableError,
                     UsageError)
from .metadata import ImagePreprocess, ModelMetadata, OutputSpec, TextPreprocess

__all__ = [
    "Model", "SessionConfig", "Prediction", "Signature", "TensorSpec",
    "ModelMetadata", "ImagePreprocess", "TextPreprocess", "OutputSpec",
    "EdgeInferError", "UsageError", "InputError", "ModelFileError", "ModelRunError",
    "ProviderUnavailableError", "ProviderFallbackWarning", "OlderRuntimeWarning",
]

_LAZY = {
    "Model": "model", "SessionConfig": "model", "Prediction": "predictions",
    "Signature": "signature", "TensorSpec": "signature",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
