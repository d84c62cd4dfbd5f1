"""What a quantized model file carries that nothing reads, removed without changing a result.

onnxruntime's quantizers and the float16 converter leave three kinds of dead weight, which on
the zoo's small models is several percent of the file:

- ``value_info``: the shape inference results of ``quant_pre_process`` (or the converter's
  type annotations), one entry per intermediate tensor. onnxruntime infers them again when it
  loads the model; the float32 export does not carry them either.
- opset imports no node uses: the quantizer declares every domain it knows (``ai.onnx.training``,
  ``org.pytorch.aten``, ...), which ``edge-infer info`` then reports as if the model needed them.
- the zero points of int32 biases: the quantizer writes an all-zero int32 tensor per bias, as
  large as the bias itself. ``DequantizeLinear``'s zero point is optional and defaults to 0, and
  onnxruntime still fuses the bias into ``QLinearConv``/``QGemm`` without it. The weights'
  (int8) zero points stay: onnxruntime's ``QGemm`` fusion requires them.

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


def tidy(proto: Any) -> dict[str, int]:
    """Every pass above; returns what each removed."""
    return {"value_info": drop_value_info(proto),
            "opset_imports": declare_used_opsets(proto),
            "bias_zero_points": drop_zero_bias_points(proto)}
