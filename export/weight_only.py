"""Weight-only INT8: weights stored in int8, dequantized once when onnxruntime loads the model.

Each large float weight becomes an int8 tensor and a float scale (symmetric, ``[-127, 127]``,
one scale per output channel by default), read back through ``Cast -> Mul``. Both operators
have only constant inputs, so onnxruntime's constant folding computes the float weight once
when the session is created and the graph it runs is the float32 model's: the file has the
size of INT8, the call the speed of float32, and only the weights are rounded (activations stay
float, unlike the dynamic and static recipes). OpenVINO's ``compress_weights`` and TensorFlow
Lite's float16 weights on CPU do the same thing.

Why not ``DequantizeLinear``, the ONNX operator for it: onnxruntime never folds a
``DequantizeLinear`` (its QDQ fusions need to see them) and runs it on every call. The zoo's
``gan`` generator quantized that way (static INT8: its ``ConvTranspose`` has no INT8 kernel in
the CPU provider) ran two of them per call, 17 and 11 us in onnxruntime's profile, and took 87
us a call against float32's 50.

How a weight is rounded only decides accuracy, never the result's correctness: the whole float
tensor is rebuilt before the operator reads it, whatever axis the scales run along.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .simplify import consumers, initializers

# op -> (input index of its weight, axis of the output channels in that weight); the axis is
# None where it depends on an attribute (Gemm's transB) and is worked out below.
WEIGHT_INPUTS: dict[str, tuple[int, int | None]] = {
    "Conv": (1, 0),            # [out, in/group, kh, kw]
    "ConvTranspose": (1, 1),   # [in, out/group, kh, kw]
    "MatMul": (1, -1),         # [.., in, out]
    "Gemm": (1, None),         # [in, out], or [out, in] with transB
    "LSTM": (1, 1), "GRU": (1, 1), "RNN": (1, 1),  # W [dirs, gates*hidden, in]
    "Gather": (0, 0),          # an embedding table [tokens, dim]: a scale per token
}
RECURRENCE_INPUT = {"LSTM": 2, "GRU": 2, "RNN": 2}  # R [dirs, gates*hidden, hidden], same axis
QMAX = 127  # symmetric int8: -127..127, so a weight and its negation round alike
# One scale per output channel unless the channels hold fewer weights than this: then the
# scales (4 bytes each) would cost more than a quarter of the int8 weights they serve, as on an
# LSTM reading one input value (a weight per channel).
MIN_PER_CHANNEL = 16


def _float_weights(proto: Any) -> Iterator[tuple[Any, str, Any, int | None]]:
    """(node, weight name, initializer, output-channel axis) for each float32 constant weight
    an operator of ``WEIGHT_INPUTS`` reads (an initializer a caller may override excluded)."""
    from onnx import TensorProto

    inits = initializers(proto.graph)
    inputs = {i.name for i in proto.graph.input}
    for node in proto.graph.node:
        if node.op_type not in WEIGHT_INPUTS:
            continue
        at, axis = WEIGHT_INPUTS[node.op_type]
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis = 0 if trans_b else 1
        indices = [at] + ([RECURRENCE_INPUT[node.op_type]]
                          if node.op_type in RECURRENCE_INPUT else [])
        for index in indices:
            name = node.input[index] if len(node.input) > index else ""
            init = inits.get(name)
            if init is not None and init.data_type == TensorProto.FLOAT and name not in inputs:
                yield node, name, init, axis


def weights_to_store(proto: Any, min_weights: int, exclude: Sequence[str]) -> dict[str, int | None]:
    """Float32 initializers to store in int8 -> the axis of their output channels."""
    readers = consumers(proto.graph)
    excluded = set(exclude)
    found: dict[str, int | None] = {}
    for node, name, init, axis in _float_weights(proto):
        if node.name in excluded or int(np.prod(init.dims)) < max(min_weights, 1):
            continue
        if any(r.name in excluded for r in readers.get(name, [])):
            continue  # a kept-in-float layer reads it too
        found[name] = axis
    return found


def small_weights(proto: Any, min_weights: int) -> dict[str, int]:
    """The nodes whose weights all stay float32 for having fewer than ``min_weights`` values
    -> their largest weight's size: what ``quantize`` names when it keeps small layers (an
    LSTM whose input weights are small but whose recurrent ones are stored is not one)."""
    largest: dict[str, int] = {}
    for node, _, init, _ in _float_weights(proto):
        largest[node.name] = max(int(np.prod(init.dims)), largest.get(node.name, 0))
    return {name: size for name, size in largest.items() if size < min_weights}


def quantize_weight(values: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of ``values`` and the float32 scale, one per slice along ``axis`` (shaped
    to broadcast against ``values``) or one for the tensor with ``axis=None``."""
    values = np.asarray(values, dtype=np.float32)
    if axis is None:
        peak = np.max(np.abs(values), keepdims=True)
    else:
        others = tuple(i for i in range(values.ndim) if i != axis % values.ndim)
        peak = np.max(np.abs(values), axis=others, keepdims=True)
    scale = np.where(peak > 0, peak / QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(values / scale), -QMAX, QMAX).astype(np.int8)
    return q, scale


def store_weights_int8(proto: Any, per_channel: bool = True, min_weights: int = 1024,
                       exclude: Sequence[str] = ()) -> dict[str, int]:
    """Replace every large float weight (see ``WEIGHT_INPUTS``; at least ``min_weights``
    elements) with ``Mul(Cast(int8), scale)``, in place. Nodes named in ``exclude`` keep their
    float weights. Returns the weights replaced and their element counts."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    chosen = weights_to_store(proto, min_weights, exclude)
    inits = initializers(graph)
    taken = set(inits) | {t for n in graph.node for t in (*n.input, *n.output, n.name)}

    def unique(name: str) -> str:
        new, k = name, 1
        while new in taken:
            new, k = f"{name}_{k}", k + 1
        taken.add(new)
        return new

    nodes, replaced = [], {}
    for name, axis in chosen.items():
        values = numpy_helper.to_array(inits[name])
        q, scale = quantize_weight(values, axis if per_channel else None)
        if scale.size > 1 and values.size < MIN_PER_CHANNEL * scale.size:
            q, scale = quantize_weight(values, None)
        stored, scaled, as_float = unique(f"{name}_int8"), unique(f"{name}_scale"), \
            unique(f"{name}_float")
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(q, stored),
                                  numpy_helper.from_array(scale, scaled)])
        # The Mul writes the weight's own name, so the layers reading it are unchanged.
        nodes += [helper.make_node("Cast", [stored], [as_float], name=unique(f"{name}_cast"),
                                   to=TensorProto.FLOAT),
                  helper.make_node("Mul", [as_float, scaled], [name],
                                   name=unique(f"{name}_scaled"))]
        replaced[name] = int(values.size)
    if nodes:  # the constants first, so the graph stays in topological order
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)
    return replaced
