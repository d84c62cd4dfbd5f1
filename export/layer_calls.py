"""Walking a Keras model's layers, and replacing their ``call`` while tf2onnx traces it.

Two export steps change what a layer computes during tracing only: recurrent layers that ignore
their mask (:mod:`.masking`) and ``TimeDistributed`` layers that call their layer once on batch
x time (:mod:`.time_distributed`). Both set an instance attribute over the class's ``call``
and restore the layer afterwards, whatever happens in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def all_layers(model: Any) -> list[Any]:
    """Every layer once, including those inside wrappers (``Bidirectional``,
    ``TimeDistributed``) and nested models."""
    found: list[Any] = []
    seen: set[int] = set()
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
        stack.extend(child for child in (getattr(layer, "layer", None),
                                         getattr(layer, "forward_layer", None),
                                         getattr(layer, "backward_layer", None)) if child)
    return found


@contextlib.contextmanager
def replaced_calls(layers: list[Any], make_call: Callable[[Any], Any]) -> Iterator[None]:
    """Within the block, each layer's ``call`` is ``make_call(layer)``; the layers are as they
    were afterwards (an instance ``call`` they had is put back)."""
    before = {id(layer): layer.__dict__.get("call") for layer in layers}
    try:
        for layer in layers:
            object.__setattr__(layer, "call", make_call(layer))
        yield
    finally:
        for layer in layers:
            if before[id(layer)] is None:
                layer.__dict__.pop("call", None)
            else:
                object.__setattr__(layer, "call", before[id(layer)])
