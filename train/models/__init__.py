"""The Keras model zoo, keyed by the name a user types."""

from __future__ import annotations

from . import conv, dense, gan, recurrent  # noqa: F401  (register the architectures)
from .registry import ARCHITECTURES, Architecture, DataSpec, get, register

__all__ = ["ARCHITECTURES", "Architecture", "DataSpec", "get", "register"]
