"""Masked recurrent layers as ONNX's fused ``LSTM``/``GRU``/``RNN`` with sequence lengths.

Keras models mask their padding: an ``Embedding(mask_zero=True)`` makes every LSTM and GRU
after it skip the time steps whose token is 0, keeping the state it had, and a ``Masking``
layer does the same on float sequences for the steps whose every feature is its
``mask_value``. tf2onnx writes such a layer as a generic ``Loop`` that runs one time step per
iteration: on a 40-token LSTM(32) classifier 1174 us at batch 1, against 79 us for what this
module makes of it (14.9x; 2.0x at batch 64, one thread; ``python benchmarks/keras_rewrites.py``).

ONNX's recurrent operators skip steps too, but only at the end of a sequence
(``sequence_lens``). The two agree once the padding is moved out of the way: a skipped step
leaves the state as it was, so a row whose unpadded steps are moved to the front, in order,
ends in the state the masked layer ends in, wherever the padding was (before, after, or in
between). So a masked model is converted as:

1. the model traced with its recurrent layers ignoring the mask (:func:`unmasked_recurrence`),
   which tf2onnx fuses;
2. in front of the graph, each row's unpadded steps moved to the front (``TopK`` on a key that
   ranks them first and keeps their order, ``GatherElements``), their count the
   ``sequence_lens`` of every ``LSTM``/``GRU`` and of the ``ReverseSequence`` tf2onnx writes for
   a ``go_backwards`` layer (which then reverses the steps, not the padding);
3. the layer's last output read from ``Y_h`` where the graph took the last step of ``Y`` (zeros
   past the end of a shorter row; for a reverse direction the first step, which is its last).
   Which nodes compute "the last step" is proved by running them on a probe, not by matching
   tf2onnx's spelling.

The exporter then compares the result with the masked Keras model on rows padded every way
(:func:`padding_probe`) as well as on the parity samples, and keeps tf2onnx's loop, which is
correct, only slower, when anything differs. What fuses besides a last output: a masked
average over the steps (``GlobalAveragePooling1D``, masked attention), since the mask it reads
is computed from the moved rows too and a sum does not depend on order; and per-step outputs
(a tagger's ``[batch, steps, ...]``), whose steps are put back in the input's order, a padded
step repeating the last output before it, or zeros for a bidirectional layer, as Keras does
(:func:`_restore_step_order`; the exporter tries both). What keeps the loop: a
``go_backwards`` layer's per-step outputs (reversed, padding included), layers that read
positions (``Flatten``) or the repeated outputs (``GlobalMaxPooling1D``), models with several
inputs, steps of unknown count, or more than one masking layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .final_state import RECURRENT, last_step_reads, read_final_state
from .convert import input_name
from .layer_calls import all_layers, replaced_calls
from .names import rename_tensors
from .simplify import _add_initializer, _shapes, remove_dead


@dataclass(frozen=True)
class MaskedInput:
    """The model input whose padding masks the recurrent layers: token ids where an
    ``Embedding(mask_zero=True)`` reads them (padding is 0), or float steps where a ``Masking``
    layer reads them (padding is a step whose every feature equals ``mask_value``)."""

    input_name: str
    length: int  # time steps; static, as the model's input declares them
    layer: str  # the masking layer's name: the nodes added are in its scope
    vocabulary: int = 0  # tokens: the embedding's input_dim, tokens are in [0, vocabulary)
    features: int = 0  # steps: features per step
    mask_value: float = 0.0  # steps: the value that marks a padded step
    dtype: str = "int64"  # tokens: the input's integer type

    @property
    def tokens(self) -> bool:
        return self.features == 0


def masked_input(model: Any) -> MaskedInput | None:
    """The padded input of a single-input model with recurrent layers and one masking layer
    reading that input, or None: token ids ``[batch, steps]`` into an
    ``Embedding(mask_zero=True)``, or float steps ``[batch, steps, features]`` into a
    ``Masking`` layer, with static steps."""
    import keras

    layers = all_layers(model)
    sources = [layer for layer in layers
               if (isinstance(layer, keras.layers.Embedding) and layer.mask_zero)
               or isinstance(layer, keras.layers.Masking)]
    if len(sources) != 1 or len(model.inputs) != 1 \
            or not any(isinstance(layer, keras.layers.RNN) for layer in layers):
        return None
    source, spec = sources[0], model.inputs[0]
    shape = tuple(spec.shape)
    if isinstance(source, keras.layers.Embedding):
        if len(shape) != 2 or shape[1] is None or "int" not in str(spec.dtype):
            return None
        return MaskedInput(input_name(spec), int(shape[1]), source.name,
                           vocabulary=int(source.input_dim), dtype=str(spec.dtype))
    if len(shape) != 3 or None in shape[1:] or "float" not in str(spec.dtype) \
            or not np.isfinite(float(source.mask_value)):
        return None
    return MaskedInput(input_name(spec), int(shape[1]), source.name, features=int(shape[2]),
                       mask_value=float(source.mask_value))


@contextlib.contextmanager
def unmasked_recurrence(model: Any) -> Iterator[None]:
    """Within the block, the model's recurrent layers ignore the mask they are given, so that
    tf2onnx sees (and fuses) plain layers; the model is unchanged afterwards. Keras 3 records
    the mask as an operation of the functional graph (``not_equal``), so a clone with
    ``mask_zero=False`` would still pass it on: the layers' ``call`` is wrapped instead."""
    import keras

    def without_mask(layer: Any) -> Any:
        call = layer.call

        def call_unmasked(*args: Any, mask: Any = None, **kwargs: Any) -> Any:
            return call(*args, **kwargs)
        return call_unmasked

    recurrent = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.RNN)]
    with replaced_calls(recurrent, without_mask):
        yield


