"""Walking a Keras model's layers, and replacing their ``call`` while tf2onnx traces it.

Three export steps change how a layer computes during tracing only: recurrent layers that
ignore their mask (:mod:`.masking`), ``TimeDistributed`` layers that call their layer once on
batch x time (:mod:`.time_distributed`), and attention written as matmuls (:mod:`.attention`).
Each sets an instance attribute over a method of the class (``call``, or
``_compute_attention``) and restores the layer afterwards, whatever happens in between.
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
def replaced_calls(layers: list[Any], make_call: Callable[[Any], Any],
                   attribute: str = "call") -> Iterator[None]:
    """Within the block, each layer's method ``attribute`` is ``make_call(layer)``; the layers
    are as they were afterwards (an instance attribute they had is put back)."""
    before = {id(layer): layer.__dict__.get(attribute) for layer in layers}
    try:
        for layer in layers:
            object.__setattr__(layer, attribute, make_call(layer))
        yield
    finally:
        for layer in layers:
            if before[id(layer)] is None:
                layer.__dict__.pop(attribute, None)
            else:
                object.__setattr__(layer, attribute, before[id(layer)])
