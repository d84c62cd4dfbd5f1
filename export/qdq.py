"""Passes over a static (QDQ) INT8 model around onnxruntime's quantizer.

``thin_conv_layers`` and ``pool_before_activation``: a convolution reading few channels (the
first one of an image model: 1 for grey, 3 for RGB) on a small image (at most 32x32 pixels out)
stays float32. onnxruntime's CPU ``QLinearConv`` loops over the images of a batch and runs a
GEMM per image; with 1 to 4 input channels that GEMM is too small (9 to 36 products per output)
to pay for the loop, and the float32 ``Conv`` takes the batch whole. One 3x3 conv + relu + 2x2
pool to 32 channels, QDQ U8S8 per channel against float32, time ratio (``python
benchmarks/int8_kernels.py``; 2 cores of a Xeon with AVX-512 VNNI, onnxruntime 1.32):

    input channels   8x8 batch 1   8x8 batch 64   32x32 batch 1   32x32 batch 64
    1                1.39x slower  8.1x slower    1.74x slower    3.3x slower
    3                1.26x         7.0x           1.63x           2.6x
    4                1.27x         4.5x           1.01x           1.28x
    8                1.29x         2.5x           0.96x (faster)  1.00x
    32               0.92x         1.21x          0.72x           0.59x

Kept in float, such a convolution is followed by a float max pool, then the quantization of the
next layer's input; onnxruntime's ``QDQPropagationTransformer`` then moves that
``QuantizeLinear`` up past the pool, and the pool runs on uint8 in NCHW, a slow kernel (22 us
in float32, 492 us in uint8 on ``[64, 32, 8, 8]``: ``int8_levers.py``).
``pool_before_activation`` swaps the ``Relu`` and the ``MaxPool`` (the same values: a max of
rectified inputs is the rectified max), so a ``Relu`` stands before the ``QuantizeLinear`` and
the pass stops there; onnxruntime then drops that ``Relu`` into the quantization (its zero
point already clips at 0).

On the digits ``cnn``, against the same model all in INT8 and against float32
(``python benchmarks/compare.py A B --batch 1 --batch 64 --runs 3000 [--threads 2]``, calls
alternating, same machine): with one thread, batch 64 113.5 against 210.4 us (all INT8) and
116.5 against 212.4 us (float32), batch 1 1.15x and 1.02x faster; with two threads, batch 64
145.1 against 209.1 us (all INT8) and level with float32 (138.5 against 136.5 us). What two
threads lost was a ``Transpose`` onnxruntime put between the float32 pool and the next, NHWC,
``QLinearConv``: 70 us with two threads, 5.5 us with one (``int8_kernels.py``).
``channels_last_handover`` removes it: it hands the pooled tensor over in NHWC (a ``Transpose``
there, and a ``Reshape`` to the same shape that keeps onnxruntime from moving it away), which
onnxruntime folds into the float32 pool's ``ReorderOutput`` (``channels_last``), and a
``Transpose`` back before the ``Conv`` cancels against the one onnxruntime's NHWC
``QLinearConv`` needs. The values do not change. Digits ``cnn``, ``edge-infer bench`` of
float32, all-INT8, and the recipe without and with it, two threads, two runs: batch 64 0.65x to
0.69x, 0.80x to 0.82x, and 1.44x to 1.63x the speed of float32; batch 1 1.10x, 0.98x to 1.06x,
and 1.08x to 1.16x.

``float_head``: the classifier head computes its output in float. onnxruntime's quantizer puts
a Quantize/Dequantize pair on every activation, the model's output included: a softmax head
then runs as ``QGemm -> QLinearSoftmax -> DequantizeLinear`` and the probabilities the user
sees are uint8 steps of the calibrated range: at most 256 distinct values, a confident 0.9997
reads 0.9961 and the runners-up tie at 0.0000. The pass keeps the last dense layer's int8
arithmetic but lets it write float (onnxruntime fuses ``DQ -> Gemm`` without an output pair
into ``QGemm`` with float output) and runs the softmax in float, as TFLite's float-output
models do.

Measured on one trained digits ``cnn`` (``edge-infer quantize model.onnx --method static``
before and after, test split of 359 digits, 2 AVX2 cores, onnxruntime 1.32): top-1 agreement
with float32 99.44 -> 99.72%, largest output difference 0.038 -> 0.029, accuracy
0.9721 -> 0.9749, file 34.2 -> 33.1 KiB; the optimised graph loses one operator and batch-1
latency is level (40.9 vs 40.1 us bound).
"""