def padding_probe(masked: MaskedInput, rows: int = 64, seed: int = 0) -> np.ndarray:
    """Rows padded every way a masked model must handle: none, after, before, holes in
    between, and all padding. Token ids, or float steps whose padded steps hold
    ``mask_value`` in every feature (and unpadded rows with one feature at that value)."""
    rng = np.random.default_rng(seed)
    length = masked.length
    if masked.tokens:
        probe = rng.integers(1, max(masked.vocabulary, 2), (rows, length)).astype(masked.dtype)
        pad: Any = 0
    else:
        probe = rng.standard_normal((rows, length, masked.features)).astype(np.float32)
        pad = np.float32(masked.mask_value)
    kept = rng.integers(0, length + 1, rows)
    steps = np.arange(length)
    for i in range(rows):
        kind = i % 5
        if kind == 1:
            probe[i, steps >= kept[i]] = pad
        elif kind == 2:
            probe[i, steps < length - kept[i]] = pad
        elif kind == 3:
            probe[i, rng.random(length) < 0.4] = pad
        elif kind == 4 and i % 10 == 4:
            probe[i] = pad
        elif kind == 0 and not masked.tokens:  # one feature at the value is not padding
            probe[i, rng.integers(length), rng.integers(masked.features)] = pad
    return probe


PADDED_STEPS = ("repeat", "zeros")  # what a per-step output holds at a padded step in Keras


def add_sequence_lengths(proto: Any, masked: MaskedInput, padded_steps: str = "repeat"
                         ) -> tuple[int, int]:
    """Compact the padded rows and give every ``LSTM``/``GRU`` their lengths; returns how many
    recurrent operators now take lengths and how many per-step outputs were put back in step
    order (``padded_steps``: see :func:`_restore_step_order`). ``(0, 0)``, graph unchanged,
    when the graph is not one this can rewrite: a recurrent operator with lengths already, or
    one this cannot probe."""
    graph = proto.graph
    rnns = [node for node in graph.node if node.op_type in RECURRENT]
    if not rnns or masked.input_name not in {i.name for i in graph.input}:
        return 0, 0
    rewires = []
    for node in rnns:
        if len(node.input) > 4 and node.input[4]:
            return 0, 0
        found = last_step_reads(proto, node, [masked.length])
        if found is None:
            return 0, 0
        rewires.append((node, found))
    for node, found in rewires:
        read_final_state(graph, node, found)
    shapes = _shapes(proto)
    lengths, count, kept = _compact(graph, masked)
    restored = _restore_step_order(graph, masked, kept, shapes, padded_steps)
    for node in rnns:
        while len(node.input) < 5:
            node.input.append("")
        node.input[4] = lengths
    for node in graph.node:  # a go_backwards layer: tf2onnx reverses the whole row first
        if node.op_type == "ReverseSequence":
            node.input[1] = count
    remove_dead(proto)
    return len(rnns), restored


