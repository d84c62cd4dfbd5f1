"""Keras model zoo, datasets and training (installed as ``edge_infer.train``).

Needs the workstation extra: ``pip install 'edge-infer[train]'``. Nothing here is imported by the
runtime.
"""
