"""edge-infer's tf2onnx rewriter for Keras 3 recurrent cells tf2onnx does not recognise.

tf2onnx fuses Keras 2's LSTM and GRU cells; Keras 3's ``GRU`` and any ``SimpleRNN`` reach it as
a ``While`` loop that it converts to a generic ONNX ``Loop``, one iteration per time step. Each
kind of cell this rewriter knows is a :class:`~.cell_match.Cell` in :data:`CELLS`; for each:

- on a loop's body graph, ``match`` checks the cell step by step and records which loop inputs
  hold the input sequence, the state, the output list and the weights;
- on the outer graph, the loop is replaced by the cell's fused operator (``build``) when the
  weights are constants and the sequence is the whole input, read time-major as the loop reads
  it: the stacked outputs become ``Y`` and the final state ``Y_h``.

A loop that does not match stays tf2onnx's ``Loop``, which is correct, only slower; the
exporter's parity check compares the result with Keras either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import gru, simple_rnn
from .cell_match import Cell

CELLS: tuple[Cell, ...] = (gru.CELL, simple_rnn.CELL)
CONTEXT = "edge_infer_keras3_cell"  # attribute set on a loop body graph: (cell, loop inputs)


def rewrite(g: Any, ops: list[Any]) -> list[Any]:
    """The tf2onnx rewriter: record known cells on body graphs, replace their loops on outer
    graphs."""
    from tf2onnx.tf_loader import find_function

    for cell in CELLS:
        found = cell.match(g, ops)
        if found is not None:
            setattr(g, CONTEXT, (cell, found))
            break
    for op in ops:
        if op.is_while():
            recorded = getattr(find_function(op.get_attr_str("body")), CONTEXT, None)
            if recorded is not None:
                _replace(g, op, *recorded)
    return g.get_nodes()


def _replace(g: Any, loop: Any, cell: Cell, found: dict[str, Any]) -> None:
    from tf2onnx.graph_builder import GraphBuilder

    names = {k: loop.input[v] for k, v in found.items() if isinstance(v, int)}
    present = [k for k in cell.weights if k in names]
    sequence = loop.inputs[found["x"]]
    if not all(g.is_const(names[k]) for k in present) \
            or sequence.type != "TensorListFromTensor":
        return
    weights = {k: g.get_tensor_value(names[k], as_list=False) for k in present}
    initial = GraphBuilder(g).make_unsqueeze({"data": names["state"], "axes": [0]})
    node = cell.build(g, found, weights, sequence.input[0], initial)
    if node is None:
        return
    sequence_out = GraphBuilder(g).make_squeeze({"data": node.output[0], "axes": [1]})
    for consumer in g.find_output_consumers(loop.output[found["out"]]):
        if consumer.type == "TensorListStack":
            g.replace_all_inputs(consumer.output[0], sequence_out)
    last = GraphBuilder(g).make_squeeze({"data": node.output[1], "axes": [0]})
    g.replace_all_inputs(loop.output[found["state"]], last)


@contextlib.contextmanager
def keras3_rnn_rewriter() -> Iterator[None]:
    """Run :func:`rewrite` where tf2onnx runs its own GRU rewriter: before loops are turned
    into generic ``Loop`` operators (a ``custom_rewriter`` would run after that). Without that
    hook in a future tf2onnx, conversion goes on and these cells stay loops. The hook is a
    module attribute, so two conversions must not run in threads of one process at the same
    time (tf2onnx's own global state already forbids that)."""
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
