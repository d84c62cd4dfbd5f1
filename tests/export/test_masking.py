"""Masked recurrent layers (export/masking.py): fused with sequence lengths where that computes
what Keras computes, tf2onnx's loop kept where it does not."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.export.exporter import ExportConfig, export
from edge_infer.export.masking import (MaskedInput, masked_input, padding_probe,
                                       unmasked_recurrence)


def _text_model(head: str, dtype: str = "int64"):
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    tokens = keras.Input((12,), dtype=dtype, name="tokens")
    x = layers.Embedding(30, 8, mask_zero=True)(tokens)
    if head == "gru_lstm":
        x = layers.LSTM(6)(layers.GRU(8, return_sequences=True)(x))
    elif head == "bidirectional_backwards":
        x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
        x = layers.GRU(5, go_backwards=True)(x)
    elif head == "simple_rnn":  # a bidirectional SimpleRNN (two RNN operators) -> GRU
        x = layers.GRU(6)(layers.Bidirectional(layers.SimpleRNN(8, return_sequences=True))(x))
    elif head == "average":  # Keras averages over the unmasked steps only
        x = layers.GlobalAveragePooling1D()(layers.LSTM(6, return_sequences=True)(x))
    elif head == "sequence":  # one output per step, in the input's step order
        return keras.Model(tokens, layers.Dense(2)(layers.LSTM(6, return_sequences=True)(x)))
    elif head == "bidirectional_sequence":  # Keras zeros the padded steps here
        return keras.Model(tokens, layers.Dense(2)(layers.Bidirectional(
            layers.LSTM(6, return_sequences=True))(x)))
    elif head == "backwards_sequence":  # steps in reverse order, padding first or last
        return keras.Model(tokens, layers.Dense(2)(
            layers.LSTM(6, return_sequences=True, go_backwards=True)(x)))
    return keras.Model(tokens, layers.Dense(3, activation="softmax", name="label")(x))


def _rows() -> np.ndarray:
    """Padding after, before, in between, none, and all padding."""
    rows = np.random.default_rng(7).integers(1, 30, (5, 12))
    rows[0, 7:] = 0
    rows[1, :9] = 0
    rows[2, [1, 4, 5, 10]] = 0
    rows[4] = 0
    return np.concatenate([rows, padding_probe(MaskedInput("tokens", 12, "embedding", vocabulary=30),
                                                seed=3)])


def _ops(path) -> list:
    import onnx

    return list(onnx.load(path).graph.node)


FUSED = {"gru_lstm": ["GRU", "LSTM"], "bidirectional_backwards": ["GRU", "LSTM"],
         "simple_rnn": ["GRU", "RNN", "RNN"], "average": ["LSTM"], "sequence": ["LSTM"],
         "bidirectional_sequence": ["LSTM"]}  # a bidirectional LSTM is one operator


@pytest.mark.parametrize("head", list(FUSED))
def test_masked_recurrent_layers_become_fused_operators_with_sequence_lengths(head, tmp_path):
    """Stacked masked GRU -> LSTM, bidirectional LSTM -> backwards GRU, bidirectional
    SimpleRNN -> GRU, an LSTM whose steps
    Keras averages over the unmasked ones, and one with an output per step, export without
    loops, every recurrent operator reads the row lengths, and the model matches masked Keras
    whatever the padding (the average of an all-padding row is NaN in both; a padded step
    repeats the last output before it, or is zeros for a bidirectional layer)."""
    import onnxruntime as ort

    model = _text_model(head)
    model.save(tmp_path / "text.keras")
    logs: list[str] = []
    result = export(ExportConfig(tmp_path / "text.keras"), log=logs.append)
    nodes = _ops(result.path)
    recurrent = [n for n in nodes if n.op_type in ("LSTM", "GRU", "RNN")]
    assert sorted(n.op_type for n in recurrent) == FUSED[head]
    assert "Loop" not in {n.op_type for n in nodes}
    assert all(len(n.input) > 4 and n.input[4] for n in recurrent)
    assert any("fused with sequence lengths" in line for line in logs), logs
    rows = _rows()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"tokens": rows})[0]
    np.testing.assert_allclose(got, np.asarray(model(rows)), atol=1e-5)


def test_int32_token_ids_fuse_too(tmp_path):
    """The padding probe is in the input's own type: int64 rows into an int32 input stopped the
    export with onnxruntime's type error."""
    import onnxruntime as ort

    model = _text_model("gru_lstm", dtype="int32")
    model.save(tmp_path / "text.keras")
    result = export(ExportConfig(tmp_path / "text.keras"))
    assert "Loop" not in {n.op_type for n in _ops(result.path)}
    rows = _rows().astype(np.int32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"tokens": rows})[0], np.asarray(model(rows)),
                               atol=1e-5)


