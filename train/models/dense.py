"""Dense networks: ``mlp``, ``regressor``, ``autoencoder``."""

from __future__ import annotations

import math

from .registry import DataSpec, register

INPUT_NAMES = {"image": "image", "tabular": "features", "sequence": "sequence", "text": "tokens"}


def classifier_head(keras, x, spec: DataSpec):
    """Sigmoid probability for two classes, softmax probabilities otherwise."""
    if spec.binary:
        return keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)


@register("mlp", kinds=("tabular", "image"), tasks=("classification",),
          description="dense 64-32 classifier (sigmoid output for 2 classes, softmax otherwise)",
          preprocessing="features as given (images flattened, pixels scaled to [0, 1])")
def mlp(spec: DataSpec):
    import keras

    inputs = keras.Input(shape=spec.input_shape, name=INPUT_NAMES[spec.kind])
    x = keras.layers.Flatten()(inputs) if len(spec.input_shape) > 1 else inputs
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, classifier_head(keras, x, spec), name="mlp")


@register("regressor", kinds=("tabular",), tasks=("regression",),
          description="dense 64-64-1 regressor trained with mean squared error",
          preprocessing="features as given", dataset="sine")
def regressor(spec: DataSpec):
    import keras

    inputs = keras.Input(shape=spec.input_shape, name="features")
    x = keras.layers.Dense(64, activation="relu")(inputs)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(spec.num_classes if spec.task == "regression" else 1,
                                 name="value")(x)
    return keras.Model(inputs, outputs, name="regressor")


@register("autoencoder", kinds=("image", "tabular"), tasks=("classification", "regression"),
          mode="autoencoder",
          description="dense autoencoder, input-32-input with a sigmoid reconstruction",
          preprocessing="values in [0, 1] (images: pixels / 255)")
def autoencoder(spec: DataSpec):
    import keras

    size = math.prod(spec.input_shape)
    inputs = keras.Input(shape=spec.input_shape, name=INPUT_NAMES[spec.kind])
    x = keras.layers.Flatten()(inputs) if len(spec.input_shape) > 1 else inputs
    code = keras.layers.Dense(32, activation="relu", name="code")(x)
    x = keras.layers.Dense(size, activation="sigmoid")(code)
    outputs = keras.layers.Reshape(spec.input_shape, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")