from __future__ import annotations

import math
from typing import Any

from .simplify import consumers, producers, remove_dead

HEAD_ACTIVATIONS = ("Softmax", "Sigmoid", "LogSoftmax")
THIN_CONV_CHANNELS = 4  # convolutions reading at most this many channels stay float32,
THIN_CONV_PIXELS = 32 * 32  # when they write at most this many pixels per image (see below)
MONOTONE_ACTIVATIONS = ("Relu", "Clip")  # commute with a max pool
FLOAT_OUTPUT_OPS = ("Gemm", "MatMul")  # onnxruntime fuses these with a float output
# Operators (and the versions of them) that onnxruntime's QDQPropagationTransformer carries a
# DequantizeLinear forward through (``qdq_propagation.cc``: ``CanNodePropagate``), limited to
# those checked on onnxruntime 1.16 to 1.32 (the opset-19 Reshape and Slice are left out).
PROPAGATED = {"MaxPool": {12}, "Reshape": {5, 13, 14}, "Transpose": {1, 13}}


def head_activations(proto: Any) -> list[str]:
    """Names of the softmax/sigmoid nodes that produce a graph output: pass them to the
    quantizer's ``nodes_to_exclude`` so their output gets no Quantize/Dequantize pair."""
    outputs = {o.name for o in proto.graph.output}
    return [n.name for n in proto.graph.node
            if n.op_type in HEAD_ACTIVATIONS and any(o in outputs for o in n.output)]