def test_a_masking_layer_on_float_steps_fuses_the_same_way(tmp_path):
    """``Masking(mask_value=-1)`` on [steps, features] sequences: a step is padding when every
    feature equals the value. A bidirectional GRU then an LSTM fuse, with lengths, and match
    Keras however the padding lies."""
    import keras
    import onnxruntime as ort

    layers = keras.layers
    keras.utils.set_random_seed(0)
    steps = keras.Input((15, 3), name="sequence")
    x = layers.Masking(mask_value=-1.0)(steps)
    x = layers.LSTM(6)(layers.Bidirectional(layers.GRU(5, return_sequences=True))(x))
    model = keras.Model(steps, layers.Dense(2, activation="softmax", name="label")(x))
    masked = masked_input(model)
    assert (masked.tokens, masked.features, masked.mask_value) == (False, 3, -1.0)
    model.save(tmp_path / "steps.keras")
    result = export(ExportConfig(tmp_path / "steps.keras"))
    nodes = _ops(result.path)
    assert "Loop" not in {n.op_type for n in nodes}
    assert all(len(n.input) > 4 and n.input[4] for n in nodes if n.op_type in ("LSTM", "GRU"))
    rows = padding_probe(masked, seed=11)
    rows[0, 2, 0] = -1.0  # one feature at the mask value is not padding
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"sequence": rows})[0]
    np.testing.assert_allclose(got, np.asarray(model(rows)), atol=1e-5)


def test_a_backwards_tagger_keeps_the_loop(tmp_path):
    """A go_backwards layer's per-step outputs come in reverse step order, padding included;
    the export finds that sequence lengths do not reproduce them on padded rows, keeps
    tf2onnx's loop and still matches Keras."""
    import onnxruntime as ort

    model = _text_model("backwards_sequence")
    model.save(tmp_path / "text.keras")
    logs: list[str] = []
    result = export(ExportConfig(tmp_path / "text.keras"), log=logs.append)
    assert "Loop" in {n.op_type for n in _ops(result.path)}
    assert any("stay tf2onnx loops" in line for line in logs), logs
    rows = _rows()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"tokens": rows})[0]
    np.testing.assert_allclose(got, np.asarray(model(rows)), atol=1e-5)


def test_only_masking_embeddings_before_recurrent_layers_are_candidates():
    import keras

    layers = keras.layers
    tokens = keras.Input((12,), dtype="int64", name="tokens")
    plain = keras.Model(tokens, layers.LSTM(4)(layers.Embedding(30, 8)(tokens)))
    no_rnn = keras.Model(tokens, layers.GlobalAveragePooling1D()(
        layers.Embedding(30, 8, mask_zero=True)(tokens)))
    ragged = keras.Input((None,), dtype="int64", name="tokens")
    dynamic = keras.Model(ragged, layers.LSTM(4)(layers.Embedding(30, 8, mask_zero=True)(ragged)))
    assert masked_input(plain) is None
    assert masked_input(no_rnn) is None
    assert masked_input(dynamic) is None
    two = keras.Model(tokens, layers.LSTM(4)(layers.Embedding(30, 8, mask_zero=True)(
        layers.Masking()(keras.ops.cast(tokens, "float32")))))
    assert masked_input(two) is None  # two masking layers: not one padded input
    model = _text_model("gru_lstm")
    assert masked_input(model) == MaskedInput("tokens", 12, model.layers[1].name, vocabulary=30)


def test_padding_probe_covers_every_padding_pattern():
    probe = padding_probe(MaskedInput("tokens", 10, "embedding", vocabulary=50))
    present = probe != 0
    assert probe.max() < 50 and probe.min() >= 0
    assert present.all(axis=1).any() and (~present).all(axis=1).any()
    ends_padded = ~present[:, -1] & present[:, 0]
    starts_padded = ~present[:, 0] & present[:, -1]
    gaps = [np.flatnonzero(row) for row in present]
    holes = any(len(g) > 1 and (np.diff(g) > 1).any() for g in gaps)
    assert ends_padded.any() and starts_padded.any() and holes


def test_unmasked_recurrence_ignores_the_mask_only_inside_the_block():
    model = _text_model("bidirectional_backwards")
    rows = np.zeros((2, 12), np.int64)
    rows[0, :5] = rows[1, 7:] = [3, 9, 4, 4, 21]  # the same tokens, padded after and before
    masked = np.asarray(model(rows))
    np.testing.assert_allclose(masked[0], masked[1], atol=1e-6)
    with unmasked_recurrence(model):
        plain = np.asarray(model(rows))
    assert np.abs(plain[0] - plain[1]).max() > 1e-4  # the padding was read
    np.testing.assert_allclose(np.asarray(model(rows)), masked, atol=1e-7)
