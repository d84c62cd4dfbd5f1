"""Grouped convolutions traced as TensorFlow's plain ``Conv2D``, not an XLA function.

Keras 3's TensorFlow backend runs a convolution with ``groups > 1`` (ConvNeXt's depthwise
layers, ResNeXt's blocks) inside ``tf.function(jit_compile=True)``, because TensorFlow's CPU
kernels cannot run it. tf2onnx sees that function as one ``StatefulPartitionedCall`` it cannot
convert, and the whole export failed (ConvNeXtTiny: 18 of them). The graph only needs the
convolution as an operator: TensorFlow's ``Conv2D`` on grouped weights, which tf2onnx writes as
ONNX ``Conv`` with ``group``. So, while the model is traced for conversion only, the backend's
convolution skips the XLA wrapper for grouped channels-last convolutions.

This patches a Keras backend function for the duration of the block, which no other code runs
meanwhile (the exporter traces in one thread). As with the other trace-time rewrites, the
converted graph is compared with the Keras model, which runs its real grouped convolution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .layer_calls import all_layers

FORMATS = {3: "NWC", 4: "NHWC", 5: "NDHWC"}


def _grouped(layer: Any) -> bool:
    return int(getattr(layer, "groups", 1) or 1) > 1 and hasattr(layer, "kernel_size")


@contextlib.contextmanager
def plain_grouped_convolutions(model: Any) -> Iterator[int]:
    """Within the block, grouped channels-last convolutions trace as ``tf.nn.convolution``;
    yields how many grouped convolution layers the model has."""
    grouped = [layer for layer in all_layers(model) if _grouped(layer)]
    if not grouped:
        yield 0
        return
    import tensorflow as tf

    try:  # Keras internals: another Keras may move them; then nothing is patched
        from keras.src.backend import config as backend_config
        from keras.src.backend.tensorflow import nn as backend_nn

        original = backend_nn.conv
    except (ImportError, AttributeError):
        yield 0
        return

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
             data_format: str | None = None, dilation_rate: Any = 1) -> Any:
        channels_last = (data_format or backend_config.image_data_format()) == "channels_last"
        rank = len(inputs.shape)
        if not channels_last or rank not in FORMATS or inputs.shape[-1] == kernel.shape[-2]:
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(),
                                 data_format=FORMATS[rank], dilations=dilation_rate)

    backend_nn.conv = conv
    try:
        yield len(grouped)
    finally:
        backend_nn.conv = original
