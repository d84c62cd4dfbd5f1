"""Keras ``LayerNormalization`` as ONNX's one ``LayerNormalization`` operator (opset 17+).

TensorFlow has no layer-normalisation operator, so tf2onnx writes the arithmetic Keras traces:
two means (as ``GlobalAveragePool``), a squared difference, ``Sqrt``, ``Reciprocal`` and five
multiplications and additions, eleven operators per layer, in a shape onnxruntime's own
layer-norm fusion does not recognise. A transformer block has two: one ``LayerNormalization``
each makes a Keras ``MultiHeadAttention`` block over 32 tokens 1.13x faster at batch 1 and
1.07x at batch 64 (``python benchmarks/compare.py`` on its export before and after the pass).
A normalisation over channels of NCHW features (a ``LayerNormalization`` after a convolution)
is not one ONNX's operator expresses, and stays.

The pass does not match tf2onnx's spelling. From each mean over the last axis it gathers the
region of arithmetic that depends only on that mean's input ``x`` and constants; when the
region ends in one tensor ``y`` of ``x``'s shape, it takes the epsilon (the region's one scalar
added), ``gamma`` (a per-channel constant it multiplies by, else ones) and ``beta`` (one it adds,
else zeros), and replaces the region only if it computes ``(x - mean) / sqrt(var + eps) * gamma
+ beta`` on random rows of three scales, run with onnxruntime.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .simplify import _add_initializer, _run_probe, consumers, initializers

ARITHMETIC = ("GlobalAveragePool", "ReduceMean", "Sub", "Mul", "Add", "Div", "Sqrt",
              "Reciprocal", "Pow", "Neg")
MAX_REGION = 16


def _region(graph: Any, x: str, inits: dict[str, Any], readers: dict[str, list[Any]]
            ) -> list[Any] | None:
    """The arithmetic nodes that depend only on ``x`` and constants, in graph order; None when
    more than a layer norm's worth."""
    inside: list[Any] = []
    made = {x}
    frontier = list(readers.get(x, []))
    while frontier:
        node = frontier.pop(0)
        if any(node is n for n in inside) or node.op_type not in ARITHMETIC:
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
                constants: tuple[float, np.ndarray, np.ndarray], inits: dict[str, Any]
                ) -> bool:
    eps, gamma, beta = constants
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 30.0):  # small variances make a wrong epsilon show
        probe = (rng.standard_normal([2, *shape[1:]]) * scale + scale).astype(np.float32)
        got = _run_probe(proto, nodes, x, probe, y, inits)
        if got is None or got.shape != probe.shape:
            return False
        rows = probe.astype(np.float64)
        mean = rows.mean(axis=-1, keepdims=True)
        var = ((rows - mean) ** 2).mean(axis=-1, keepdims=True)
        want = (rows - mean) / np.sqrt(var + eps) * gamma + beta
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * (np.abs(want).max() + 1)):
            return False
    return True


def _layer_norm(proto: Any, x: str, shape: list[int | None], inits: dict[str, Any],
                readers: dict[str, list[Any]], shapes: dict[str, list[int | None]]
                ) -> tuple[list[Any], str, tuple[float, np.ndarray, np.ndarray]] | None:
    """The nodes, output and constants of a layer normalisation of ``x``, or None. The region
    after ``x`` may run on past the normalisation (a mean over time reading it), so each
    tensor of ``x``'s shape in it, the last first, is tried as the end: the nodes it needs must
    be read by nothing else."""
    graph = proto.graph
    region = _region(graph, x, inits, readers)
    if not region:
        return None
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
        nodes = [n for n in region if any(n is m for m in needed)]
        constants = _constants(nodes, inits, shape[-1])
        if constants is not None and _normalises(proto, nodes, x, end, shape, constants, inits):
            return nodes, end, constants
    return None


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
        found = _layer_norm(proto, x, shape, inits, readers, shapes)
        if found is None:
            continue
        nodes, y, constants = found
        eps, gamma, beta = constants
        end = next(n for n in nodes if y in n.output).name  # in the layer's scope: .../add_2
        scope = end.rsplit("/", 1)[0] if "/" in end else y
        gamma_name = _add_initializer(graph, f"{scope}/gamma", gamma.astype(np.float32))
        beta_name = _add_initializer(graph, f"{scope}/beta", beta.astype(np.float32))
        norm = helper.make_node("LayerNormalization", [x, gamma_name, beta_name], [y],
                                name=f"{scope}/LayerNormalization", axis=-1, epsilon=eps)
        last = max(list(graph.node).index(n) for n in nodes)
        graph.node.insert(last + 1, norm)
        for node in nodes:
            graph.node.remove(node)
        done.add(x)
        changed += 1
    if changed:
        from .simplify import remove_dead

        remove_dead(proto)
    return changed

