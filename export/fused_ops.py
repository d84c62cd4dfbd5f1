"""Arithmetic tf2onnx writes out where ONNX, or onnxruntime's optimiser, has one operator.

TensorFlow has no operator for either, so tf2onnx writes the arithmetic Keras traces, in a shape
onnxruntime's own fusions do not recognise:

- ``LayerNormalization``: two means (as ``GlobalAveragePool``), a squared difference, ``Sqrt``,
  ``Reciprocal`` and five multiplications and additions, eleven operators per layer. It becomes
  ONNX's ``LayerNormalization`` (opset 17 and up). A transformer block has two: a Keras
  ``MultiHeadAttention`` block over 32 tokens got 1.13x faster at batch 1 and 1.07x at batch 64
  (``python benchmarks/compare.py`` on its export before and after the pass). A normalisation
  over the channels of NCHW features (after a convolution) is not one ONNX's operator
  expresses, and stays.
- exact ``gelu``: ``0.5 * x * erfc(-x / sqrt(2))``, six operators once ``erfc`` is written as
  ``1 - erf`` (:mod:`.tf_ops`). It becomes ``x * 0.5 * (1 + erf(x / sqrt(2)))`` spelt the way
  onnxruntime's optimiser fuses into its one ``Gelu`` kernel (standard operators, so every other
  runtime still runs it).
- ``PReLU``: ``relu(x) - alpha * relu(-x)``, four operators (``Relu``, ``Neg``, ``Relu``,
  ``Mul``) and an ``Add``. It becomes ONNX's ``PRelu`` with the slope read off the region.
  One thread: after a ``Dense(5)`` 1.13x faster at batch 1, 1.11x at 64; after a ``Conv2D(4)``
  1.10x at batch 1 but 0.93x at 64 (onnxruntime's ``PRelu`` kernel is slower per element over
  a feature map than the four elementwise kernels); other runtimes have it as one kernel.

No pass matches tf2onnx's spelling. From a candidate input ``x`` (a mean's input; the
tensor an ``Erf`` is computed from; a negated tensor) it gathers the region of arithmetic that depends only on
``x`` and constants, tries each tensor of ``x``'s shape in it as the end (the last first; the
nodes it needs must be read by nothing else), and replaces that part only if onnxruntime
computes the function on probes: rows of three scales for the normalisation (with the epsilon,
``gamma`` and ``beta`` read from where the region uses them), values from -8 to 8 for ``gelu``
and ``PRelu`` (whose slope is what the region gives for -1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .simplify import (_add_initializer, _run_probe, consumers, initializers, remove_dead,
                       scope_of)

NORMALISING = ("GlobalAveragePool", "ReduceMean", "Sub", "Mul", "Add", "Div", "Sqrt",
               "Reciprocal", "Pow", "Neg", "Reshape")  # Reshape: of the mean, after a conv
ELEMENTWISE = ("Neg", "Mul", "Div", "Erf", "Add", "Sub")
RECTIFYING = ("Relu", "Neg", "Mul", "Add", "Sub")
MAX_REGION = 16
CANONICAL_GELU = ["Div", "Erf", "Add", "Mul", "Mul"]


def _region(graph: Any, x: str, ops: tuple[str, ...], inits: dict[str, Any],
            readers: dict[str, list[Any]]) -> list[Any] | None:
    """The nodes of types ``ops`` that depend only on ``x`` and constants, in graph order; None
    when there are more than ``MAX_REGION``."""
    inside: list[Any] = []
    made = {x}
    frontier = list(readers.get(x, []))
    while frontier:
        node = frontier.pop(0)
        if any(node is n for n in inside) or node.op_type not in ops:
            continue
        if not all(i in made or i in inits for i in node.input if i):
            continue
        inside.append(node)
        if len(inside) > MAX_REGION:
            return None
        made.update(node.output)
        for out in node.output:
            frontier.extend(readers.get(out, []))
    position = {id(n): k for k, n in enumerate(graph.node)}
    return sorted(inside, key=lambda n: position[id(n)])


def _constants(nodes: list[Any], inits: dict[str, Any], channels: int
               ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """The region's epsilon, gamma and beta by where they are read; None when ambiguous."""
    from onnx import numpy_helper

    eps, gamma, beta = [], [], []
    for node in nodes:
        for name in node.input:
            if name not in inits:
                continue
            value = numpy_helper.to_array(inits[name]).astype(np.float64)
            if value.size == 1 and node.op_type == "Add":
                eps.append(float(value.reshape(-1)[0]))
            elif value.size == channels and node.op_type == "Mul":
                gamma.append(value.reshape(-1))
            elif value.size == channels and node.op_type in ("Add", "Sub"):
                beta.append(value.reshape(-1))
    if len(eps) != 1 or len(gamma) > 1 or len(beta) > 1 or not eps[0] > 0:
        return None
    return (eps[0], gamma[0] if gamma else np.ones(channels),
            beta[0] if beta else np.zeros(channels))


