"""Crops and pads whose amounts tf2onnx computes at run time, made constants, and dropped where
they do nothing.

A Keras 3 ``Conv1DTranspose`` reaches tf2onnx as TensorFlow's ``conv2d_transpose`` with an
output shape computed from ``tf.shape`` of its input. ONNX's ``ConvTranspose`` takes no output
shape as a tensor, so tf2onnx crops the result to it with a ``Slice`` and pads it with a
``Pad`` whose starts, ends and pads are computed from ``Shape``s at run time: about thirty
operators of shape arithmetic after every layer. Where that arithmetic does not depend on the
batch (:func:`.shape_values.shape_value`, on onnxruntime's symbolic shapes), its values become
constants; a ``Slice`` that then keeps every element and a ``Pad`` of zeros go.

A Conv1D + Conv1DTranspose(stride 2) + Flatten + Dense model over 40 steps: 46 -> 12 operators
with :mod:`.squeezes`, 2.00x faster at batch 1 and 1.38x at 64 (``python
benchmarks/compare.py`` on exports before and after, one thread).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .names import bypass
from .simplify import _add_initializer, initializers, producers, remove_dead

COMPUTED_INPUTS = {"Slice": {1: "starts", 2: "ends", 3: "axes", 4: "steps"},
                   "Pad": {1: "pads", 2: "constant_value", 3: "axes"}}  # index -> role


def fold_computed_crops(proto: Any) -> int:
    """Make the computed inputs of ``Slice``/``Pad`` constants where they do not depend on the
    batch, then drop the ones that change nothing; returns how many nodes changed."""
    from .shape_values import shape_value, symbolic_shapes

    graph = proto.graph
    inits = initializers(graph)
    pending = [(n, i) for n in graph.node if n.op_type in COMPUTED_INPUTS
               for i in COMPUTED_INPUTS[n.op_type]
               if i < len(n.input) and n.input[i] and n.input[i] not in inits]
    if not pending:
        return 0
    symbolic, producer = symbolic_shapes(proto), producers(graph)
    changed = set()
    for node, i in pending:
        value = shape_value(node.input[i], producer, inits, symbolic)
        if value and all(isinstance(v, int) for v in value):
            role = COMPUTED_INPUTS[node.op_type][i]
            node.input[i] = _add_initializer(graph, f"{node.name}/{role}",
                                             np.array(value, np.int64))
            changed.add(id(node))
    inits = initializers(graph)
    outputs = {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type in COMPUTED_INPUTS and node.output[0] not in outputs \
                and _does_nothing(node, inits, symbolic.get(node.input[0])):
            graph.node.remove(node)
            bypass(graph, node.output[0], node.input[0])
            changed.add(id(node))
    if changed:
        remove_dead(proto)
    return len(changed)


def _constant(node: Any, i: int, inits: dict[str, Any]) -> list[int] | None:
    from onnx import numpy_helper

    if i >= len(node.input) or not node.input[i]:
        return None
    if node.input[i] not in inits:
        raise KeyError(node.input[i])
    return [int(v) for v in numpy_helper.to_array(inits[node.input[i]]).reshape(-1)]


def _does_nothing(node: Any, inits: dict[str, Any], dims: list[Any] | None) -> bool:
    """A ``Pad`` of zeros, or a ``Slice`` that keeps every element of a tensor whose sliced
    dimensions are known."""
    try:
        if node.op_type == "Pad":
            pads = _constant(node, 1, inits)
            return pads is not None and not any(pads)
        starts, ends = _constant(node, 1, inits), _constant(node, 2, inits)
        axes, steps = _constant(node, 3, inits), _constant(node, 4, inits)
    except KeyError:  # an input still computed
        return False
    if starts is None or ends is None or not dims or (steps and any(s != 1 for s in steps)):
        return False
    axes = axes if axes is not None else list(range(len(starts)))
    for start, end, axis in zip(starts, ends, axes):
        size = dims[axis] if -len(dims) <= axis < len(dims) else None
        if not isinstance(size, int) or not (start == 0 or start <= -size) or end < size:
            return False
    return True
