"""Graph simplifications tf2onnx leaves undone; outputs are unchanged.

Small edge models are dominated by fixed costs, not arithmetic: onnxruntime's cost per call (3
to 4 us on the VNNI Xeon, 14 to 19 us on the earlier AMD machine), and per operator its
dispatch (0.22 us, 0.7 us on AMD; ``benchmarks/dispatch_cost.py``) and a small kernel of its
own. On the 8x8 digits CNN a Keras ``Flatten`` costs seven operators (``Shape``, ``Gather``,
``Cast``, ``Slice``, ``Concat``, ``Cast``, ``Reshape``) to compute a shape that is static
except for the batch. Five passes here, three in :mod:`.fused_ops` (a written-out
``LayerNormalization`` or ``PReLU`` as one operator, and exact ``gelu`` spelt the way
onnxruntime fuses it), one in :mod:`.final_state` (a recurrent layer's last output read from
``Y_h`` instead of sliced out of ``Y``), one in :mod:`.squeezes` (1D layers kept in 4D between
their operators) and one in :mod:`.crops` (computed ``Slice``/``Pad`` amounts as constants):

- ``fold_reshapes``: a ``Reshape`` whose output shape is static apart from its first dimension
  gets the constant shape ``[-1, d1, ...]`` (the first dimension is then what the size leaves,
  which is what it was); the shape subgraph becomes dead and is dropped. That covers a Keras
  ``Flatten`` and the reshape back after a ``Dense`` on ``[batch, steps, features]``
  (``Tensordot``: six operators to rebuild ``[batch, steps, units]``).
- ``restore_layout_transposes``: the one-channel NHWC<->NCHW ``Reshape`` tf2onnx writes becomes
  the ``Transpose`` it is, so onnxruntime's layout optimiser can cancel it.
- ``drop_zero_initial_states``: an ``LSTM``/``GRU``/``RNN`` whose initial state is built as zeros (seven
  operators from the input's batch size) gets no initial state, which means zeros.
- ``fold_upsampling``: a run of moves that repeats elements (a Keras 3 ``UpSampling2D``: eight
  operators and two full-size copies) becomes one nearest-neighbour ``Resize``. On the zoo's
  ``conv_autoencoder``: 30 -> 16 operators, 1.41x faster at batch 1 and 1.32x at batch 64.
- ``drop_index_wrapping``: the negative-index wrapping Keras' ``Embedding`` does before its
  lookup (nine operators; ONNX ``Gather`` wraps by itself) is dropped. Unmasked text ``lstm``:
  17 -> 8 operators, 1.13x faster at batch 1, level at batch 64.

Both figures: ``python benchmarks/compare.py before.onnx after.onnx`` on one-epoch zoo models
exported before and after the pass (2 AVX2 cores, onnxruntime 1.32).

The last two check what they replace by running it on a probe with onnxruntime instead of
matching tf2onnx's spelling, which changes between versions.

Measured on the digits ``cnn`` (2 AVX2 cores, onnxruntime 1.32, batch 1): float32 62.0 -> 50.0 us;
static INT8 81.6 -> 60.3 us, where onnxruntime's optimised graph is then the ideal nine
operators (quantize, two QLinearConv + NHWC max-pool pairs, reshape, QGemm, softmax, dequantize)
with no layout transposes left; eight since the float head of ``qdq.py`` (QGemm writes float,
the softmax runs in float, nothing to dequantize). (Folding the flatten's transpose into the
dense weights instead was as fast in float32 but cost INT8 a transpose back to NCHW: 68.6 us.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


Shapes = dict[str, list[int | None]]  # tensor name -> dimensions, None where not static


def _shapes(proto: Any) -> Shapes:
    """Inferred shapes by tensor name; ``None`` for a dimension that is not static."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    graph = inferred.graph
    out: dict[str, list[int | None]] = {}
    for value in (*graph.value_info, *graph.input, *graph.output):
        t = value.type.tensor_type
        if t.HasField("shape"):
            out[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                               else None for d in t.shape.dim]
    return out


def initializers(graph: Any) -> dict[str, Any]:
    """Initializers by name."""
    return {init.name: init for init in graph.initializer}


def producers(graph: Any) -> dict[str, Any]:
    """Tensor name -> the node that writes it."""
    return {o: n for n in graph.node for o in n.output}


def consumers(graph: Any) -> dict[str, list[Any]]:
    """Tensor name -> the nodes that read it, in graph order."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def attribute(node: Any, name: str, default: Any) -> Any:
    """A node's attribute value, or ``default`` when the node does not set it."""
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name),
                default)


