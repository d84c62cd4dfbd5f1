"""Recurrent networks: ``lstm`` and ``gru``, for token sequences (text) and numeric sequences."""

from __future__ import annotations

from .registry import DataSpec, register

EMBEDDING = 64


def _recurrent(spec: DataSpec, cell: str):
    import keras

    layers = keras.layers
    rnn = getattr(layers, cell)
    if spec.kind == "text":
        inputs = keras.Input(shape=spec.input_shape, name="tokens", dtype="int64")
        x = layers.Embedding(spec.vocab_size or 20000, EMBEDDING)(inputs)
        x = rnn(64)(x)
    else:  # [steps, features] numeric sequences: stacked layers
        inputs = keras.Input(shape=spec.input_shape, name="sequence")
        x = rnn(64, return_sequences=True)(inputs)
        x = rnn(32)(x)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=cell.lower())


@register("lstm", kinds=("text", "sequence"), tasks=("classification",), epochs=150,
          learning_rate=3e-3,
          description="text: embedding 64 + LSTM 64; sequences: stacked LSTM 64-32; softmax",
          preprocessing="text: token ids from the stored vocabulary; sequences as given")
def lstm(spec: DataSpec):
    return _recurrent(spec, "LSTM")


@register("gru", kinds=("text", "sequence"), tasks=("classification",), epochs=150,
          learning_rate=3e-3,
          description="the lstm architecture with GRU cells",
          preprocessing="text: token ids from the stored vocabulary; sequences as given")
def gru(spec: DataSpec):
    return _recurrent(spec, "GRU")
