"""The values of shape computations, with every dimension shape inference does not know left
unknown.

tf2onnx builds some reshape targets from the input's shape at run time: Keras 3's einsum layers
(``MultiHeadAttention``, ``EinsumDense``) take ``Shape``, ``Gather`` the dimensions, merge them
with ``ReduceProd`` and broadcast them with ``Max`` before every ``Reshape``. ONNX's shape
inference does not propagate values through ``ReduceProd`` or ``Max``, so it cannot tell that
the result is ``[?, 32, 8]``: known but for one dimension. :func:`shape_value` evaluates such a
subgraph itself, on integers, with ``None`` for what depends on an unknown dimension (the
batch). A target with one unknown entry is what ``Reshape`` computes from ``-1``, since the
others fix it (export/simplify.py ``fold_reshapes``).

On one ``MultiHeadAttention`` block over 32 tokens this folds two of the six computed reshapes
(80 -> 76 operators, 1.02x at batch 1). The other four hold two unknown entries, ``4 * batch``
and a ``-1``, which only an evaluation that knows the unknowns are the same batch could settle
(folding all six by hand gave 84 -> 49 operators and 1.21x at batch 1): left for a symbolic
version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Value = list  # entries: int, or None where unknown

SHAPE_OPS = ("Shape", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast", "Identity",
             "Mul", "Add", "Sub", "Div", "Max", "Min", "ReduceProd", "Constant")
MAX_DEPTH = 24


def _attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                default)


def _constant(name: str, inits: dict[str, Any]) -> Value | None:
    from onnx import numpy_helper

    if name not in inits:
        return None
    array = numpy_helper.to_array(inits[name])
    if array.dtype.kind not in "iu" or array.ndim > 1:
        return None
    return [int(v) for v in array.reshape(-1)]


def _elementwise(op: str, a: Value, b: Value) -> Value | None:
    if len(a) != len(b):
        if len(a) == 1:
            a = a * len(b)
        elif len(b) == 1:
            b = b * len(a)
        else:
            return None
    functions = {"Mul": lambda x, y: x * y, "Add": lambda x, y: x + y,
                 "Sub": lambda x, y: x - y, "Max": max, "Min": min,
                 "Div": lambda x, y: x // y if y and x % y == 0 else None}
    return [None if x is None or y is None else functions[op](x, y) for x, y in zip(a, b)]


def shape_value(name: str, producer: dict[str, Any], inits: dict[str, Any],
                shapes: dict[str, list[int | None]], depth: int = 0) -> Value | None:
    """The integer entries of 1-D tensor ``name``, ``None`` for each entry that depends on a
    dimension ``shapes`` does not know; None when it is not computed from shapes and
    constants alone."""
    known = _constant(name, inits)
    if known is not None or depth > MAX_DEPTH:
        return known
    node = producer.get(name)
    if node is None or node.op_type not in SHAPE_OPS:
        return None
    if node.op_type == "Constant":
        from onnx import numpy_helper

        value = _attribute(node, "value", None)
        array = numpy_helper.to_array(value) if value is not None else None
        return None if array is None or array.dtype.kind not in "iu" \
            else [int(v) for v in array.reshape(-1)]
    if node.op_type == "Shape":
        dims = shapes.get(node.input[0])
        if dims is None:
            return None
        start, end = _attribute(node, "start", 0), _attribute(node, "end", None)
        return list(dims)[start:end]

    def value(i: int) -> Value | None:
        return shape_value(node.input[i], producer, inits, shapes, depth + 1) \
            if len(node.input) > i and node.input[i] else None

    first = value(0)
    if first is None:
        return None
    op = node.op_type
    if op in ("Cast", "Identity", "Unsqueeze", "Squeeze"):
        return first  # on a 0-D or 1-D shape value these only change the rank
    if op == "ReduceProd":
        product: int | None = 1
        for entry in first:
            product = None if product is None or entry is None else product * entry
        return [product]
    if op == "Concat":
        joined = list(first)
        for k in range(1, len(node.input)):
            part = value(k)
            if part is None:
                return None
            joined += part
        return joined
    if op == "Gather":
        indices = value(1)
        if indices is None or any(i is None for i in indices):
            return None
        try:
            return [first[i] for i in indices]
        except IndexError:
            return None
    if op == "Slice":
        starts, ends = value(1), value(2)
        axes, steps = value(3), value(4)
        if starts is None or ends is None or len(starts) != 1 or None in (*starts, *ends) \
                or (axes is not None and axes not in ([0], [-1])) \
                or (steps is not None and steps != [1]):
            return None
        return first[slice(starts[0], min(ends[0], len(first)))]
    other = value(1)
    return None if other is None else _elementwise(op, first, other)


def reshape_target(node: Any, producer: dict[str, Any], inits: dict[str, Any],
                   shapes: dict[str, list[int | None]]) -> np.ndarray | None:
    """A constant target for a ``Reshape`` whose target is computed, when all entries but
    one are known: that one becomes -1. None otherwise."""
    entries = shape_value(node.input[1], producer, inits, shapes)
    if not entries or sum(e is None for e in entries) > 1 or -1 in entries \
            or (_attribute(node, "allowzero", 0) and 0 in entries):
        return None
    return np.array([-1 if e is None else e for e in entries], dtype=np.int64)
