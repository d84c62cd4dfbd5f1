"""TimeDistributed layers traced as one call on batch x time (export/time_distributed.py)."""

from __future__ import annotations

import numpy as np

from edge_infer.export.exporter import ExportConfig, _convert, export


def _frames_model():
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    frames = keras.Input((6, 10, 10, 1), name="frames")
    x = layers.TimeDistributed(layers.Conv2D(4, 3, activation="relu"))(frames)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D())(x)
    x = layers.TimeDistributed(layers.Dense(5))(x)
    x = layers.LSTM(6)(x)
    return keras.Model(frames, layers.Dense(3, activation="softmax", name="label")(x))


def test_a_frame_model_has_one_convolution_not_one_per_frame(tmp_path):
    import onnx
    import onnxruntime as ort

    model = _frames_model()
    model.save(tmp_path / "frames.keras")
    result = export(ExportConfig(tmp_path / "frames.keras"))
    ops = [n.op_type for n in onnx.load(str(result.path)).graph.node]
    assert ops.count("Conv") == 1 and ops.count("MatMul") <= 2 and len(ops) < 25, ops
    assert result.parity.passed
    x = np.random.default_rng(3).random((4, 6, 10, 10, 1), dtype=np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"frames": x})[0], np.asarray(model(x)),
                               atol=1e-5)
    wrappers = [layer for layer in model.layers if type(layer).__name__ == "TimeDistributed"]
    assert wrappers and all("call" not in layer.__dict__ for layer in wrappers)


def test_a_layer_that_mixes_samples_stays_one_call_per_step(tmp_path):
    """Subtracting the batch mean is not per sample: called on batch x time it would average
    over every step. The converted graph differs from Keras, so the export converts again with
    Keras' loop, and matches."""
    import keras
    import onnxruntime as ort

    steps = keras.Input((3, 4), name="steps")
    centred = keras.layers.TimeDistributed(keras.layers.Lambda(
        lambda x: x - keras.ops.mean(x, axis=0, keepdims=True)))(steps)
    model = keras.Model(steps, centred)
    logs: list[str] = []
    proto = _convert(model, ExportConfig(tmp_path / "unused.keras"), logs.append)
    assert any("TimeDistributed layers are traced as Keras writes them" in line
               for line in logs), logs
    x = np.random.default_rng(0).random((5, 3, 4), dtype=np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"steps": x})[0], np.asarray(model(x)),
                               atol=1e-6)
