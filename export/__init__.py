"""Keras to ONNX export, parity checks, quantization and evaluation (``edge_infer.export``).

Needs the workstation extra: ``pip install 'edge-infer[train]'``. Nothing here is imported by the
runtime. The metadata it writes follows :mod:`edge_infer.runtime.metadata`.
"""
