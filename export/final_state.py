"""Reads of a recurrent operator's last time step, answered from its final state.

tf2onnx reads the last output of an ``LSTM``/``GRU``/``RNN`` from ``Y``, the outputs of every
step: ``Squeeze`` the direction axis, ``Slice`` the last step, ``Squeeze`` the step axis. The
operator's second output ``Y_h`` holds exactly those values already, one slice per direction
(a reverse direction's last step is the sequence's first). Reading it instead drops the three
operators: on a ``SimpleRNN(8)`` over 20 steps 1.10x at batch 1 (33.5 -> 30.5 us), 1.02x at
64; on the zoo's ``waves`` LSTM and GRU (64 then 32 units over 50 steps, where the recurrence
dominates) 1.02x at batch 1, level at 64 (``benchmarks/compare.py`` on exports before and
after, one thread).

Which tensors are "the last step" is proved by running the moves after ``Y`` on probes of
distinct values (:func:`last_step_reads`), not by matching tf2onnx's spelling. The masked
export (:mod:`.masking`) uses the same two functions: with sequence lengths, ``Y_h`` is each
row's own last unpadded step, which is what a masked Keras layer returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .names import rename_tensors
from .simplify import (Shapes, _add_initializer, _run_probe, attribute, consumers, initializers,
                       remove_dead, scope_of)

RECURRENT = ("LSTM", "GRU", "RNN")
MOVES = ("Squeeze", "Unsqueeze", "Slice", "Gather", "Reshape", "Transpose", "Identity")


def directions(node: Any) -> list[str]:
    """The time order of each direction of a recurrent operator: its ``Y`` has one slice per
    entry along axis 1."""
    direction = attribute(node, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    return ["forward", "reverse"] if direction == "bidirectional" else [direction]


def last_step_reads(proto: Any, node: Any, lengths: list[int]) -> list[tuple[str, int]] | None:
    """The tensors downstream of ``node``'s ``Y`` that hold one direction's last time step
    (``[batch, hidden]``; the first step for the reverse direction), with the direction: found
    by running each run of moves after ``Y`` on probes of distinct values, one per sequence
    length in ``lengths`` (the static length, or two when the model takes any); a run must
    give the last step on every probe. None when the operator is not one this can probe."""
    graph = proto.graph
    y = node.output[0] if node.output else ""
    if not y:
        return []
    hidden = int(attribute(node, "hidden_size", 0))
    kinds = directions(node)
    if hidden < 1 or any(kind not in ("forward", "reverse") for kind in kinds):
        return None
    inits, readers = initializers(graph), consumers(graph)
    probes = [np.arange(length * len(kinds) * 3 * hidden, dtype=np.float32).reshape(
        length, len(kinds), 3, hidden) for length in lengths]
    found: list[tuple[str, int]] = []
    frontier = [[reader] for reader in readers.get(y, [])]
    while frontier:
        path = frontier.pop()
        step = path[-1]
        if step.op_type not in MOVES or len(path) > 6 or not step.input \
                or any(i and i not in inits for i in step.input[1:]):
            continue
        match = _direction_read(proto, path, y, probes, kinds, inits)
        if match is not None:
            found.append((step.output[0], match))
            continue
        frontier.extend([*path, reader] for reader in readers.get(step.output[0], [])
                        if reader.input and reader.input[0] == step.output[0])
    return found


def read_final_state(graph: Any, node: Any, reads: list[tuple[str, int]]) -> None:
    """Make each tensor in ``reads`` its direction's slice of ``node``'s ``Y_h`` instead."""
    from onnx import helper

    if not reads:
        return
    while len(node.output) < 2:
        node.output.append("")
    if not node.output[1]:
        node.output[1] = f"{node.name}/Y_h"
    kinds = directions(node)
    outputs = {o.name for o in graph.output}
    for tensor, direction in reads:
        old = next(n for n in graph.node if tensor in n.output)
        # in the scope of the slice it replaces (a Keras layer's), else of the operator
        name = f"{scope_of(old.name, scope_of(node.name, node.name))}/last_{kinds[direction]}"
        index = _add_initializer(graph, f"{name}/direction", np.array(direction, np.int64))
        old.output[list(old.output).index(tensor)] = f"{tensor}/unused"  # dropped as dead
        new = tensor if tensor in outputs else name  # a graph output keeps its name
        if new != tensor:
            rename_tensors(graph, {tensor: new})  # its readers, in subgraphs too
        gather = helper.make_node("Gather", [node.output[1], index], [new], name=name, axis=0)
        graph.node.insert(list(graph.node).index(node) + 1, gather)


def _direction_read(proto: Any, path: list[Any], y: str, probes: list[np.ndarray],
                    kinds: list[str], inits: dict[str, Any]) -> int | None:
    """The direction whose last step ``path`` computes from ``Y`` on every probe, or None."""
    matches = set()
    for probe in probes:
        got = _run_probe(proto, path, y, probe, path[-1].output[0], inits)
        lasts = [probe[-1 if kind == "forward" else 0, d] for d, kind in enumerate(kinds)]
        match = next((d for d, last in enumerate(lasts) if got is not None
                      and got.shape == last.shape and np.array_equal(got, last)), None)
        if match is None:
            return None
        matches.add(match)
    return matches.pop() if len(matches) == 1 else None


def read_final_states(proto: Any, shapes: Shapes) -> int:
    """Every recurrent operator without sequence lengths whose last time step the graph reads
    from ``Y`` (tf2onnx: ``Squeeze``, ``Slice`` of the last step, ``Squeeze``) gives it from
    ``Y_h`` instead, which holds the same values; returns how many reads changed."""
    changed = 0
    for node in [n for n in proto.graph.node if n.op_type in RECURRENT]:
        if len(node.input) > 4 and node.input[4]:
            continue  # with lengths, Y_h is each row's own last step: masking's business
        steps = (shapes.get(node.input[0]) or [None])[0]
        reads = last_step_reads(proto, node, [steps] if steps else [3, 5])
        if reads:
            read_final_state(proto.graph, node, reads)
            changed += len(reads)
    if changed:
        remove_dead(proto)
    return changed
