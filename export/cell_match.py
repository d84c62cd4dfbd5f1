"""Matching a recurrent cell in a tf2onnx loop body graph (a ``While`` body as tf2onnx's
rewriters see it, before loops become ONNX ``Loop``): the helpers the cell rewriters in
:mod:`.gru` and :mod:`.simple_rnn` share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COMMUTATIVE = ("Add", "AddV2", "Mul")
ACTIVATIONS = "Tanh|Relu|Sigmoid"  # the activations ONNX's recurrent operators and TF share by name


def pair(node: Any, first: str, second: str) -> tuple[Any, Any] | None:
    """The two inputs of ``node`` as (``first``-typed, ``second``-typed), in either order for a
    commutative operator; ``None`` when they are not those types."""
    if node is None or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if a is not None and b is not None:
        if is_op(a, first) and is_op(b, second):
            return a, b
        if node.type in COMMUTATIVE and is_op(b, first) and is_op(a, second):
            return b, a
    return None


def is_op(node: Any, types: str) -> bool:
    """Whether ``node`` is one of the ``|``-separated operator types."""
    return node is not None and node.type in types.split("|")


def output_index(consumer: Any, producer: Any) -> int | None:
    """Which output of ``producer`` ``consumer`` reads (``Split`` outputs are ``name:k``)."""
    for name in consumer.input:
        if name in producer.output:
            return producer.output.index(name)
    return None


def graph_input(g: Any, node: Any) -> int | None:
    """The index of the body graph input ``node`` is, or reads through ``Identity`` (how a
    variable read appears); ``None`` when it is not one."""
    while node is not None and node.type == "Identity":
        node = node.inputs[0]
    if node is None or not node.is_graph_input():
        return None
    return g.input_names.index(node.output[0])


def sequence_write(ops: list[Any]) -> Any | None:
    """The one ``TensorListSetItem`` that writes the step's output to the loop's output list,
    read straight from a body input; ``None`` when the body has another shape."""
    writes = [n for n in ops if n.type == "TensorListSetItem"]
    if len(writes) != 1 or not writes[0].inputs[0].is_graph_input():
        return None
    return writes[0]


@dataclass(frozen=True)
class Cell:
    """One kind of Keras 3 recurrent cell that :mod:`.rnn_rewriter` replaces.

    ``match(g, ops)`` reads a loop body graph and returns the indices of the loop inputs that
    hold the input sequence (``x``), the state (``state``), the output list (``out``) and the
    ``weights`` the cell has (an optional one, a bias, is left out of the result), plus whatever ``build`` needs (the activation); ``None`` when the body is
    not this cell. ``build(g, found, weights, sequence, initial_state)`` adds the ONNX operator
    (outputs ``Y`` and ``Y_h``, one direction) for the frozen weight values, or returns ``None``
    when they cannot be expressed."""

    operator: str
    match: Callable[[Any, list[Any]], dict[str, Any] | None]
    weights: tuple[str, ...]
    build: Callable[[Any, dict[str, Any], dict[str, Any], str, str], Any]
