"""Input loaders: turn ``edge-infer run`` arguments into one batched feed.

A registry keyed by file suffix (``.npy``, ``.npz``, ``.json``, ``.csv``, image suffixes,
``.txt``), plus ``-`` for standard input, folders of images, and raw strings for models whose
metadata carries a text vocabulary. Each argument becomes one or more samples; the samples of all
arguments are concatenated into one batch, and every sample keeps a name for the results table.
"""

from __future__ import annotations

from .base import IMAGE_SUFFIXES, LOADERS, Batch, LoadContext, get_loader, load_inputs, register

__all__ = ["IMAGE_SUFFIXES", "LOADERS", "Batch", "LoadContext", "get_loader", "load_inputs",
           "register"]
