"""Keras to ONNX export, parity checks, quantization and evaluation (``edge_infer.export``).

Needs the workstation extra: ``pip install 'edge-infer[train]'``. Nothing here is imported by the
runtime. The metadata it writes follows :mod:`edge_infer.runtime.metadata`.

From Python (TensorFlow is imported by the functions, not by this package)::

    from edge_infer.export import ExportConfig, export, export_keras
    from edge_infer.export.quantize import QuantizeConfig, quantize

    export_keras(model, "model.onnx", samples=x_test[:256], labels=class_names)
    export(ExportConfig("runs/cnn-digits"))
    quantize(QuantizeConfig("model.onnx", method="static", dataset="data.npz"))

``quantize`` stays in its module: re-exported here, the function would hide the module
``edge_infer.export.quantize`` behind the same name.
"""

from .exporter import ExportConfig, ExportResult, export, export_keras

__all__ = ["ExportConfig", "ExportResult", "export", "export_keras"]
