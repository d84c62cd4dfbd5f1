"""Keras 3 ``GRU`` layers as ONNX's fused ``GRU`` operator instead of a ``Loop``.

tf2onnx 1.17 recognises Keras 2's GRU cell, not Keras 3's: Keras 3 keeps both biases in one
``(2, 3 * units)`` variable and slices the recurrent projection with ``StridedSlice`` instead of
``Split``. Its GRU then converts to a generic ``Loop`` of 76 operators that runs one time step
per iteration: on the 50-step ``waves`` GRU, 3.5 ms at batch 1 where the fused LSTM of the same
size takes 0.3 ms. This module is the GRU cell of edge-infer's rewriter (:mod:`.rnn_rewriter`):

- on the loop's body graph it checks the cell, step by step (``h = z * h_prev + (1 - z) * hh``,
  ``hh = tanh(x_h + r * (h_prev @ R_h + b_rh))``, ``z`` and ``r`` from the sum of both
  projections, the slices in z, r, h order), and records which loop inputs hold the input
  sequence, the state, the kernels and the bias;
- on the outer graph it replaces the loop with ``GRU`` (``linear_before_reset=1``, which is
  Keras' ``reset_after=True``), W, R and B built from the frozen weights.

The candidate activation may be tanh (Keras' default), relu or sigmoid. Anything else (masking,
``reset_after=False``, ``use_bias=False``, other activations) is left to tf2onnx's ``Loop``,
which is correct, only slower. The exporter's parity check compares the result with Keras either
way.
"""

from __future__ import annotations

from typing import Any

from .cell_match import (ACTIVATIONS, Cell, graph_input, is_op, output_index, pair,
                         sequence_write)


def _slice_start(g: Any, strided: Any) -> int | None:
    begin = strided.inputs[1]
    if not begin.is_const():
        return None
    return int(g.get_tensor_value(begin.output[0], as_list=True)[-1])


def match_cell(g: Any, ops: list[Any]) -> dict[str, Any] | None:
    """The loop inputs of a Keras 3 GRU cell in a loop body graph, or ``None``."""
    write = sequence_write(ops)
    if write is None:
        return None
    h = write.inputs[2]  # no Select between the cell and the write: no masking
    if not is_op(h, "Add|AddV2"):
        return None
    kept = next((m for m in h.inputs if is_op(m, "Mul") and pair(m, "Sigmoid", "Placeholder")),
                None)
    new = next((m for m in h.inputs if is_op(m, "Mul") and pair(m, "Sub", ACTIVATIONS)), None)
    if kept is None or new is None:
        return None
    z, state = pair(kept, "Sigmoid", "Placeholder")
    sub, activation = pair(new, "Sub", ACTIVATIONS)
    one = sub.inputs[0]
    if not (one.is_const() and sub.inputs[1] is z
            and float(g.get_tensor_value(one.output[0], as_list=False).reshape(-1)[0]) == 1.0):
        return None
    # hh = act(x_h + r * inner_h); z = sigmoid(x_z + inner_z); r = sigmoid(x_r + inner_r)
    candidate = pair(activation.inputs[0], "Split", "Mul")
    gate_z = pair(z.inputs[0], "Split", "StridedSlice")
    if candidate is None or gate_z is None:
        return None
    x_split, reset_mul = candidate
    r, slice_h = pair(reset_mul, "Sigmoid", "StridedSlice") or (None, None)
    gate_r = pair(r.inputs[0], "Split", "StridedSlice") if r is not None else None
    if gate_r is None or gate_z[0] is not x_split or gate_r[0] is not x_split:
        return None
    slice_z, slice_r = gate_z[1], gate_r[1]
    order = [output_index(node, x_split) for node in (z.inputs[0], r.inputs[0], activation.inputs[0])]
    inner = slice_z.inputs[0]
    if order != [0, 1, 2] or not all(s.inputs[0] is inner for s in (slice_r, slice_h)):
        return None
    units = g.get_shape(state.output[0])
    starts = [_slice_start(g, s) for s in (slice_z, slice_r, slice_h)]
    if not units or starts != [0, units[-1], 2 * units[-1]]:
        return None
    # x_split = split(x @ W + b_x); inner = h_prev @ R + b_h; (b_x, b_h) = split(bias)
    projection = pair(x_split.inputs[1], "MatMul", "Squeeze")
    recurrent = pair(inner, "MatMul", "Squeeze")
    if projection is None or recurrent is None:
        return None
    matmul_x, bias_x = projection
    matmul_h, bias_h = recurrent
    if not (is_op(matmul_x.inputs[0], "TensorListGetItem") and matmul_h.inputs[0] is state):
        return None
    bias_split = bias_x.inputs[0]
    if not (is_op(bias_split, "Split") and bias_h.inputs[0] is bias_split
            and output_index(bias_x, bias_split) == 0
            and output_index(bias_h, bias_split) == 1):
        return None
    indices = {"x": graph_input(g, matmul_x.inputs[0].inputs[0]),
               "state": graph_input(g, state),
               "out": graph_input(g, write.inputs[0]),
               "kernel": graph_input(g, matmul_x.inputs[1]),
               "recurrent_kernel": graph_input(g, matmul_h.inputs[1]),
               "bias": graph_input(g, bias_split.inputs[1])}
    if any(v is None for v in indices.values()):
        return None
    return {**indices, "activation": activation.type}


def build(g: Any, found: dict[str, Any], weights: dict[str, Any], sequence: str,
          initial_state: str) -> Any:
    """ONNX's ``GRU`` for a matched cell, built by tf2onnx's own GRU unit rewriter from Keras'
    weights (it reorders the gates and splits the biases); ``None`` when the bias is not
    Keras 3's two rows."""
    from tf2onnx.rewriter.gru_rewriter import GRUUnitRewriter
    from tf2onnx.rewriter.unit_rnn_rewriter_base import UnitRnnContext

    bias = weights["bias"]
    if bias.shape[0] != 2:
        return None
    context = UnitRnnContext()
    context.from_keras = True
    context.weights.update({"gate_kernel": weights["kernel"],
                            "hidden_kernel": weights["recurrent_kernel"],
                            "gate_bias": bias[0], "hidden_bias": bias[1]})
    context.attributes["activations"] = ["Sigmoid", found["activation"]]
    context.attributes["linear_before_reset"] = 1
    context.onnx_input_ids["X"] = sequence
    context.onnx_input_ids["sequence_lens"] = ""
    context.onnx_input_ids["initial_state"] = initial_state
    unit = GRUUnitRewriter(g)
    unit.process_weights_and_bias(context)
    return unit.create_rnn_node(context)


CELL = Cell("GRU", match_cell, ("kernel", "recurrent_kernel", "bias"), build)