def _normalises(proto: Any, nodes: list[Any], x: str, y: str, shape: list[int],
                constants: tuple[float, np.ndarray, np.ndarray], inits: dict[str, Any],
                axis: int = -1) -> bool:
    """Whether the nodes normalise ``x`` over ``axis`` with these constants, on probes."""
    eps, gamma, beta = constants
    broadcast = [1] * len(shape)
    broadcast[axis] = -1
    gamma, beta = gamma.reshape(broadcast), beta.reshape(broadcast)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 30.0):  # small variances make a wrong epsilon show
        probe = (rng.standard_normal([2, *shape[1:]]) * scale + scale).astype(np.float32)
        got = _run_probe(proto, nodes, x, probe, y, inits)
        if got is None or got.shape != probe.shape:
            return False
        rows = probe.astype(np.float64)
        mean = rows.mean(axis=axis, keepdims=True)
        var = ((rows - mean) ** 2).mean(axis=axis, keepdims=True)
        want = (rows - mean) / np.sqrt(var + eps) * gamma + beta
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * (np.abs(want).max() + 1)):
            return False
    return True


def _ends(graph: Any, region: list[Any], shape: list[int | None],
          readers: dict[str, list[Any]], shapes: dict[str, list[int | None]]
          ) -> Iterator[tuple[list[Any], str]]:
    """Each tensor of ``shape`` in the region, the last first, with the region's nodes it
    needs, where nothing outside those nodes reads what they compute on the way."""
    writer = {o: n for n in region for o in n.output}
    outputs = {o.name for o in graph.output}
    for end in reversed([o for n in region for o in n.output if shapes.get(o) == shape]):
        needed, stack = [], [writer[end]]
        while stack:
            node = stack.pop()
            if any(node is n for n in needed):
                continue
            needed.append(node)
            stack.extend(writer[i] for i in node.input if i in writer)
        inner = {o for n in needed for o in n.output} - {end}
        if any(o in outputs or any(not any(r is n for n in needed) for r in readers.get(o, []))
               for o in inner):
            continue
        yield [n for n in region if any(n is m for m in needed)], end


def _replace(graph: Any, nodes: list[Any], new: list[Any]) -> None:
    """Put ``new`` where the last of ``nodes`` was, and drop ``nodes``."""
    last = max(list(graph.node).index(n) for n in nodes)
    for k, node in enumerate(new):
        graph.node.insert(last + 1 + k, node)
    for node in nodes:
        graph.node.remove(node)


def _scope(nodes: list[Any], end: str) -> str:
    """The layer scope of the node that writes ``end`` (``.../layer_normalization_1/add_2``)."""
    return scope_of(next(n for n in nodes if end in n.output).name, end)


def _channels_last_perm(rank: int) -> list[int]:
    """NCHW -> NHWC for any rank: axis 1 last, the others in order."""
    return [0, *range(2, rank), 1]


def _channels_last(graph: Any, y: str, rank: int, readers: dict[str, list[Any]]) -> Any:
    """The one reader of ``y``, when it is a ``Transpose`` that moves axis 1 last: a layer norm
    tf2onnx wrote over the channels of an NCHW tensor (its transposes moved past it, after a
    convolution) is then that transpose followed by a layer norm over the last axis."""
    found = readers.get(y, [])
    if len(found) != 1 or found[0].op_type != "Transpose" or \
            y in {o.name for o in graph.output}:
        return None
    perm = next((list(a.ints) for a in found[0].attribute if a.name == "perm"), None)
    return found[0] if perm == _channels_last_perm(rank) else None