def _compact(graph: Any, masked: MaskedInput) -> tuple[str, str, str]:
    """Insert, first in the graph, the nodes that move each row's unpadded steps to the front
    in order (every reader of the input reads the result); returns the lengths as int32
    (``LSTM``/``GRU``) and int64 (``ReverseSequence``), and which steps are kept (``[batch,
    steps]``, 1 or 0, in the input's order)."""
    from onnx import TensorProto, helper

    name, length = masked.input_name, masked.length
    scope = f"{masked.layer}/padding_last"
    steps = _add_initializer(graph, f"{scope}/later_first",
                             np.arange(length - 1, -1, -1, dtype=np.int64))
    count = _add_initializer(graph, f"{scope}/length", np.array([length], np.int64))
    axis = _add_initializer(graph, f"{scope}/axis", np.array([1], np.int64))
    t = {k: f"{scope}/{k}" for k in ("present", "kept", "ranked", "key", "rank", "order",
                                     "index", "moved", "count", "lengths")}
    if masked.tokens:  # a token is there unless it is 0
        nodes = [helper.make_node("Cast", [name], [t["present"]], to=TensorProto.BOOL),
                 helper.make_node("Cast", [t["present"]], [t["kept"]], to=TensorProto.INT64)]
        gather = [helper.make_node("GatherElements", [name, t["order"]], [t["moved"]], axis=1)]
    else:  # a step is there unless every feature equals mask_value
        value = _add_initializer(graph, f"{scope}/mask_value",
                                 np.array(masked.mask_value, np.float32))
        features = _add_initializer(graph, f"{scope}/feature_axis", np.array([2], np.int64))
        nodes = [helper.make_node("Equal", [name, value], [t["present"] + "_not"]),
                 helper.make_node("Not", [t["present"] + "_not"], [t["present"]]),
                 helper.make_node("Cast", [t["present"]], [t["present"] + "_int"],
                                  to=TensorProto.INT64),
                 helper.make_node("ReduceSum", [t["present"] + "_int", features],
                                  [t["present"] + "_features"], keepdims=0),
                 helper.make_node("Cast", [t["present"] + "_features"], [t["present"] + "_any"],
                                  to=TensorProto.BOOL),
                 helper.make_node("Cast", [t["present"] + "_any"], [t["kept"]],
                                  to=TensorProto.INT64)]
        gather = [helper.make_node("Unsqueeze", [t["order"], features], [t["index"] + "_step"]),
                  helper.make_node("Shape", [name], [t["index"] + "_shape"]),
                  helper.make_node("Expand", [t["index"] + "_step", t["index"] + "_shape"],
                                   [t["index"]]),
                  helper.make_node("GatherElements", [name, t["index"]], [t["moved"]], axis=1)]
    nodes += [
        helper.make_node("Mul", [t["kept"], count], [t["ranked"]]),
        helper.make_node("Add", [t["ranked"], steps], [t["key"]]),
        helper.make_node("TopK", [t["key"], count], [t["rank"], t["order"]], axis=1),
        *gather,
        helper.make_node("ReduceSum", [t["kept"], axis], [t["count"]], keepdims=0),
        helper.make_node("Cast", [t["count"]], [t["lengths"]], to=TensorProto.INT32),
    ]
    for node in nodes:
        node.name = node.output[-1] if node.op_type != "TopK" else f"{scope}/TopK"
    rename_tensors(graph, {name: t["moved"]})  # every reader, subgraphs too (not the input)
    for k, node in enumerate(nodes):
        graph.node.insert(k, node)
    return t["lengths"], t["count"], t["kept"]


def _restore_step_order(graph: Any, masked: MaskedInput, kept: str,
                        shapes: dict[str, list[int | None]], padded_steps: str) -> int:
    """Give every per-step graph output (``[batch, steps, ...]``, rank 3 or more: a
    ``return_sequences`` layer's outputs, a tagger's labels) the steps where the input had
    them; returns how many outputs. An unpadded step ``t`` reads moved step ``k - 1``, ``k``
    the number of unpadded steps up to ``t`` (``CumSum``). A padded step reads, with
    ``padded_steps="repeat"``, the same (Keras' recurrent layers repeat their last output over
    the padding after it), and with ``"zeros"`` step -1 (a ``Bidirectional`` layer's outputs
    are zeros there). Step -1 is past the row's length, where the layers output zeros,
    whenever a row has padding; so is ``k = 0``, before the first unpadded step."""
    from onnx import helper

    outputs = [o.name for o in graph.output
               if len(shapes.get(o.name) or []) >= 3 and shapes[o.name][1] == masked.length]
    if not outputs:
        return 0
    scope = f"{masked.layer}/padding_last"
    axis = _add_initializer(graph, f"{scope}/step_axis", np.array(1, np.int64))
    one = _add_initializer(graph, f"{scope}/one", np.array(1, np.int64))
    counted = f"{scope}/kept_so_far"
    nodes = [helper.make_node("CumSum", [kept, axis], [counted])]
    if padded_steps == "zeros":  # moved step where kept, else -1: kept * (moved + 1) - 1
        nodes.append(helper.make_node("Mul", [kept, counted], [f"{scope}/if_kept"]))
        counted = f"{scope}/if_kept"
    source = f"{scope}/source_step"
    nodes.append(helper.make_node("Sub", [counted, one], [source]))
    for name in outputs:
        rank = len(shapes[name])
        moved = f"{name}/moved_steps"
        for node in graph.node:
            node.output[:] = [moved if o == name else o for o in node.output]
            node.input[:] = [moved if i == name else i for i in node.input]
        axes = _add_initializer(graph, f"{name}/step_axes", np.arange(2, rank, dtype=np.int64))
        nodes += [
            helper.make_node("Unsqueeze", [source, axes], [f"{name}/source"]),
            helper.make_node("Shape", [moved], [f"{name}/shape"]),
            helper.make_node("Expand", [f"{name}/source", f"{name}/shape"], [f"{name}/index"]),
            helper.make_node("GatherElements", [moved, f"{name}/index"], [name], axis=1),
        ]
    for node in nodes:
        node.name = node.output[0]
    graph.node.extend(nodes)
    return len(outputs)
