"""One-dimensional layers kept in the 4D layout tf2onnx computes them in.

tf2onnx writes a Keras ``Conv1D`` or ``MaxPooling1D`` the way TensorFlow runs it: the 3D
tensor gets a unit axis (``Unsqueeze``), the 2D operator runs with a ``1 x k`` kernel, and the
unit axis goes again (``Squeeze``) before the activation, to come back before the next layer.
Each ``Squeeze``/``Unsqueeze`` pair costs two operator calls, and the ``Squeeze`` between a
``Conv`` and its ``Relu`` keeps onnxruntime from fusing them. :func:`keep_unit_axes` moves each
such ``Squeeze`` after the elementwise operators that follow it (they compute the same values
with the unit axis in place) until it meets:

- an ``Unsqueeze`` of the same axis: both go;
- a ``Reshape`` to a constant target (a ``Flatten``): it reads the 4D tensor, and the
  ``Squeeze`` goes;
- a global pooling (Keras' ``GlobalAveragePooling1D`` ends as ``GlobalAveragePool`` then a
  ``Squeeze``): the pooling runs on the 4D tensor and one ``Squeeze`` drops every spatial axis.

Before a ``ConvTranspose`` (a ``Conv1DTranspose``) tf2onnx adds the axis at the wrong place and
moves it with a ``Transpose``; that pair becomes one ``Unsqueeze`` first, so it can cancel too.
A ``Resize`` by constant scales (an ``UpSampling1D``) is passed with a scale of 1 for the unit
axis: Conv1D, UpSampling1D, Conv1D then reads 17 -> 15 operators, and onnxruntime cancels the
transposes left around the resize (1.31x faster at batch 1, 1.37x at 64, one thread).

A ``Transpose`` is passed too (the unit axis then sits at position 1). A ``Squeeze`` whose
moves lead nowhere it can go stays where it is.

Measured with ``benchmarks/compare.py`` on exports before and after (trained-like non-zero
biases, 40 steps of 4 features, AVX2, one thread): Conv1D(8), MaxPooling1D, Conv1D(8),
GlobalAveragePooling1D, Dense: 16 -> 13 operators, 1.27x faster at batch 1 and 1.56x at 64;
Conv1D, MaxPooling1D, Flatten, Dense: 13 -> 10, 1.27x and 1.43x; Conv1D, MaxPooling1D,
LSTM(8): 14 -> 12, 1.13x and 1.10x.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .names import bypass, rename_tensors
from .simplify import (Shapes, _add_initializer, attribute, consumers, initializers,
                       producers, remove_dead)

# operators that compute each element from that element alone (and constants that broadcast)
ELEMENTWISE = frozenset({
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Softplus", "Softsign", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor",
    "Ceil", "Round", "Sign", "Identity", "Clip", "Cast", "Gelu", "Mish",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"})
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")


def _axes(node: Any, inits: dict[str, Any], rank: int | None) -> list[int] | None:
    """A ``Squeeze``/``Unsqueeze``'s constant axes, made non-negative for a tensor of ``rank``
    (the input's for ``Squeeze``, the output's for ``Unsqueeze``); None when unknown."""
    from onnx import numpy_helper

    if len(node.input) < 2 or node.input[1] not in inits or rank is None:
        return None
    axes = numpy_helper.to_array(inits[node.input[1]]).reshape(-1).tolist()
    return sorted(int(a) % rank for a in axes)


def _elementwise_on(node: Any, tensor: str, inits: dict[str, Any], rank: int) -> bool:
    """Whether ``node`` is elementwise in ``tensor`` (of ``rank`` before the squeeze) and
    constants that broadcast against it (a bias of shape ``[C, 1]``, a scalar, ``Clip``'s
    bounds)."""
    if node.op_type not in ELEMENTWISE or len(node.output) != 1 \
            or list(node.input).count(tensor) != 1:
        return False
    return all(name in inits and len(inits[name].dims) < rank
               for name in node.input if name and name != tensor)


def _unit_axis_in_constants(graph: Any, node: Any, tensor: str, axis: int, rank: int,
                            inits: dict[str, Any]) -> None:
    """Give ``node``'s constant operands the unit ``axis`` too, so that they broadcast against
    the full tensor as they did against the squeezed one (numpy aligns trailing axes)."""
    from onnx import numpy_helper

    for k, name in enumerate(node.input):
        value = numpy_helper.to_array(inits[name]) if name and name != tensor else None
        if value is not None and value.size > 1:
            full = value.reshape((1,) * (rank - 1 - value.ndim) + value.shape)
            node.input[k] = _add_initializer(graph, f"{name}/unit_axis",
                                             np.expand_dims(full, axis))


def keep_unit_axes(proto: Any, shapes: Shapes) -> int:
    """Move ``Squeeze`` nodes of one unit axis past elementwise operators, transposes and
    resizes to where they go: an ``Unsqueeze`` of that axis, a constant-target ``Reshape`` or a
    global pooling; returns how many ``Squeeze`` nodes went, and ``Transpose`` nodes that only
    placed an ``Unsqueeze``'s axis. The graph is left as it was when none goes (moves alone
    gain nothing)."""
    work = type(proto)()
    work.CopyFrom(proto)
    removed = _keep_unit_axes(work, shapes)
    if removed:
        proto.CopyFrom(work)
    return removed


def _keep_unit_axes(proto: Any, shapes: Shapes) -> int:
    graph = proto.graph
    ranks = {name: len(shape) for name, shape in shapes.items()}
    removed = _unsqueezes_in_place(graph)
    changed = True
    while changed:
        changed = False
        inits, readers = initializers(graph), consumers(graph)
        outputs = {o.name for o in graph.output}
        for squeeze in [n for n in graph.node if n.op_type == "Squeeze"]:
            rank = ranks.get(squeeze.input[0])
            axes = _axes(squeeze, inits, rank)
            if rank is None or axes is None or len(axes) != 1 \
                    or not _reaches_an_end(squeeze, axes[0], rank, inits, readers, outputs):
                continue
            user = readers[squeeze.output[0]][0]
            kind = _next_step(user, squeeze.output[0], axes[0], rank, inits, readers, outputs)
            if kind is None:
                continue
            removed += _take_step(graph, kind, squeeze, user, axes[0], rank, inits, readers,
                                  ranks)
            changed = True
            break
    remove_dead(proto)  # the removed nodes, and constants replaced by their unit-axis copies
    return removed


def _take_step(graph: Any, kind: str, squeeze: Any, user: Any, axis: int, rank: int,
               inits: dict[str, Any], readers: dict[str, list[Any]], ranks: dict[str, int]
               ) -> int:
    """Move ``squeeze`` past ``user`` or remove it there (see :func:`_next_step`); returns
    how many ``Squeeze`` nodes went (0 or 1)."""
    if kind in ("elementwise", "transpose", "resize"):
        if kind == "elementwise":
            _unit_axis_in_constants(graph, user, squeeze.output[0], axis, rank, inits)
        if kind == "resize":
            _unit_axis_in_scales(graph, user, axis, inits)
        kept = _swap(graph, squeeze, user)  # the two nodes' contents exchanged
        if kind == "transpose":
            _move_past_transpose(squeeze, user, axis, rank, graph)
        ranks[kept] = rank  # it keeps the unit axis now
        return 0
    if kind == "reshape":
        user.input[0] = squeeze.input[0]  # a Squeeze is a reshape: the target decides
        graph.node.remove(squeeze)
    elif kind == "unsqueeze":
        graph.node.remove(user)
        graph.node.remove(squeeze)
        bypass(graph, user.output[0], squeeze.input[0])
    else:  # "pool"
        _fold_into_pool(graph, squeeze, user, rank, readers)
    return 1


def _unsqueezes_in_place(graph: Any) -> int:
    """``Unsqueeze(b)`` then a ``Transpose`` that only moves that unit axis (tf2onnx's way into
    a ``ConvTranspose``) becomes one ``Unsqueeze`` at the axis's final place; returns how many
    transposes went."""
    inits, readers = initializers(graph), consumers(graph)
    outputs = {o.name for o in graph.output}
    writer = producers(graph)
    gone = 0
    for transpose in [n for n in graph.node if n.op_type == "Transpose"]:
        unsqueeze = writer.get(transpose.input[0])
        perm = [int(p) for p in attribute(transpose, "perm", [])]
        if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or not perm \
                or len(readers.get(unsqueeze.output[0], [])) != 1 \
                or unsqueeze.output[0] in outputs:
            continue
        axes = _axes(unsqueeze, inits, len(perm))
        if axes is None or len(axes) != 1:
            continue
        others = [p for p in perm if p != axes[0]]
        if others != sorted(others):
            continue  # the transpose moves other axes too
        unsqueeze.input[1] = _add_initializer(graph, f"{unsqueeze.name}/axes",
                                              np.array([perm.index(axes[0])], np.int64))
        unsqueeze.output[0] = transpose.output[0]
        graph.node.remove(transpose)
        gone += 1
    return gone


ENDS = ("reshape", "unsqueeze", "pool")  # where the Squeeze goes; moves are the other kinds


def _next_step(user: Any, tensor: str, axis: int, rank: int, inits: dict[str, Any],
               readers: dict[str, list[Any]], outputs: set[str]) -> str | None:
    """What the one reader of the squeezed ``tensor`` lets the ``Squeeze`` do: move past it
    (``elementwise``, ``transpose``, ``resize``), go (``reshape``, ``unsqueeze``, ``pool``), or
    nothing."""
    if user.op_type == "Reshape" and user.input[0] == tensor and _plain_target(user, inits):
        return "reshape"  # the reshape stays, only its input changes: it may be an output
    if user.output[0] in outputs:
        return None
    if _elementwise_on(user, tensor, inits, rank):
        return "elementwise"
    if user.op_type == "Transpose":
        return "transpose"
    if _resize_by_scales(user, tensor, rank, inits):
        return "resize"
    if user.op_type == "Unsqueeze" and _axes(user, inits, rank) == [axis]:
        return "unsqueeze"
    if user.op_type in GLOBAL_POOLS and axis >= 2 \
            and _pool_squeeze(user, rank, inits, readers, outputs) is not None:
        return "pool"
    return None


def _resize_by_scales(node: Any, tensor: str, rank: int, inits: dict[str, Any]) -> bool:
    """A ``Resize`` of ``tensor`` by constant scales, one per axis of the squeezed tensor (an
    ``UpSampling1D``, which :func:`.simplify.fold_upsampling` made one ``Resize``)."""
    inputs = list(node.input) + [""] * 4
    return node.op_type == "Resize" and inputs[0] == tensor and not inputs[1] \
        and inputs[2] in inits and len(inits[inputs[2]].dims) == 1 \
        and inits[inputs[2]].dims[0] == rank - 1 and not inputs[3] \
        and attribute(node, "axes", None) is None


def _unit_axis_in_scales(graph: Any, resize: Any, axis: int, inits: dict[str, Any]) -> None:
    """The unit ``axis`` scales by 1."""
    from onnx import numpy_helper

    scales = numpy_helper.to_array(inits[resize.input[2]])
    resize.input[2] = _add_initializer(graph, f"{resize.input[2]}/unit_axis",
                                       np.insert(scales, axis, 1.0).astype(scales.dtype))


def _reaches_an_end(squeeze: Any, axis: int, rank: int, inits: dict[str, Any],
                    readers: dict[str, list[Any]], outputs: set[str]) -> bool:
    """Whether the moves from ``squeeze`` lead to a place where it goes. Moves alone gain
    nothing and can cost: a ``Squeeze`` moved past a ``Transpose`` keeps onnxruntime from
    merging that transpose with the next one (an LSTM's), 0.93x at batch 64."""
    tensor = squeeze.output[0]
    for _ in range(64):
        users = readers.get(tensor, [])
        if tensor in outputs or len(users) != 1:
            return False
        kind = _next_step(users[0], tensor, axis, rank, inits, readers, outputs)
        if kind is None or kind in ENDS:
            return kind is not None
        axis = 1 if kind == "transpose" else axis  # where _move_past_transpose puts it
        tensor = users[0].output[0]
    return False


def _swap(graph: Any, squeeze: Any, user: Any) -> str:
    """``x -> Squeeze -> m -> user -> y`` becomes ``x -> user -> y -> Squeeze -> y/squeezed``,
    the readers of ``y`` (subgraphs included) reading ``y/squeezed``, which takes ``y``'s
    recorded shape; returns ``y``, whose shape gained the axis."""
    before, middle, after = squeeze.input[0], squeeze.output[0], user.output[0]
    squeezed = f"{after}/squeezed"
    rename_tensors(graph, {after: squeezed})  # the user's output too: set back below
    user.output[0] = after
    user.input[list(user.input).index(middle)] = before
    squeeze.input[0] = after
    squeeze.output[0] = squeezed
    # the squeeze came first: exchange the two nodes' contents to keep the order topological
    first = type(squeeze)()
    first.CopyFrom(squeeze)
    squeeze.CopyFrom(user)
    user.CopyFrom(first)
    return after


def _move_past_transpose(transpose: Any, squeeze: Any, axis: int, rank: int,
                         graph: Any) -> None:
    """After :func:`_swap` put ``transpose`` (a permutation of the squeezed axes) before
    ``squeeze``: permute the full tensor the same way with the unit ``axis`` moved to position
    1, where ``squeeze`` now removes it. (Position 1, not last: a unit axis last leaves
    onnxruntime's transpose an innermost loop of one element; on a Conv1D + Flatten model
    position 1 was 1.03x to 1.08x faster, one and two threads, batch 1 and 64.)"""
    from onnx import helper

    kept = [i for i in range(rank) if i != axis]
    perm = attribute(transpose, "perm", list(range(rank - 2, -1, -1)))  # default: reversed
    moved = [kept[int(p)] for p in perm]
    full = [moved[0], axis, *moved[1:]]
    for a in list(transpose.attribute):
        if a.name == "perm":
            transpose.attribute.remove(a)
    transpose.attribute.append(helper.make_attribute("perm", full))
    squeeze.input[1] = _add_initializer(graph, f"{squeeze.output[0]}/axes",
                                        np.array([1], np.int64))


def _plain_target(reshape: Any, inits: dict[str, Any]) -> bool:
    """Whether a ``Reshape``'s target is a constant without 0 entries (which copy the input's
    dimension, and so would count the unit axis)."""
    from onnx import numpy_helper

    return len(reshape.input) > 1 and reshape.input[1] in inits \
        and 0 not in numpy_helper.to_array(inits[reshape.input[1]]).tolist()


def _pool_squeeze(pool: Any, rank: int, inits: dict[str, Any],
                  readers: dict[str, list[Any]], outputs: set[str]) -> Any | None:
    """The ``Squeeze`` of every spatial axis that alone reads a global pooling's output."""
    pooled = pool.output[0]
    after = readers.get(pooled, [])
    if pooled in outputs or len(after) != 1 or after[0].op_type != "Squeeze" \
            or _axes(after[0], inits, rank - 1) != list(range(2, rank - 1)):
        return None
    return after[0]


def _fold_into_pool(graph: Any, squeeze: Any, pool: Any, rank: int,
                    readers: dict[str, list[Any]]) -> None:
    """``x -> Squeeze(unit) -> GlobalPool -> Squeeze(its spatial axes)`` becomes ``x ->
    GlobalPool -> Squeeze(every spatial axis of x)``."""
    last = readers[pool.output[0]][0]
    pool.input[0] = squeeze.input[0]
    graph.node.remove(squeeze)
    last.input[1] = _add_initializer(graph, f"{last.name}/spatial_axes",
                                     np.arange(2, rank, dtype=np.int64))