def float_head(proto: Any, activations: list[str]) -> int:
    """Drop the Quantize/Dequantize pair between a ``Gemm``/``MatMul`` and each named (float)
    head activation, so the activation reads the dense layer's float output. Returns the
    number of heads changed; a pattern that does not match exactly is left alone."""
    graph = proto.graph
    producer = producers(graph)
    readers = consumers(graph)
    outputs = {o.name for o in graph.output}
    wanted = set(activations)
    changed = 0
    for act in graph.node:
        if act.name not in wanted or not act.input:
            continue
        dq = producer.get(act.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
            else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        dense = producer.get(q.input[0])
        if dense is None or dense.op_type not in FLOAT_OUTPUT_OPS:
            continue
        # Only when the pair serves this activation alone and nothing else reads it.
        private = ([c.name for c in readers.get(dense.output[0], [])] == [q.name]
                   and [c.name for c in readers.get(q.output[0], [])] == [dq.name]
                   and [c.name for c in readers.get(dq.output[0], [])] == [act.name]
                   and not {dense.output[0], q.output[0], dq.output[0]} & outputs)
        if not private:
            continue
        act.input[0] = dense.output[0]
        changed += 1
    if changed:
        remove_dead(proto)
    return changed


def thin_conv_layers(proto: Any, max_channels: int = THIN_CONV_CHANNELS,
                     max_pixels: int = THIN_CONV_PIXELS) -> list[str]:
    """The layers (or, unscoped, the nodes) of the ``Conv`` nodes reading at most
    ``max_channels`` input channels (weights ``[out, in / group, kh, kw]``) and writing at most
    ``max_pixels`` pixels per image (a static, inferred output shape), in graph order: what
    the static recipe keeps in float. The whole layer, so that its activation stays float with
    it. Larger images are left to INT8: MobileNetV2's first convolution (3 channels, 112x112
    out) kept in float32 ran 0% to 6% slower at batch 1 and 8 than all INT8 (``edge-infer
    bench``), where each image's GEMM is large enough."""
    from edge_infer.runtime.modelfile import layer_of

    from .simplify import _shapes

    weights = {t.name: t for t in proto.graph.initializer}
    thin = []
    for node in proto.graph.node:
        w = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 \
            else None
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if w is not None and len(w.dims) >= 3 and w.dims[1] * group <= max_channels:
            thin.append(node)
    try:
        shapes = _shapes(proto) if thin else {}
    except Exception:  # onnx's shape inference refuses some graphs: sizes then unknown
        shapes = {}
    found: list[str] = []
    for node in thin:
        spatial = (shapes.get(node.output[0]) or [])[2:]
        pixels = math.prod(d or 0 for d in spatial)  # a dimension unknown: 0, not small
        name = layer_of(node.name) or node.name
        if spatial and 0 < pixels <= max_pixels and name not in found:
            found.append(name)
    return found


def _quantized_input(node: Any, producer: dict[str, Any]) -> bool:
    """Whether ``node`` reads a dequantized tensor: it is in the quantized part of the graph,
    where onnxruntime fuses it with its Quantize/Dequantize pairs and the float passes below
    leave it alone."""
    source = producer.get(node.input[0]) if node.input else None
    return source is not None and source.op_type == "DequantizeLinear"


def pool_before_activation(proto: Any) -> int:
    """Where a float ``Relu`` (or ``Clip``) feeds only a ``MaxPool`` whose output is quantized,
    run the pool first and the activation on its output (see the module docstring). The
    pooled tensor keeps its name and its values. Returns the number of pairs swapped."""
    graph = proto.graph
    producer = producers(graph)
    readers = consumers(graph)
    outputs = {o.name for o in graph.output}
    swapped = 0
    for act in list(graph.node):
        if (act.op_type not in MONOTONE_ACTIVATIONS or act.output[0] in outputs
                or _quantized_input(act, producer)):
            continue
        after = readers.get(act.output[0], [])
        if len(after) != 1 or after[0].op_type != "MaxPool" or len(after[0].output) != 1:
            continue
        pool = after[0]
        if not any(r.op_type == "QuantizeLinear" for r in readers.get(pool.output[0], [])):
            continue
        pooled, between = pool.output[0], f"{pool.output[0]}_preact"
        first, second = type(pool)(), type(act)()
        first.CopyFrom(pool)
        second.CopyFrom(act)
        first.input[0], first.output[0] = act.input[0], between
        second.input[0], second.output[0] = between, pooled
        act.CopyFrom(first)  # the activation's place, earlier in the graph, takes the pool
        pool.CopyFrom(second)
        swapped += 1
    return swapped


def channels_last_handover(proto: Any) -> int:
    """Where a float ``MaxPool``'s output goes through a (monotone) activation into a
    per-tensor ``QuantizeLinear``/``DequantizeLinear`` pair read by one ``Conv`` only (what
    :func:`pool_before_activation` leaves after a float32 thin convolution), hand it over in
    NHWC: ``Transpose`` to NHWC and a ``Reshape`` to the same shape after the pool, and a
    ``Transpose`` back to NCHW before the ``Conv`` (see the module docstring). Returns the
    number of handovers."""
    import numpy as np
    from onnx import helper, numpy_helper

    from edge_infer.runtime.modelfile import layer_of

    graph = proto.graph
    producer = producers(graph)
    readers = consumers(graph)
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}

    def only(tensor: str, op: str) -> Any:
        found = readers.get(tensor, [])
        ok = len(found) == 1 and found[0].op_type == op and tensor not in outputs
        return found[0] if ok else None

    before: dict[str, list[Any]] = {}  # node name -> nodes to insert before it
    keep = "channels_last_keep_shape"
    done = 0
    for pool in list(graph.node):
        if (pool.op_type != "MaxPool" or len(pool.output) != 1
                or _quantized_input(pool, producer)):
            continue
        act = next((r for r in readers.get(pool.output[0], [])
                    if r.op_type in MONOTONE_ACTIVATIONS), None)
        if act is None or len(readers.get(pool.output[0], [])) != 1:
            continue
        q = only(act.output[0], "QuantizeLinear")
        dq = only(q.output[0], "DequantizeLinear") if q is not None else None
        conv = only(dq.output[0], "Conv") if dq is not None else None
        scale = inits.get(q.input[1]) if q is not None else None
        if (conv is None or scale is None or list(scale.dims) not in ([], [1])
                or conv.input[0] != dq.output[0] or not act.name or not conv.name):
            continue
        pooled, handed = pool.output[0], act.output[0]
        scope = layer_of(pool.name) or pool.name
        to_nhwc = helper.make_node("Transpose", [pooled], [f"{pooled}_nhwc"], perm=[0, 2, 3, 1],
                                   name=f"{scope}/channels_last")
        kept = helper.make_node("Reshape", [f"{pooled}_nhwc", keep], [f"{pooled}_nhwc_kept"],
                                name=f"{scope}/channels_last_kept")
        act.input[0] = kept.output[0]
        # The tensor the quantizer named keeps its name and layout (NCHW, dequantized, as the
        # Conv reads it): the per-layer errors pair it with the float model's.
        act.output[0] = q.input[0] = f"{handed}_nhwc"
        back = helper.make_node("Transpose", [dq.output[0]], [handed], perm=[0, 3, 1, 2],
                                name=f"{scope}/channels_first")
        conv.input[0] = handed
        before.setdefault(act.name, []).extend([to_nhwc, kept])
        before.setdefault(conv.name, []).append(back)
        done += 1
    if done:
        if keep not in inits:  # 0 copies a dimension: the same shape, in four dimensions
            graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, -1], np.int64),
                                                             keep))
        nodes = []
        for node in graph.node:
            nodes.extend(before.get(node.name, []))
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
    return done