def fold_layer_norms(proto: Any, shapes: dict[str, list[int | None]]) -> int:
    """Replace each layer normalisation written out in arithmetic with ``LayerNormalization``;
    returns how many. Nothing changes below opset 17, where ONNX has no such operator."""
    from onnx import helper

    graph = proto.graph
    if next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0) < 17:
        return 0
    changed = 0
    done: set[str] = set()
    for mean in [n for n in graph.node if n.op_type in ("GlobalAveragePool", "ReduceMean")]:
        x = mean.input[0]
        shape = shapes.get(x)
        if x in done or not shape or len(shape) < 2 or any(d is None for d in shape[1:]):
            continue
        inits, readers = initializers(graph), consumers(graph)
        region = _region(graph, x, NORMALISING, inits, readers)
        for nodes, y in _ends(graph, region or [], shape, readers, shapes):
            channels_first = False
            constants = _constants(nodes, inits, shape[-1])
            if constants is None or not _normalises(proto, nodes, x, y, shape, constants, inits):
                after = _channels_last(graph, y, len(shape), readers)
                constants = _constants(nodes, inits, shape[1]) if after is not None else None
                if constants is None or not _normalises(proto, nodes, x, y, shape, constants,
                                                        inits, axis=1):
                    continue
                channels_first = True
            eps, gamma, beta = constants
            scope = _scope(nodes, y)
            gamma_name = _add_initializer(graph, f"{scope}/gamma", gamma.astype(np.float32))
            beta_name = _add_initializer(graph, f"{scope}/beta", beta.astype(np.float32))
            if channels_first:  # transpose first, then normalise the last axis
                nodes, source = [*nodes, after], f"{scope}/channels_last"
                new = [helper.make_node("Transpose", [x], [source], name=f"{scope}/Transpose",
                                        perm=_channels_last_perm(len(shape))),
                       helper.make_node("LayerNormalization", [source, gamma_name, beta_name],
                                        [after.output[0]], name=f"{scope}/LayerNormalization",
                                        axis=-1, epsilon=eps)]
            else:
                new = [helper.make_node("LayerNormalization", [x, gamma_name, beta_name], [y],
                                        name=f"{scope}/LayerNormalization", axis=-1,
                                        epsilon=eps)]
            _replace(graph, nodes, new)
            done.add(x)
            changed += 1
            break
    if changed:
        remove_dead(proto)
    return changed


def _erf_source(node: Any, producer: dict[str, Any], inits: dict[str, Any]) -> str:
    """The tensor an ``Erf``'s argument is computed from by scaling and negation."""
    name = node.input[0]
    while name in producer and producer[name].op_type in ("Neg", "Mul", "Div"):
        step = producer[name]
        others = [i for i in step.input if i != step.input[0]]
        if step.op_type == "Neg" or (others and all(i in inits for i in others)):
            name = step.input[0]
        elif step.op_type == "Mul" and step.input[0] in inits:
            name = step.input[1]
        else:
            break
    return name


def _computes_gelu(proto: Any, nodes: list[Any], x: str, y: str, shape: list[int | None],
                   inits: dict[str, Any]) -> bool:
    from math import erf

    width = int(np.prod([d for d in shape[1:]]))
    probe = np.linspace(-8, 8, 2 * width, dtype=np.float32).reshape([2, *shape[1:]])
    got = _run_probe(proto, nodes, x, probe, y, inits)
    values = probe.astype(np.float64)
    want = 0.5 * values * (1 + np.vectorize(erf)(values / np.sqrt(2)))
    return got is not None and got.shape == probe.shape and np.allclose(got, want, atol=1e-5)