def scope_of(name: str, default: str) -> str:
    """The scope a node's name sits in (``lstm`` for ``lstm/LSTM``): where a node that takes
    its place is named; ``default`` for a name without one."""
    return name.rsplit("/", 1)[0] if "/" in name else default


def _add_initializer(graph: Any, name: str, array: np.ndarray) -> str:
    from onnx import numpy_helper

    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    unique, k = name, 0
    while unique in taken:
        k += 1
        unique = f"{name}_{k}"
    graph.initializer.append(numpy_helper.from_array(array, unique))
    return unique


def _static_tail(shape: list[int | None] | None) -> bool:
    return bool(shape) and len(shape) >= 2 and all(d is not None for d in shape[1:])


def fold_reshapes(proto: Any, shapes: Shapes | None = None) -> int:
    """Give ``Reshape`` nodes a constant shape where their output is static after its first
    dimension, or their computed target can be evaluated in terms of the batch
    (:mod:`.shape_values`, repeated while each fold lets the next be inferred); returns how
    many changed."""
    from .shape_values import reshape_target, symbolic_shapes

    graph = proto.graph
    shapes = _shapes(proto) if shapes is None else shapes
    inits = initializers(graph)
    changed = 0
    for node in graph.node:
        dst = shapes.get(node.output[0])
        if node.op_type == "Reshape" and node.input[1] not in inits and _static_tail(dst):
            target = np.array([-1, *dst[1:]], dtype=np.int64)  # -1 is the first dimension
            node.input[1] = _add_initializer(graph, f"{node.name}_shape", target)
            changed += 1
    if changed:
        remove_dead(proto)
    for _ in range(8):
        inits = initializers(graph)
        computed = [n for n in graph.node if n.op_type == "Reshape" and n.input[1] not in inits]
        if not computed:
            break
        symbolic, producer = symbolic_shapes(proto), producers(graph)
        folded = 0
        for node in computed:
            target = reshape_target(node, producer, inits, symbolic)
            if target is not None:
                node.input[1] = _add_initializer(graph, f"{node.name}_shape", target)
                folded += 1
        if not folded:
            break
        remove_dead(proto)
        changed += folded
    return changed


def restore_layout_transposes(proto: Any, shapes: Shapes | None = None) -> int:
    """Turn a ``Reshape`` that moves a single channel between NHWC and NCHW back into the
    ``Transpose`` it stands for; returns how many changed.

    tf2onnx writes the one-channel ``Transpose`` as a ``Reshape`` (the same bytes), which hides
    the layout change from onnxruntime: its layout optimiser then cannot cancel the transpose
    against the NHWC kernels INT8 convolutions use, and a quantized model pays for two layout
    changes at its input instead of none."""
    from onnx import helper

    graph = proto.graph
    shapes = _shapes(proto) if shapes is None else shapes
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        src, dst = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not (_static_tail(src) and _static_tail(dst)) or len(src) != 4 or len(dst) != 4:
            continue
        if src[3] == 1 and dst[1:] == [1, src[1], src[2]]:
            perm = [0, 3, 1, 2]
        elif src[1] == 1 and dst[1:] == [src[2], src[3], 1]:
            perm = [0, 2, 3, 1]
        else:
            continue
        replacement = helper.make_node("Transpose", [node.input[0]], list(node.output),
                                       name=node.name, perm=perm)
        node.CopyFrom(replacement)
        changed += 1
    if changed:
        remove_dead(proto)
    return changed


# Recurrent operators and the input positions of their initial states (initial_h, initial_c).
RNN_STATES = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}
PASS_THROUGH = ("Unsqueeze", "Squeeze", "Cast", "Identity", "Reshape")


def _all_zero(name: str, producer: dict[str, Any], inits: dict[str, Any]) -> bool:
    """Whether tensor ``name`` is zeros whatever the input: a zero constant, or one expanded
    to a shape (``Expand``, ``ConstantOfShape``), through shape-only operators, or a
    ``Concat`` of such (a bidirectional layer's two states). ``producer`` maps tensor names to
    the nodes that write them, ``inits`` names to initializers."""
    from onnx import numpy_helper

    def constant(value: str) -> np.ndarray | None:
        if value in inits:
            return numpy_helper.to_array(inits[value])
        node = producer.get(value)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    node = producer.get(name)
    while node is not None and node.op_type in PASS_THROUGH:
        name = node.input[0]
        node = producer.get(name)
    if node is None or node.op_type == "Constant":
        value = constant(name)
    elif node.op_type == "Expand":
        value = constant(node.input[0])
    elif node.op_type == "ConstantOfShape":
        value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                     np.zeros(1))
    elif node.op_type == "Concat":
        return all(_all_zero(i, producer, inits) for i in node.input)
    else:
        return False
    return value is not None and not np.any(value)