def _propagates(node: Any, opset: int) -> bool:
    from onnx import defs

    versions = PROPAGATED.get(node.op_type)
    if versions is None or node.domain not in ("", "ai.onnx"):
        return False
    try:
        since = defs.get_schema(node.op_type, opset, "").since_version
    except Exception:  # an operator this onnx does not know at that opset
        return False
    return since in versions


def drop_propagated_pairs(proto: Any) -> int:
    """Drop each ``QuantizeLinear -> DequantizeLinear`` pair that onnxruntime would put back
    itself: one after a ``MaxPool``, ``Transpose`` or ``Reshape`` (or a chain of them) that
    reads a per-tensor ``DequantizeLinear`` with the same scale and zero point. When it loads
    the model, onnxruntime's ``QDQPropagationTransformer`` carries that ``DequantizeLinear``
    forward past each such operator and inserts the same pair after it, so the graph it runs
    does not change; the file loses two nodes and two tensor names per pair. Returns the
    number of pairs dropped.

    The quantizer writes these pairs around every operator it treats as quantized, so a
    max pool, the transpose and the reshape of a ``Flatten`` each carry one. On the digits
    ``cnn`` (static, one epoch) three pairs, 1,202 bytes; ``cifar_cnn`` three, 1,171 bytes;
    ``gan`` two, 869. Each zoo model's static file (and the lstm's and mlp's dynamic ones,
    where nothing matches) gave the same optimised graph and the same outputs, to the bit,
    with and without this pass and ``tidy.shorten_names``, on onnxruntime 1.16.3, 1.17.3,
    1.18.1, 1.19.2, 1.20.1, 1.21.1, 1.22.1, 1.23.2, 1.24.4 and 1.32.0
    (``python benchmarks/ort_versions.py --compaction``). TensorRT and OpenVINO propagate
    across these operators too (TensorRT's "commuting" layers, OpenVINO's
    precision-preserving ones)."""
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    dropped = 0
    while (pair := _propagated_pair(graph, opset)) is not None:
        q, dq, moved = pair
        for node in consumers(graph).get(dq.output[0], []):
            node.input[:] = [moved if name == dq.output[0] else name for name in node.input]
        graph.node.remove(q)
        graph.node.remove(dq)
        dropped += 1
    return dropped


def _propagated_pair(graph: Any, opset: int) -> tuple[Any, Any, str] | None:
    """The first pair :func:`drop_propagated_pairs` may drop: its ``QuantizeLinear``, its
    ``DequantizeLinear`` and the tensor the pair's readers should read instead."""
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    producer = producers(graph)
    readers = consumers(graph)

    def single(tensor: str) -> Any:
        found = readers.get(tensor, [])
        return found[0] if len(found) == 1 and tensor not in outputs else None

    def scalar(name: str) -> bool:
        return name in inits and list(inits[name].dims) in ([], [1])

    for q in graph.node:
        mover = producer.get(q.input[0]) if q.op_type == "QuantizeLinear" else None
        if mover is None or not _propagates(mover, opset) or single(q.input[0]) is not q:
            continue
        source = producer.get(mover.input[0])
        while (source is not None and _propagates(source, opset)
               and single(source.output[0]) is not None):
            source = producer.get(source.input[0])
        dq = single(q.output[0])
        if (source is not None and source.op_type == "DequantizeLinear" and dq is not None
                and dq.op_type == "DequantizeLinear" and dq.output[0] not in outputs
                and single(source.output[0]) is not None
                and list(source.input[1:]) == list(q.input[1:]) == list(dq.input[1:])
                and all(scalar(name) for name in q.input[1:])):
            return q, dq, mover.output[0]
    return None