def canonical_gelu(proto: Any, shapes: dict[str, list[int | None]]) -> int:
    """Respell each exact ``gelu`` the way onnxruntime fuses it into one ``Gelu`` kernel
    (``Div`` by sqrt(2), ``Erf``, ``Add`` 1, ``Mul`` by x, ``Mul`` by 0.5); returns how many."""
    from onnx import helper

    graph = proto.graph
    changed = 0
    for erf_node in [n for n in graph.node if n.op_type == "Erf"]:
        if not any(erf_node is n for n in graph.node):
            continue
        inits, readers = initializers(graph), consumers(graph)
        x = _erf_source(erf_node, {o: n for n in graph.node for o in n.output}, inits)
        shape = shapes.get(x)
        if not shape or len(shape) < 2 or any(d is None for d in shape[1:]):
            continue
        region = _region(graph, x, ELEMENTWISE, inits, readers)
        for nodes, y in _ends(graph, region or [], shape, readers, shapes):
            if not any(n is erf_node for n in nodes) \
                    or [n.op_type for n in nodes] == CANONICAL_GELU \
                    or not _computes_gelu(proto, nodes, x, y, shape, inits):
                continue
            scope = _scope(nodes, y)
            root = _add_initializer(graph, f"{scope}/sqrt_2", np.array(np.sqrt(2), np.float32))
            one = _add_initializer(graph, f"{scope}/one", np.array(1, np.float32))
            half = _add_initializer(graph, f"{scope}/half", np.array(0.5, np.float32))
            t = {k: f"{scope}/gelu_{k}" for k in ("scaled", "erf", "plus_one", "times_x")}
            _replace(graph, nodes, [
                helper.make_node("Div", [x, root], [t["scaled"]], name=t["scaled"]),
                helper.make_node("Erf", [t["scaled"]], [t["erf"]], name=t["erf"]),
                helper.make_node("Add", [t["erf"], one], [t["plus_one"]], name=t["plus_one"]),
                helper.make_node("Mul", [x, t["plus_one"]], [t["times_x"]], name=t["times_x"]),
                helper.make_node("Mul", [t["times_x"], half], [y], name=f"{scope}/Gelu")])
            changed += 1
            break
    if changed:
        remove_dead(proto)
    return changed


def _prelu_slope(proto: Any, nodes: list[Any], x: str, y: str, shape: list[int | None],
                 inits: dict[str, Any]) -> np.ndarray | None:
    """The slope ``s`` for which the nodes compute ``PRelu(x, s)`` (``x`` where ``x >= 0``,
    ``s * x`` below), in the smallest shape that broadcasts to ``x`` without its batch axis;
    read off a probe of -1 everywhere and proved on values from -8 to 8. None otherwise."""
    ones = np.ones([1, *shape[1:]], np.float32)
    below = _run_probe(proto, nodes, x, -ones, y, inits)
    if below is None or below.shape != ones.shape:
        return None
    slope = -below[0]
    for axis in range(slope.ndim):  # an axis along which the slope does not change: size 1
        first = np.take(slope, [0], axis=axis)
        if np.array_equal(np.broadcast_to(first, slope.shape), slope):
            slope = first
    width = int(np.prod(shape[1:]))
    probe = np.linspace(-8, 8, 2 * width, dtype=np.float32).reshape([2, *shape[1:]])
    got = _run_probe(proto, nodes, x, probe, y, inits)
    want = np.where(probe >= 0, probe, slope * probe)
    if got is None or got.shape != probe.shape or not np.allclose(got, want, rtol=1e-6,
                                                                   atol=1e-6):
        return None
    return slope


def fold_prelu(proto: Any, shapes: dict[str, list[int | None]]) -> int:
    """Replace each Keras ``PReLU`` (``relu(x) - alpha * relu(-x)``: ``Relu``, ``Neg``,
    ``Relu``, ``Mul``, ``Add``) with ONNX's one ``PRelu``; returns how many."""
    from onnx import helper

    graph = proto.graph
    changed = 0
    for neg in [n for n in graph.node if n.op_type == "Neg"]:
        if not any(neg is n for n in graph.node):
            continue
        x = neg.input[0]
        shape = shapes.get(x)
        if not shape or len(shape) < 2 or any(d is None for d in shape[1:]):
            continue
        inits, readers = initializers(graph), consumers(graph)
        region = _region(graph, x, RECTIFYING, inits, readers)
        for nodes, y in _ends(graph, region or [], shape, readers, shapes):
            if not any(n is neg for n in nodes) or len(nodes) < 3:
                continue
            slope = _prelu_slope(proto, nodes, x, y, shape, inits)
            if slope is None:
                continue
            scope = _scope(nodes, y)
            name = _add_initializer(graph, f"{scope}/slope", slope.astype(np.float32))
            _replace(graph, nodes, [helper.make_node("PRelu", [x, name], [y],
                                                     name=f"{scope}/PRelu")])
            changed += 1
            break
    if changed:
        remove_dead(proto)
    return changed
