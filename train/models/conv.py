"""Convolutional networks: ``cnn``, ``cifar_cnn``, ``conv_autoencoder``."""

from __future__ import annotations

from .registry import DataSpec, register


def conv_blocks(layers, x, filters: tuple[int, ...], pooled: int):
    """3x3 ReLU convolutions with ``padding="same"`` (tiny 8x8 inputs survive the pooling);
    the first ``pooled`` of them are followed by 2x2 max pooling."""
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 3, activation="relu", padding="same")(x)
        if i < pooled:
            x = layers.MaxPooling2D(2)(x)
    return x


@register("cnn", kinds=("image",), tasks=("classification",),
          description="MNIST-style: conv 32, pool, conv 64, pool, flatten, dense softmax",
          preprocessing="pixels / 255, NHWC")
def cnn(spec: DataSpec):
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = conv_blocks(layers, inputs, (32, 64), pooled=2)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


@register("cifar_cnn", kinds=("image",), tasks=("classification",),
          description="three conv blocks (32, 64, 64), dense 64, class logits",
          preprocessing="pixels / 255, NHWC; outputs logits")
def cifar_cnn(spec: DataSpec):
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = conv_blocks(layers, inputs, (32, 64, 64), pooled=2)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(spec.num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="cifar_cnn")


@register("conv_autoencoder", kinds=("image",), tasks=("classification", "regression"),
          mode="autoencoder",
          description="conv 16-8 encoder, upsampling decoder, sigmoid image reconstruction",
          preprocessing="pixels / 255, NHWC; sides divisible by 4")
def conv_autoencoder(spec: DataSpec):
    import keras

    layers = keras.layers
    channels = spec.input_shape[-1]
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, name="code")(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = layers.UpSampling2D(2)(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.UpSampling2D(2)(x)
    outputs = layers.Conv2D(channels, 3, activation="sigmoid", padding="same",
                            name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="conv_autoencoder")
