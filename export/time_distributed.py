"""``TimeDistributed`` layers traced as one call on batch x time, not one call per step.

Keras 3's ``TimeDistributed`` runs its layer once per time step in a Python loop when the number
of steps is static, and tf2onnx writes what it traces: a frame classifier over 16 frames
(``TimeDistributed(Conv2D)``, ``TimeDistributed(GlobalAveragePooling2D)``, then an LSTM) became
184 operators, 16 convolutions each behind its own ``Slice``/``Squeeze``/``Transpose``. A layer
that treats samples independently (dense, convolution, pooling, normalisation at inference)
computes the same on ``[batch * steps, ...]`` in one call, which is what this module traces:
reshape, call the layer, reshape back.

Whether the layer treats samples independently is not assumed: the exporter compares the
converted graph with the Keras model and converts again without this when they differ
(:func:`edge_infer.export.exporter._convert`). A layer given a mask keeps Keras' loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .layer_calls import all_layers, replaced_calls


def _folded_call(layer: Any) -> Any:
    from keras import ops

    original = layer.call

    def call(inputs: Any, training: Any = None, mask: Any = None) -> Any:
        steps = inputs.shape[1]
        if mask is not None or steps is None or any(d is None for d in inputs.shape[2:]):
            return original(inputs, training=training, mask=mask)
        kwargs = {"training": training} if layer.layer._call_has_training_arg else {}
        merged = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = layer.layer.call(merged, **kwargs)
        return ops.reshape(outputs, (-1, steps, *outputs.shape[1:]))

    return call


@contextlib.contextmanager
def folded_time_distributed(model: Any) -> Iterator[int]:
    """Within the block, the model's ``TimeDistributed`` layers call their layer once on
    ``[batch * steps, ...]``; yields how many layers that is. The model is unchanged after."""
    import keras

    layers = [layer for layer in all_layers(model)
              if isinstance(layer, keras.layers.TimeDistributed)]
    with replaced_calls(layers, _folded_call):
        yield len(layers)
