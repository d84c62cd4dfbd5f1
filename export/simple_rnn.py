"""Keras 3 ``SimpleRNN`` layers as ONNX's fused ``RNN`` operator instead of a ``Loop``.

tf2onnx has no rewriter for a plain recurrent cell, Keras 2's or 3's: a ``SimpleRNN`` converts
to a generic ``Loop`` that runs one time step per iteration. The Keras 3 cell is
``h = act(x @ W + b + h_prev @ R)`` (``MatMul``, ``BiasAdd``, ``MatMul``, ``AddV2``, the
activation), which is exactly ONNX's ``RNN`` with ``W = W^T``, ``R = R^T`` and ``B = [b, 0]``.
This module is that cell for edge-infer's rewriter (:mod:`.rnn_rewriter`).

The activation may be tanh (Keras' default), relu or sigmoid; without a bias (``use_bias=False``)
the bias is zeros. Anything else (masking, other activations) is left to tf2onnx's ``Loop``,
which is correct, only slower; the exporter's parity check compares the result with Keras
either way.
"""

from __future__ import annotations

from typing import Any

from .cell_match import ACTIVATIONS, Cell, graph_input, is_op, sequence_write


def match_cell(g: Any, ops: list[Any]) -> dict[str, Any] | None:
    """The loop inputs of a Keras 3 ``SimpleRNN`` cell in a loop body graph, or ``None``."""
    write = sequence_write(ops)
    if write is None:
        return None
    activation = write.inputs[2]  # no Select between the cell and the write: no masking
    if not is_op(activation, ACTIVATIONS):
        return None
    total = activation.inputs[0]
    if not is_op(total, "Add|AddV2") or len(total.inputs) != 2:
        return None
    # one side projects the step's input, the other the previous state; the bias (a BiasAdd on
    # either side, Keras puts it on the input's) is added to the sum either way
    projections, biases = [], []
    for side in total.inputs:
        if is_op(side, "BiasAdd"):
            biases.append(side.inputs[1])
            side = side.inputs[0]
        if not is_op(side, "MatMul") or side.get_attr_value("transpose_a") \
                or side.get_attr_value("transpose_b"):
            return None
        projections.append(side)
    step = [p for p in projections if is_op(p.inputs[0], "TensorListGetItem")]
    recurrent = [p for p in projections if p.inputs[0].is_graph_input()]
    if len(step) != 1 or len(recurrent) != 1 or len(biases) > 1:
        return None
    found = {"x": graph_input(g, step[0].inputs[0].inputs[0]),
             "state": graph_input(g, recurrent[0].inputs[0]),
             "out": graph_input(g, write.inputs[0]),
             "kernel": graph_input(g, step[0].inputs[1]),
             "recurrent_kernel": graph_input(g, recurrent[0].inputs[1])}
    if biases:
        found["bias"] = graph_input(g, biases[0])
    if any(v is None for v in found.values()) or not _carried(g, found["state"], activation):
        return None
    return {**found, "activation": activation.type}


def _carried(g: Any, index: int, activation: Any) -> bool:
    """Whether the loop carries ``activation`` into the next step as body input ``index``: the
    state the recurrent projection reads is the cell's own output."""
    node = g.get_node_by_output(g.outputs[index]) if index < len(g.outputs) else None
    while node is not None and node.type == "Identity":
        node = node.inputs[0]
    return node is activation


def build(g: Any, found: dict[str, Any], weights: dict[str, Any], sequence: str,
          initial_state: str) -> Any:
    """ONNX's ``RNN`` for a matched cell from Keras' weights (kernels ``[input, units]`` and
    ``[units, units]``, bias ``[units]``)."""
    import numpy as np
    from tf2onnx import utils

    kernel, recurrent = weights["kernel"], weights["recurrent_kernel"]
    units = recurrent.shape[-1]
    if kernel.ndim != 2 or recurrent.shape != (units, units) or kernel.shape[1] != units:
        return None
    bias = weights.get("bias")
    bias = np.zeros(units, kernel.dtype) if bias is None else bias.reshape(-1)
    if bias.shape != (units,):
        return None
    w = g.make_const(utils.make_name("W"), kernel.T[None].copy()).output[0]
    r = g.make_const(utils.make_name("R"), recurrent.T[None].copy()).output[0]
    b = g.make_const(utils.make_name("B"),
                     np.concatenate([bias, np.zeros_like(bias)])[None]).output[0]
    return g.make_node("RNN", [sequence, w, r, b, "", initial_state], output_count=2,
                       attr={"hidden_size": int(units), "activations": [found["activation"]]})


CELL = Cell("RNN", match_cell, ("kernel", "recurrent_kernel", "bias"), build)
