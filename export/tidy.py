"""What a quantized model file carries that nothing reads, removed without changing a result.

onnxruntime's quantizers and the float16 converter leave three kinds of dead weight, which on
the zoo's small models is several percent of the file:

- ``value_info``: the shape inference results of ``quant_pre_process`` (or the converter's
  type annotations), one entry per intermediate tensor. onnxruntime infers them again when it
  loads the model; the float32 export does not carry them either.
- opset imports no node uses: the quantizer declares every domain it knows (``ai.onnx.training``,
  ``org.pytorch.aten``, ...), which ``edge-infer info`` then reports as if the model needed them.
- the ``onnx.infer`` and ``onnx.quant.pre_process`` metadata entries ``quant_pre_process``
  writes, which only say that it ran.
- the zero points of int32 biases: the quantizer writes an all-zero int32 tensor per bias, as
  large as the bias itself. ``DequantizeLinear``'s zero point is optional and defaults to 0, and
  onnxruntime still fuses the bias into ``QLinearConv``/``QGemm`` without it. The weights'
  (int8) zero points stay: onnxruntime's ``QGemm`` fusion requires them.

One pass changes names rather than removing anything: the quantizer names what it adds by
appending long suffixes to the float tensor's name (``conv2d_1/Relu_DequantizeLinear_Output``,
``probabilities/kernel_zero_point``), each written once where it is produced and once where
it is read. ``shorten_names`` swaps the suffixes for short ones (``_dq``, ``_zp``); the float
tensor names stay, so the layer scope and the pairing of the per-layer errors with the float
model are kept. Static files, one-epoch zoo models: ``cnn`` 894 bytes, ``cifar_cnn`` 1,503,
``conv_autoencoder`` 1,758 (11% of its file); dynamic ``lstm`` 104.

Measured with ``edge-infer quantize`` before and after (onnxruntime 1.32): the digits ``cnn``'s
static INT8 file 33,894 -> 32,430 bytes (38.1% -> 36.5% of float32), with the optimised graph
unchanged (``QuantizeLinear, QLinearConv, NhwcMaxPool, QLinearConv, NhwcMaxPool, Reshape, QGemm,
Softmax``) and the accuracy and agreement the same; the sequence ``lstm``'s dynamic INT8 file
44,495 -> 43,166 bytes (35.9% -> 34.8%).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def declare_used_opsets(proto: Any) -> int:
    """Keep only the opset imports of domains a node uses (the default domain always stays).
    Returns the number removed."""
    used = {node.domain or "" for node in proto.graph.node} | {""}
    keep = [op for op in proto.opset_import if (op.domain or "") in used]
    removed = len(proto.opset_import) - len(keep)
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return removed


def drop_value_info(proto: Any) -> int:
    """Remove the main graph's intermediate shape/type annotations; returns how many."""
    count = len(proto.graph.value_info)
    del proto.graph.value_info[:]
    return count


def drop_zero_bias_points(proto: Any) -> int:
    """Drop the all-zero zero point of every ``DequantizeLinear`` that reads an int32
    initializer (a quantized bias). Returns the number of zero points dropped."""
    from onnx import TensorProto, numpy_helper

    from .simplify import initializers, remove_dead

    graph = proto.graph
    inits = initializers(graph)
    dropped = set()
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) != 3:
            continue
        value, zero_point = inits.get(node.input[0]), inits.get(node.input[2])
        if value is None or zero_point is None or value.data_type != TensorProto.INT32:
            continue
        if np.any(numpy_helper.to_array(zero_point)):
            continue
        del node.input[2]
        dropped.add(zero_point.name)
    if dropped:
        remove_dead(proto)  # the zero points no node reads any more
    return len(dropped)


# onnxruntime's quantizer suffixes (onnxruntime/quantization/quant_utils.py and qdq_quantizer.py)
# -> short ones. Initializers holding quantized values take their type instead (``_int8``).
SHORT_SUFFIXES = (("_QuantizeLinear_Output", "_q"), ("_DequantizeLinear_Output", "_dq"),
                  ("_QuantizeLinear", "_q"), ("_DequantizeLinear", "_dq"),
                  ("_quantized_scale", "_qscale"), ("_quantized_zero_point", "_qzp"),
                  ("_zero_point", "_zp"))
QUANTIZED_SUFFIX = "_quantized"


def _short(name: str, initializer: Any | None) -> str:
    from onnx import TensorProto

    for long, short in SHORT_SUFFIXES:
        if name.endswith(long):
            return name[: -len(long)] + short
    if name.endswith(QUANTIZED_SUFFIX) and initializer is not None:
        kind = TensorProto.DataType.Name(initializer.data_type).lower()
        return name[: -len(QUANTIZED_SUFFIX)] + "_" + kind
    return name


def shorten_names(proto: Any) -> int:
    """Give the tensors and nodes the quantizer named with a long suffix a short one (see the
    module docstring). A name already taken keeps its long form; graph inputs and outputs keep
    theirs, and a graph with subgraphs (which may read outer tensors by name) is left as it is.
    Returns the number of names changed."""
    from onnx import AttributeProto

    graph = proto.graph
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
           for node in graph.node for a in node.attribute):
        return 0
    inits = {t.name: t for t in graph.initializer}
    fixed = {v.name for v in list(graph.input) + list(graph.output)}
    tensors = set(inits) | {n for node in graph.node for n in [*node.input, *node.output]}
    renamed: dict[str, str] = {}
    for name in sorted(tensors - fixed - {""}):
        new = _short(name, inits.get(name))
        if new != name and new not in tensors and new not in renamed.values():
            renamed[name] = new
    for node in graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for tensor in [*graph.initializer, *graph.value_info]:
        tensor.name = renamed.get(tensor.name, tensor.name)
    taken = {node.name for node in graph.node}
    nodes = 0
    for node in graph.node:
        new = _short(node.name, None)
        if new != node.name and new not in taken:
            taken.add(new)
            node.name = new
            nodes += 1
    return len(renamed) + nodes


def drop_tool_props(proto: Any) -> int:
    """Remove the metadata entries onnxruntime's quantization tools write about themselves
    (``onnx.infer``, ``onnx.quant.pre_process``). Returns how many."""
    keep = [p for p in proto.metadata_props if not p.key.startswith("onnx.")]
    removed = len(proto.metadata_props) - len(keep)
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    return removed


def tidy(proto: Any) -> dict[str, int]:
    """Every pass above; returns what each removed (or, for names, changed)."""
    return {"value_info": drop_value_info(proto),
            "opset_imports": declare_used_opsets(proto),
            "bias_zero_points": drop_zero_bias_points(proto),
            "tool_props": drop_tool_props(proto),
            "names": shorten_names(proto)}
