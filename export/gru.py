"""Keras 3 ``GRU`` layers as ONNX's fused ``GRU`` operator instead of a ``Loop``.

tf2onnx 1.17 recognises Keras 2's GRU cell, not Keras 3's: Keras 3 keeps both biases in one
``(2, 3 * units)`` variable and slices the recurrent projection with ``StridedSlice`` instead of
``Split``. Its GRU then converts to a generic ``Loop`` of 76 operators that runs one time step
per iteration: on the 50-step ``waves`` GRU, 3.5 ms at batch 1 where the fused LSTM of the same
size takes 0.3 ms. This module adds a tf2onnx rewriter for the Keras 3 cell:

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

import contextlib
from collections.abc import Iterator
from typing import Any

CONTEXT = "edge_infer_keras3_gru"  # attribute set on a loop body graph that holds a Keras 3 GRU
COMMUTATIVE = ("Add", "AddV2", "Mul")
ACTIVATIONS = "Tanh|Relu|Sigmoid"  # the candidate activations ONNX's GRU and TF share by name


def _pair(node: Any, first: str, second: str) -> tuple[Any, Any] | None:
    """The two inputs of ``node`` as (``first``-typed, ``second``-typed), in either order for a
    commutative operator; ``None`` when they are not those types."""
    if node is None or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if a is not None and b is not None:
        if _is(a, first) and _is(b, second):
            return a, b
        if node.type in COMMUTATIVE and _is(b, first) and _is(a, second):
            return b, a
    return None


def _is(node: Any, types: str) -> bool:
    return node is not None and node.type in types.split("|")


def _output_index(consumer: Any, producer: Any) -> int | None:
    """Which output of ``producer`` ``consumer`` reads (``Split`` outputs are ``name:k``)."""
    for name in consumer.input:
        if name in producer.output:
            return producer.output.index(name)
    return None


def _slice_start(g: Any, strided: Any) -> int | None:
    begin = strided.inputs[1]
    if not begin.is_const():
        return None
    return int(g.get_tensor_value(begin.output[0], as_list=True)[-1])


def _graph_input(g: Any, node: Any) -> int | None:
    """The index of the body graph input ``node`` is, or reads through ``Identity`` (how a
    variable read appears); ``None`` when it is not one."""
    while node is not None and node.type == "Identity":
        node = node.inputs[0]
    if node is None or not node.is_graph_input():
        return None
    return g.input_names.index(node.output[0])


def match_cell(g: Any, ops: list[Any]) -> dict[str, Any] | None:
    """The loop inputs of a Keras 3 GRU cell in a loop body graph, or ``None``."""
    writes = [n for n in ops if n.type == "TensorListSetItem"]
    if len(writes) != 1 or not writes[0].inputs[0].is_graph_input():
        return None
    h = writes[0].inputs[2]  # no Select between the cell and the write: no masking
    if not _is(h, "Add|AddV2"):
        return None
    kept = next((m for m in h.inputs if _is(m, "Mul") and _pair(m, "Sigmoid", "Placeholder")),
                None)
    new = next((m for m in h.inputs if _is(m, "Mul") and _pair(m, "Sub", ACTIVATIONS)), None)
    if kept is None or new is None:
        return None
    z, state = _pair(kept, "Sigmoid", "Placeholder")
    sub, activation = _pair(new, "Sub", ACTIVATIONS)
    one = sub.inputs[0]
    if not (one.is_const() and sub.inputs[1] is z
            and float(g.get_tensor_value(one.output[0], as_list=False).reshape(-1)[0]) == 1.0):
        return None
    # hh = act(x_h + r * inner_h); z = sigmoid(x_z + inner_z); r = sigmoid(x_r + inner_r)
    candidate = _pair(activation.inputs[0], "Split", "Mul")
    gate_z = _pair(z.inputs[0], "Split", "StridedSlice")
    if candidate is None or gate_z is None:
        return None
    x_split, reset_mul = candidate
    r, slice_h = _pair(reset_mul, "Sigmoid", "StridedSlice") or (None, None)
    gate_r = _pair(r.inputs[0], "Split", "StridedSlice") if r is not None else None
    if gate_r is None or gate_z[0] is not x_split or gate_r[0] is not x_split:
        return None
    slice_z, slice_r = gate_z[1], gate_r[1]
    order = [_output_index(node, x_split) for node in (z.inputs[0], r.inputs[0], activation.inputs[0])]
    inner = slice_z.inputs[0]
    if order != [0, 1, 2] or not all(s.inputs[0] is inner for s in (slice_r, slice_h)):
        return None
    units = g.get_shape(state.output[0])
    starts = [_slice_start(g, s) for s in (slice_z, slice_r, slice_h)]
    if not units or starts != [0, units[-1], 2 * units[-1]]:
        return None
    # x_split = split(x @ W + b_x); inner = h_prev @ R + b_h; (b_x, b_h) = split(bias)
    projection = _pair(x_split.inputs[1], "MatMul", "Squeeze")
    recurrent = _pair(inner, "MatMul", "Squeeze")
    if projection is None or recurrent is None:
        return None
    matmul_x, bias_x = projection
    matmul_h, bias_h = recurrent
    if not (_is(matmul_x.inputs[0], "TensorListGetItem") and matmul_h.inputs[0] is state):
        return None
    bias_split = bias_x.inputs[0]
    if not (_is(bias_split, "Split") and bias_h.inputs[0] is bias_split
            and _output_index(bias_x, bias_split) == 0
            and _output_index(bias_h, bias_split) == 1):
        return None
    indices = {"x": _graph_input(g, matmul_x.inputs[0].inputs[0]),
               "state": _graph_input(g, state),
               "out": _graph_input(g, writes[0].inputs[0]),
               "kernel": _graph_input(g, matmul_x.inputs[1]),
               "recurrent_kernel": _graph_input(g, matmul_h.inputs[1]),
               "bias": _graph_input(g, bias_split.inputs[1])}
    if any(v is None for v in indices.values()):
        return None
    return {**indices, "activation": activation.type}


def rewrite(g: Any, ops: list[Any]) -> list[Any]:
    """The tf2onnx rewriter: record Keras 3 GRU cells on body graphs, replace their loops on
    outer graphs."""
    from tf2onnx.graph_builder import GraphBuilder
    from tf2onnx.rewriter.gru_rewriter import GRUUnitRewriter
    from tf2onnx.rewriter.unit_rnn_rewriter_base import UnitRnnContext
    from tf2onnx.tf_loader import find_function

    cell = match_cell(g, ops)
    if cell is not None:
        setattr(g, CONTEXT, cell)
    for op in ops:
        if not op.is_while():
            continue
        body = find_function(op.get_attr_str("body"))
        found = getattr(body, CONTEXT, None)
        if found is None:
            continue
        names = {k: op.input[v] for k, v in found.items() if k != "activation"}
        weights = ("kernel", "recurrent_kernel", "bias")
        if not all(g.is_const(names[k]) for k in weights):
            continue
        kernel, recurrent, bias = (g.get_tensor_value(names[k], as_list=False) for k in weights)
        sequence = op.inputs[found["x"]]
        if sequence.type != "TensorListFromTensor" or bias.shape[0] != 2:
            continue
        context = UnitRnnContext()
        context.from_keras = True
        context.weights.update({"gate_kernel": kernel, "hidden_kernel": recurrent,
                                "gate_bias": bias[0], "hidden_bias": bias[1]})
        context.attributes["activations"] = ["Sigmoid", found["activation"]]
        context.attributes["linear_before_reset"] = 1
        context.onnx_input_ids["X"] = sequence.input[0]  # time major, as the loop reads it
        context.onnx_input_ids["sequence_lens"] = ""
        context.onnx_input_ids["initial_state"] = GraphBuilder(g).make_unsqueeze(
            {"data": names["state"], "axes": [0]})
        unit = GRUUnitRewriter(g)
        unit.process_weights_and_bias(context)
        gru = unit.create_rnn_node(context)
        sequence_out = GraphBuilder(g).make_squeeze({"data": gru.output[0], "axes": [1]})
        for consumer in g.find_output_consumers(op.output[found["out"]]):
            if consumer.type == "TensorListStack":
                g.replace_all_inputs(consumer.output[0], sequence_out)
        last = GraphBuilder(g).make_squeeze({"data": gru.output[1], "axes": [0]})
        g.replace_all_inputs(op.output[found["state"]], last)
    return g.get_nodes()


@contextlib.contextmanager
def keras3_gru_rewriter() -> Iterator[None]:
    """Run :func:`rewrite` where tf2onnx runs its own GRU rewriter: before loops are turned
    into generic ``Loop`` operators (a ``custom_rewriter`` would run after that). Without that
    hook in a future tf2onnx, conversion goes on and GRUs stay loops. The hook is a module
    attribute, so two conversions must not run in threads of one process at the same time
    (tf2onnx's own global state already forbids that)."""
    from tf2onnx import tfonnx

    original = getattr(tfonnx, "rewrite_gru_tf2", None)
    if original is None:
        yield
        return

    def both(g: Any, ops: list[Any]) -> list[Any]:
        return rewrite(g, original(g, ops))

    tfonnx.rewrite_gru_tf2 = both
    try:
        yield
    finally:
        tfonnx.rewrite_gru_tf2 = original