def drop_zero_initial_states(proto: Any) -> int:
    """Leave out the initial states of ``LSTM``/``GRU``/``RNN`` nodes that are zeros, which is
    their default; returns how many inputs were dropped.

    Keras starts a recurrent layer from zeros, and tf2onnx builds that tensor per call from the
    input's batch size: ``Shape``, ``Cast``, ``Slice``, ``Concat``, ``Cast``, ``Expand`` and
    ``Unsqueeze`` in front of every recurrent layer. Without the input those operators are
    dead."""
    graph = proto.graph
    producer = producers(graph)
    inits = initializers(graph)
    changed = 0
    for node in graph.node:
        for index in RNN_STATES.get(node.op_type, ()):
            if len(node.input) > index and node.input[index] \
                    and _all_zero(node.input[index], producer, inits):
                node.input[index] = ""
                changed += 1
    if changed:
        remove_dead(proto)
    return changed


MOVES = ("Unsqueeze", "Squeeze", "Tile", "Transpose", "Reshape", "Expand", "Identity")


def _chains(graph: Any, inits: dict[str, Any]) -> Iterator[list[Any]]:
    """Runs of two or more data-movement operators, each the only reader of the one before,
    with constant parameters."""
    readers_of = consumers(graph)
    outputs = {o.name for o in graph.output}
    producer = producers(graph)

    def movable(node: Any) -> bool:
        return (node.op_type in MOVES and len(node.output) == 1
                and all(i in inits for i in node.input[1:] if i))

    for node in graph.node:
        before = producer.get(node.input[0]) if node.input else None
        if not movable(node) or (before is not None and movable(before)
                                 and len(readers_of.get(node.input[0], [])) == 1):
            continue  # not the start of a run
        chain = [node]
        while chain[-1].output[0] not in outputs:
            readers = readers_of.get(chain[-1].output[0], [])
            if len(readers) != 1 or not movable(readers[0]) \
                    or readers[0].input[0] != chain[-1].output[0]:
                break
            chain.append(readers[0])
        if len(chain) > 1:
            yield chain


def _repeat_scales(source: list[int | None] | None, target: list[int | None] | None
                   ) -> list[int] | None:
    """Whole-number factors from ``source``'s shape to ``target``'s (the batch may be
    symbolic), or None."""
    if not source or not target or len(source) != len(target) or len(source) < 3:
        return None
    if source[0] != target[0] or any(d is None for d in (*source[1:], *target[1:])):
        return None
    scales = [1]
    for a, b in zip(source[1:], target[1:]):
        if not a or b % a:
            return None
        scales.append(b // a)
    return scales if max(scales) > 1 else None


def _run_probe(proto: Any, nodes: list[Any], source: str, values: np.ndarray, target: str,
               inits: dict[str, Any]) -> np.ndarray | None:
    """What ``nodes`` compute for ``target`` when ``source`` holds ``values``, run alone with
    onnxruntime (the constants they read come along); None when onnxruntime cannot run them.
    How the passes below prove a replacement instead of matching tf2onnx's spelling."""
    import onnxruntime as ort
    from onnx import helper

    used = {i for node in nodes for i in node.input if i in inits}
    elem = helper.np_dtype_to_tensor_dtype(values.dtype)
    model = helper.make_model(
        helper.make_graph(list(nodes), "probe",
                          [helper.make_tensor_value_info(source, elem, list(values.shape))],
                          [helper.make_empty_tensor_value_info(target)],
                          [inits[name] for name in used]),
        opset_imports=proto.opset_import, ir_version=proto.ir_version)
    try:
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, {source: values})[0]
    except Exception:  # a subgraph this probe cannot execute (another dtype, say)
        return None


def _repeat_layouts(source: list[int | None] | None, target: list[int | None] | None,
                    moved: bool) -> Iterator[tuple[list[int], list[int]]]:
    """``(scales, perm)`` with ``target = transpose(repeat(source, scales), perm)`` by shape:
    the identity order, or with ``moved`` the others that keep the batch first (a repeat that
    tf2onnx wrote across a layout change, NCW -> NWC before a ``Conv1D``, say)."""
    import itertools

    if not source or not target or len(source) != len(target):
        return
    rank = len(source)
    for rest in itertools.permutations(range(1, rank)):
        perm = [0, *rest]
        if (perm != sorted(perm)) != moved:
            continue
        scales = _repeat_scales(source, [target[perm.index(j)] for j in range(rank)])
        if scales is not None:
            yield scales, perm


