"""Keras 3 to ONNX with tf2onnx, the way that works for Keras 3.

``tf2onnx.convert.from_keras`` fails on Keras 3 (``KeyError: 'keras_tensor_N'``), so the model is
wrapped in a ``tf.function`` with an explicit input signature whose batch dimension is dynamic,
and converted with ``from_function``: exact parity, and LSTM/GRU come out as the fused ONNX ops.
tf2onnx names outputs after TensorFlow tensors (``Identity:0``); they are renamed to the Keras
outputs' names so that the runtime shows ``probabilities``, not ``Identity:0``.
"""

from __future__ import annotations

from typing import Any

from .errors import ConversionError
from .quiet import dropped

DEFAULT_OPSET = 17
MIN_OPSET = 13


def max_opset() -> int:
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def check_opset(opset: int) -> int:
    from edge_infer.runtime.errors import UsageError

    highest = max_opset()
    if not MIN_OPSET <= opset <= highest:
        raise UsageError(f"--opset must be between {MIN_OPSET} and {highest} (what tf2onnx "
                         f"supports), found {opset}")
    return opset


def keras_to_onnx(model: Any, opset: int = DEFAULT_OPSET,
                  inputs_as_nchw: tuple[str, ...] = ()) -> Any:
    """The ONNX ``ModelProto`` of a Keras model, with readable input and output names. Models
    with several inputs take them in ``model.inputs`` order; several outputs keep
    ``model.outputs`` order and are named after their Keras outputs.

    ``inputs_as_nchw`` (tf2onnx's option) makes those image inputs channels-first. Export does
    not offer it: after edge-infer's simplifications it gained nothing on the digits cnn
    (``benchmarks/int8_levers.py`` measures it), and every caller would have to transpose."""
    import tensorflow as tf
    import tf2onnx

    signature = tuple(tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name=input_name(inp))
                      for inp in model.inputs)
    single = len(signature) == 1

    @tf.autograph.experimental.do_not_convert
    def forward(*xs):
        return model(xs[0] if single else list(xs), training=False)

    from .rnn_rewriter import keras3_rnn_rewriter
    from .tf_ops import HANDLERS, unsupported

    function = tf.function(forward, input_signature=signature)
    constants = _captured_constants(function, signature)
    try:
        with keras3_rnn_rewriter(), dropped(CONVERSION_NOISE):
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature,
                                                     opset=opset, custom_op_handlers=HANDLERS,
                                                     inputs_as_nchw=list(inputs_as_nchw) or None)
    except Exception as exc:  # tf2onnx raises many types
        raise ConversionError(f"tf2onnx could not convert the model: {exc}") from exc
    _inline_constants(proto, constants)
    initializers = {i.name for i in proto.graph.initializer}
    expected = {spec.name for spec in signature}
    extra = [i.name for i in proto.graph.input
             if i.name not in initializers and i.name not in expected]
    if extra:
        raise ConversionError(
            f"the converted graph expects inputs the Keras model does not have ({', '.join(extra)})"
            ": the model captures TensorFlow state that is not a plain tensor (a lookup table or "
            "another resource), which tf2onnx leaves as an input and edge-infer cannot make a "
            "constant; keep it out of the exported model")
    left = unsupported(proto)
    if left:
        listed = ", ".join(f"{op} ({n} node{'s' if n > 1 else ''})" for op, n in left.items())
        raise ConversionError(f"tf2onnx cannot convert the TensorFlow operators {listed} this "
                              f"model uses to ONNX opset {opset}")
    rename_outputs(proto, output_names(model))
    return proto


def _captured_constants(function: Any, signature: tuple) -> dict[str, Any]:
    """The tensors (not variables) the traced function captures, by the name of their
    placeholder: a ``Normalization`` layer keeps its mean and variance as tensors made when it
    is built or adapted, and tf2onnx would leave each as a graph input to be fed."""
    import numpy as np

    try:
        concrete = function.get_concrete_function(*signature)
    except Exception:  # tf2onnx traces it again and reports the failure in its own words
        return {}
    return {internal.name: np.asarray(external.numpy())
            for external, internal in concrete.graph.captures
            if external.dtype.name != "resource" and hasattr(external, "numpy")}


def _inline_constants(proto: Any, constants: dict[str, Any]) -> None:
    """Graph inputs that stand for captured constants become initializers."""
    from onnx import numpy_helper

    for value in list(proto.graph.input):
        if value.name in constants:
            proto.graph.input.remove(value)
            proto.graph.initializer.append(numpy_helper.from_array(constants[value.name],
                                                                   value.name))


# logger -> how the messages that read as failures in a good conversion begin
CONVERSION_NOISE = {
    # TensorFlow, when the process holds a lookup table (a TextVectorization adapted for
    # training, as in `edge-infer pipeline` on text): tf2onnx exports a meta graph, TensorFlow
    # cannot serialise the table's collection and says so in three lines ending "'NoneType'
    # object has no attribute 'name'". The converted graph does not use the collection.
    "tensorflow": ("Issue encountered when serializing",),
    # tf2onnx, when one of its optional graph optimizers raises (its transpose optimizer does
    # on a MobileNetV2's scalar bias): it logs the traceback, restores the graph and goes on;
    # the result is checked against Keras all the same.
    "tf2onnx.optimizer": ("Failed to apply",),
}


def input_name(tensor: Any) -> str:
    """A model input's name: its ``Input`` layer's, which Keras saves and so is the same each
    time a file is loaded, not the symbolic tensor's, which for an unnamed input of a model held
    in memory is a process-wide counter (``keras_tensor_156``)."""
    layer = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return layer.name if type(layer).__name__ == "InputLayer" else tensor.name


def output_names(model: Any) -> list[str]:
    """The Keras names of a model's outputs (``probabilities``), in ``model.outputs`` order."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == len(model.outputs) and len(set(names)) == len(names):
        return names
    if len(model.outputs) == 1:
        return [model.layers[-1].name]
    return [f"output_{i}" for i in range(len(model.outputs))]


def rename_outputs(proto: Any, names: list[str]) -> None:
    """Rename the graph's outputs (``Identity:0``, ``Identity_1:0``) everywhere they are
    referenced; nothing changes when the counts differ or a name is taken."""
    graph = proto.graph
    if len(graph.output) != len(names):
        return
    renames = {o.name: new for o, new in zip(graph.output, names) if o.name != new}
    taken = ({i.name for i in graph.input} | {i.name for i in graph.initializer}
             | {o for n in graph.node for o in n.output}) - set(renames)
    if set(renames.values()) & taken:
        return
    for output in graph.output:
        output.name = renames.get(output.name, output.name)
    for node in graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]


def set_metadata(proto: Any, props: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``props``."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
