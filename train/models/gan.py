"""``gan``: a small DCGAN. The generator (latent vector in, image out) is the run's model."""

from __future__ import annotations

from .registry import DataSpec, register

LATENT = 32


def generator(spec: DataSpec):
    import keras

    layers = keras.layers
    h, w, c = spec.input_shape
    inputs = keras.Input(shape=(LATENT,), name="latent")
    x = layers.Dense((h // 4) * (w // 4) * 64)(inputs)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((h // 4, w // 4, 64))(x)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2DTranspose(32, 4, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    outputs = layers.Conv2D(c, 3, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(inputs, outputs, name="generator")


def discriminator(spec: DataSpec):
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(1, name="real_logit")(x)
    return keras.Model(inputs, outputs, name="discriminator")


@register("gan", kinds=("image",), tasks=("classification", "regression"), mode="gan", epochs=300,
          learning_rate=2e-4,
          description="DCGAN; the generator (latent 32 -> image) is the exported model",
          preprocessing="input: a latent vector of 32 standard normal values; output: "
                        "pixels / 255")
def gan(spec: DataSpec):
    return generator(spec)
