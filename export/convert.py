"""Keras 3 to ONNX with tf2onnx, the way that works for Keras 3.

``tf2onnx.convert.from_keras`` fails on Keras 3 (``KeyError: 'keras_tensor_N'``), so the model is
wrapped in a ``tf.function`` with an explicit input signature whose batch dimension is dynamic,
and converted with ``from_function``: exact parity, and LSTM/GRU come out as the fused ONNX ops.
tf2onnx names outputs after TensorFlow tensors (``Identity:0``); they are renamed to the Keras
output layer's name so that the runtime shows ``probabilities``, not ``Identity:0``.
"""

from __future__ import annotations

from typing import Any

from .errors import ConversionError

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


def keras_to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> Any:
    """The ONNX ``ModelProto`` of a Keras model, with readable input and output names."""
    import tensorflow as tf
    import tf2onnx

    inp = model.inputs[0]
    input_name = inp.name
    signature = (tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name=input_name),)

    @tf.autograph.experimental.do_not_convert
    def forward(x):
        return model(x, training=False)

    from .gru import keras3_gru_rewriter

    function = tf.function(forward, input_signature=signature)
    try:
        with keras3_gru_rewriter():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature,
                                                     opset=opset)
    except Exception as exc:  # tf2onnx raises many types
        raise ConversionError(f"tf2onnx could not convert the model: {exc}") from exc
    rename_output(proto, model.layers[-1].name)
    return proto


def rename_output(proto: Any, name: str) -> None:
    """Rename the graph's single output (``Identity:0``) everywhere it is referenced."""
    graph = proto.graph
    if len(graph.output) != 1 or graph.output[0].name == name:
        return
    old = graph.output[0].name
    graph.output[0].name = name
    for node in graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]


def set_metadata(proto: Any, props: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``props``."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
