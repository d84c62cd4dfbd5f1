"""MultiHeadAttention traced as matmuls on [batch, heads, steps, size] (export/attention.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edge_infer.export.exporter import ExportConfig, export


def _run(path, feed):
    import onnxruntime as ort

    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feed)


def _biased(model):
    """Random biases, so that a bias added to the wrong head or step shows."""
    for i, weight in enumerate(model.weights):
        if "bias" in weight.path:
            weight.assign(np.random.default_rng(i).normal(size=weight.shape) * 0.3)
    return model


def _self_attention(steps: int | None, causal: bool = False):
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    x = keras.Input((steps, 16), name="x")
    attended = layers.MultiHeadAttention(2, 8)(x, x, use_causal_mask=causal)
    pooled = layers.GlobalAveragePooling1D()(layers.Add()([x, attended]))
    return _biased(keras.Model(x, layers.Dense(3, activation="softmax", name="label")(pooled)))


@pytest.mark.parametrize("steps,causal", [(10, False), (10, True), (None, False)])
def test_self_attention_has_no_einsum_reshapes(tmp_path, steps, causal):
    """tf2onnx's einsum lowering wrapped each product in Unsqueeze/Transpose/Reshape/Squeeze
    (37 operators for the fixed-length block, 46 causal, 83 with open steps); the rewrite
    leaves one Transpose per operand and the projections' reshapes (with open steps, the
    projections still compute their reshapes' targets)."""
    model = _self_attention(steps, causal)
    model.save(tmp_path / "att.keras")
    result = export(ExportConfig(tmp_path / "att.keras"))
    import onnx

    ops = Counter(n.op_type for n in onnx.load(str(result.path)).graph.node)
    assert ops["Transpose"] == 4, ops
    if steps is None:
        assert sum(ops.values()) <= 45, ops  # 86 before
    else:
        assert ops["Unsqueeze"] == 0 and ops["Squeeze"] == 0 and ops["Reshape"] <= 5, ops
        assert sum(ops.values()) <= 26, ops
    for rows in (1, 5):
        x = np.random.default_rng(rows).random((rows, steps or 7, 16), dtype=np.float32)
        np.testing.assert_allclose(_run(result.path, {"x": x})[0], np.asarray(model(x)),
                                   atol=1e-5)
    layer = next(layer for layer in model.layers if "attention" in layer.name)
    assert "_compute_attention" not in layer.__dict__  # the model is as it was


@pytest.mark.parametrize("dropout,causal", [(0.0, False), (0.2, False), (0.0, True),
                                            (0.2, True)])
def test_masked_text_attention_matches_keras_on_every_padding(dropout, causal):
    """An Embedding(mask_zero=True) gives the attention a padding mask: padded keys get no
    weight, as in Keras, for rows padded after, before, not at all, and entirely. A padded
    query has every key masked: Keras leaves its row uniform without dropout and zeroes it with
    dropout (another code path), and the next attention reads those outputs."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    ids = keras.Input((8,), dtype="int32", name="ids")
    x = layers.Embedding(30, 16, mask_zero=True)(ids)
    for _ in range(2):
        x = layers.Add()([x, layers.MultiHeadAttention(2, 8, dropout=dropout)(
            x, x, use_causal_mask=causal)])
    pooled = layers.GlobalAveragePooling1D()(x)
    model = _biased(keras.Model(ids, layers.Dense(3, name="label")(pooled)))
    from edge_infer.export.exporter import _convert

    logs: list[str] = []
    proto = _convert(model, ExportConfig("unused.keras"), logs.append)
    assert not any("traced as Keras writes them" in line for line in logs), logs
    rows = np.array([[5, 6, 7, 0, 0, 0, 0, 0], [0, 0, 0, 9, 8, 7, 6, 5],
                     [1, 2, 3, 4, 5, 6, 7, 8], [0] * 8, [3, 0, 4, 0, 5, 0, 6, 0]], np.int32)
    np.testing.assert_allclose(_run(proto.SerializeToString(), {"ids": rows})[0],
                               np.asarray(model(rows)), atol=1e-5)
    assert not any(n.op_type in ("Unsqueeze", "Squeeze") and "attention" in n.name
                   and "einsum" in "".join(n.input) for n in proto.graph.node)


def test_cross_attention_with_scores_and_other_sizes_keeps_every_output(tmp_path):
    """Query and value of different lengths and widths, a value size of its own, and the
    attention scores as a second output."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    query, value = keras.Input((6, 16), name="query"), keras.Input((9, 12), name="value")
    out, scores = layers.MultiHeadAttention(4, 4, value_dim=5)(
        query, value, return_attention_scores=True)
    model = _biased(keras.Model([query, value], [out, scores]))
    model.save(tmp_path / "cross.keras")
    logs: list[str] = []
    result = export(ExportConfig(tmp_path / "cross.keras"), log=logs.append)
    assert not any("traced as Keras writes them" in line for line in logs), logs
    rng = np.random.default_rng(2)
    q, v = rng.random((3, 6, 16), dtype=np.float32), rng.random((3, 9, 12), dtype=np.float32)
    got, want = _run(result.path, {"query": q, "value": v}), model([q, v])
    assert got[1].shape == (3, 4, 6, 9)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), atol=1e-5)


def test_a_subclass_with_its_own_attention_keeps_it(tmp_path):
    """A layer that overrides _compute_attention means something else by it: it is traced as
    written, and the export still matches it."""
    import keras

    class Sharpened(keras.layers.MultiHeadAttention):
        def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                               return_attention_scores=False, use_causal_mask=False):
            out, scores = super()._compute_attention(query * 2.0, key, value, attention_mask,
                                                     training, return_attention_scores,
                                                     use_causal_mask)
            return out, scores

    keras.utils.set_random_seed(0)
    x = keras.Input((5, 8), name="x")
    model = keras.Model(x, Sharpened(2, 4)(x, x))
    from edge_infer.export.attention import matmul_attention

    with matmul_attention(model) as rewritten:
        assert rewritten == 0
    from edge_infer.export.exporter import _convert

    proto = _convert(model, ExportConfig("unused.keras"))
    x = np.random.default_rng(0).random((2, 5, 8), dtype=np.float32)
    np.testing.assert_allclose(_run(proto.SerializeToString(), {"x": x})[0],
                               np.asarray(model(x)), atol=1e-5)