def _repeating_run(proto: Any, chain: list[Any], first: int, shapes: Shapes,
                   inits: dict[str, Any], moved: bool
                   ) -> tuple[list[Any], list[int], list[int]] | None:
    """The longest run ``chain[first:end]`` that computes ``numpy.repeat`` of its input along
    some axes, then perhaps a transpose, proved on a probe of distinct values (batch 3) with
    onnxruntime: the run, the scales and the order; or None."""
    source = chain[first].input[0]
    for end in range(len(chain), first + 1, -1):
        run, target = chain[first:end], chain[end - 1].output[0]
        for scales, perm in _repeat_layouts(shapes.get(source), shapes.get(target), moved):
            dims = [3, *shapes[source][1:]]
            probe = np.arange(int(np.prod(dims)), dtype=np.float32).reshape(dims)
            expected = probe
            for axis, factor in enumerate(scales):
                expected = np.repeat(expected, factor, axis=axis)
            expected = expected.transpose(perm)
            got = _run_probe(proto, run, source, probe, target, inits)
            if got is not None and got.shape == expected.shape \
                    and np.array_equal(got, expected):
                return run, scales, perm
    return None


def _replace_with_resize(graph: Any, run: list[Any], scales: list[int], perm: list[int]
                         ) -> None:
    from onnx import helper

    source, target = run[0].input[0], run[-1].output[0]
    scale_name = _add_initializer(graph, f"{target}/scales", np.array(scales, np.float32))
    scope = scope_of(run[0].name, target)
    moved = perm != sorted(perm)
    resized = f"{scope}/Resize" if moved else target
    new = [helper.make_node(  # named in the layer's scope: up_sampling2d/Repeat/Resize
        "Resize", [source, "", scale_name], [resized], name=f"{scope}/Resize",
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    if moved:  # the layout change the run made on the way
        new.append(helper.make_node("Transpose", [resized], [target],
                                    name=f"{scope}/Transpose", perm=perm))
    at = list(graph.node).index(run[-1]) + 1
    for k, node in enumerate(new):
        graph.node.insert(at + k, node)
    for node in run:
        graph.node.remove(node)


def fold_upsampling(proto: Any, shapes: Shapes | None = None) -> int:
    """Replace a run of data-movement operators that repeats every element along some axes
    with one nearest-neighbour ``Resize``; returns how many runs were replaced.

    Keras 3's ``UpSampling2D`` repeats rows, then columns, and tf2onnx writes each repeat as
    ``Unsqueeze``, ``Tile``, ``Transpose``, ``Reshape``: eight operators and two full-size
    copies per layer where ONNX has one operator. The pass does not match tf2onnx's
    spelling: for a run whose output shape is a whole multiple of its input's, it runs the
    operators on a probe of distinct values (batch 3) with onnxruntime and replaces the run
    only when the result is exactly ``numpy.repeat`` along each axis, which a
    ``Resize(mode=nearest, coordinate_transformation_mode=asymmetric, nearest_mode=floor)``
    computes, or that followed by a transpose the run also made (kept as a ``Transpose``)."""
    graph = proto.graph
    shapes = shapes if shapes is not None else _shapes(proto)
    inits = initializers(graph)
    changed = 0
    for chain in list(_chains(graph, inits)):
        for moved in (False, True):  # a plain repeat anywhere in the run first
            folded = _fold_chain(proto, chain, shapes, moved)
            changed += folded
            if folded:
                break
    if changed:
        remove_dead(proto)
    return changed


def _fold_chain(proto: Any, chain: list[Any], shapes: Shapes, moved: bool) -> int:
    """Replace the repeating runs in ``chain`` (see :func:`_repeating_run`); returns how many."""
    graph, first, changed = proto.graph, 0, 0
    while first < len(chain) - 1:  # a layout change may lead in: try every sub-run
        found = _repeating_run(proto, chain, first, shapes, initializers(graph), moved)
        if found is None:
            first += 1
            continue
        run, scales, perm = found
        _replace_with_resize(graph, run, scales, perm)
        changed += 1
        first += len(run)
    return changed


ELEMENTWISE = ("Cast", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Equal", "Not",
               "And", "Or", "Add", "Sub", "Mul", "Where", "Identity")


def _index_subgraph(name: str, producer: dict[str, Any], inits: dict[str, Any],
                    limit: int = 16) -> tuple[list[Any], str] | None:
    """The elementwise nodes that compute tensor ``name`` from one non-constant tensor, and
    that tensor; None when it is computed any other way."""
    nodes: list[Any] = []
    sources: set[str] = set()
    seen: set[str] = set()
    stack = [name]
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in inits:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None or node.op_type not in ELEMENTWISE:
            sources.add(tensor)
            continue
        if len(nodes) == limit or node.attribute and node.op_type != "Cast":
            return None
        nodes.append(node)
        stack.extend(i for i in node.input if i)
    if len(sources) != 1 or not nodes:
        return None
    return nodes, sources.pop()


def drop_index_wrapping(proto: Any) -> int:
    """Feed a ``Gather`` the indices themselves where the graph only wraps negative indices
    into range first; returns how many gathers changed.

    Keras 3's ``Embedding`` looks tokens up with ``take``, which maps an index ``i < 0`` to
    ``i + n`` before the lookup, and tf2onnx writes that ``where`` as nine operators (``Cast``,
    ``Less``, ``Not``, ``Mul``, ``Add``...) in front of the ``Gather``. ONNX's ``Gather``
    already reads negative indices from the end, so they compute nothing. The pass does not
    pattern-match tf2onnx's spelling: it runs the elementwise subgraph between a graph input
    and the ``Gather`` on every index in ``[-n, n)`` with onnxruntime and drops it only when
    every result selects the same row as the index itself."""
    import onnx

    graph = proto.graph
    producer = producers(graph)
    inits = initializers(graph)
    inputs = {v.name: v for v in graph.input}
    position = {id(node): i for i, node in enumerate(graph.node)}
    changed = 0
    for gather in graph.node:
        if gather.op_type != "Gather" or gather.input[0] not in inits:
            continue
        axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
        dims = inits[gather.input[0]].dims
        found = _index_subgraph(gather.input[1], producer, inits)
        if found is None or not dims or found[1] not in inputs:
            continue
        nodes, source = found
        n = int(dims[axis])
        elem = inputs[source].type.tensor_type.elem_type
        if elem not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            continue
        values = np.arange(-n, n, dtype=onnx.helper.tensor_dtype_to_np_dtype(elem))
        nodes.sort(key=lambda node: position[id(node)])  # the probe runs them in graph order
        wrapped = _run_probe(proto, nodes, source, values, gather.input[1], inits)
        if (wrapped is not None and wrapped.shape == values.shape and wrapped.dtype.kind in "iu"
                and np.all((wrapped >= -n) & (wrapped < n))
                and np.array_equal(np.mod(wrapped, n), np.mod(values, n))):
            gather.input[1] = source
            changed += 1
    if changed:
        remove_dead(proto)
    return changed


def _reads(node: Any) -> set[str]:
    """Every tensor a node reads, including outer-scope names its subgraphs (If/Loop) use."""
    names = {i for i in node.input if i}
    for attr in node.attribute:
        for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            for inner in sub.node:
                names |= _reads(inner)
    return names


def remove_dead(proto: Any) -> None:
    """Drop nodes whose outputs nothing uses, and initializers no node reads."""
    graph = proto.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed |= _reads(node)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    live = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(live)
    names = needed | {i.name for i in graph.input}
    info = [v for v in graph.value_info if v.name in names]
    del graph.value_info[:]
    graph.value_info.extend(info)


def simplify(proto: Any) -> dict[str, int]:
    """Every simplification in order; returns what each changed. Shape inference runs once:
    no pass changes the shape of a tensor a later one reads. ``fold_computed_crops`` runs first
    and only drops operators that change nothing; ``keep_unit_axes``, which gives tensors
    between its moves a unit axis, runs last and keeps track of their ranks itself."""
    from .crops import fold_computed_crops
    from .final_state import read_final_states
    from .fused_ops import canonical_gelu, fold_layer_norms, fold_prelu
    from .squeezes import keep_unit_axes

    shapes = _shapes(proto)
    return {"fold_computed_crops": fold_computed_crops(proto),
            "fold_reshapes": fold_reshapes(proto, shapes),
            "restore_layout_transposes": restore_layout_transposes(proto, shapes),
            "fold_upsampling": fold_upsampling(proto, shapes),
            "drop_zero_initial_states": drop_zero_initial_states(proto),
            "read_final_states": read_final_states(proto, shapes),
            "drop_index_wrapping": drop_index_wrapping(proto),
            "fold_layer_norms": fold_layer_norms(proto, shapes),
            "canonical_gelu": canonical_gelu(proto, shapes),
            "fold_prelu": fold_prelu(proto, shapes),
            "keep_unit_axes": keep_unit_axes(proto, shapes)}
