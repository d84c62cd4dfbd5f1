"""The Python that a Keras model with custom layers needs before it can be loaded.

A ``.keras`` file stores a custom layer (or a subclassed model) by its class name and config,
not its code: loading it without the class fails with Keras' "Could not locate class". The
user names the module or ``.py`` file that defines the classes (``edge-infer export
model.keras --import my_layers.py``); it is imported, and every class it defines is given to
Keras as a custom object, so classes registered with ``@keras.saving.register_keras_serializable``
and plain ones alike resolve.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import SourceError


def _module(name: str) -> ModuleType:
    path = Path(name)
    if path.suffix == ".py":
        if not path.is_file():
            raise SourceError(f"--import {name}: no such file")
        spec = importlib.util.spec_from_file_location(f"edge_infer_custom_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise SourceError(f"--import {name}: Python cannot load it as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
        loader = spec.loader.exec_module
    else:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise SourceError(f"--import {name}: expected an importable module or a .py file "
                              f"({exc})") from None
    try:
        loader(module)
    except Exception as exc:  # the user's code, any error
        sys.modules.pop(spec.name, None)
        raise SourceError(f"--import {name} failed: {type(exc).__name__}: {exc}") from None
    return module


def custom_objects(imports: Sequence[str]) -> dict[str, Any]:
    """Every class the named modules or files define, by name, for ``load_model``."""
    found: dict[str, Any] = {}
    for name in imports:
        module = _module(name)
        found.update({key: value for key, value in vars(module).items()
                      if isinstance(value, type) and value.__module__ == module.__name__})
    return found
