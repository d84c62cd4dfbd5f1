"""Models that read raw strings through TextVectorization (export/text_input.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.export.errors import ConversionError
from edge_infer.export.exporter import ExportConfig, export
from edge_infer.runtime import Model
from edge_infer.runtime.cli import cli

TEXTS = ["Win a FREE prize now!", "see you at lunch", "claim your cash prize, now",
         "love you, see you at home", "free cash: win now", "lunch at home?"]


def _string_model(tmp_path, vectorizer_options=None, recurrent=True, rank=2):
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    vectorizer = layers.TextVectorization(**({"max_tokens": 40, "output_sequence_length": 9}
                                             | (vectorizer_options or {})))
    vectorizer.adapt(TEXTS)
    text = keras.Input((1,) if rank == 2 else (), dtype="string", name="message")
    x = layers.Embedding(40, 8, mask_zero=True)(vectorizer(text))
    x = layers.LSTM(6)(x) if recurrent else layers.GlobalAveragePooling1D()(x)
    model = keras.Model(text, layers.Dense(2, activation="softmax", name="label")(x))
    model.save(tmp_path / "strings.keras")
    return model


def test_a_string_model_runs_on_raw_text_as_keras_does(tmp_path):
    """The network is exported from the token ids on (a fused, masked LSTM), the vocabulary
    goes into the metadata, and `edge-infer run model.onnx "text"` gives Keras' answer."""
    import onnx

    model = _string_model(tmp_path)
    logs: list[str] = []
    result = export(ExportConfig(tmp_path / "strings.keras"), log=logs.append)
    assert result.parity.passed and result.parity.samples == 64
    proto = onnx.load(str(result.path))
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 1
    assert "Loop" not in {n.op_type for n in proto.graph.node}
    loaded = Model(result.path)
    assert loaded.signature.input_names == ("message",)
    assert loaded.metadata.preprocess.sequence_length == 9
    assert "prize" in loaded.metadata.preprocess.vocabulary
    sentence = "Claim the FREE prize, now!!"
    ran = CliRunner().invoke(cli, ["run", str(result.path), sentence, "--format", "json"])
    assert ran.exit_code == 0, ran.output
    got = np.asarray(json.loads(ran.output)["outputs"]["label"])
    np.testing.assert_allclose(got, np.asarray(model(np.array([[sentence]]))), atol=1e-5)


@pytest.mark.parametrize("options,rank", [({"standardize": "lower", "split": "character",
                                            "output_sequence_length": 30}, 2),
                                          ({"output_sequence_length": None}, 1)])
def test_other_tokenizer_settings_and_open_lengths_keep_parity(tmp_path, options, rank):
    """Characters with punctuation kept, and rows as long as the longest in the batch from a
    rank-1 string input: the parity check runs Keras on the sentences, ONNX on the runtime's
    ids, so a tokenizer that differed would fail it."""
    _string_model(tmp_path, options, recurrent=False, rank=rank)
    result = export(ExportConfig(tmp_path / "strings.keras"))
    pre = Model(result.path).metadata.preprocess
    assert (pre.standardize, pre.split) == (options.get("standardize", pre.standardize),
                                            options.get("split", "whitespace"))
    assert result.parity.passed


def test_a_tokenizer_the_runtime_does_not_have_is_refused_with_the_reason(tmp_path):
    """A bag of words (multi_hot) is not token ids: nothing is written, and the message says
    which setting and what the runtime's tokenizer does."""
    import keras

    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_mode="multi_hot")
    vectorizer.adapt(TEXTS)
    text = keras.Input((1,), dtype="string", name="t")
    keras.Model(text, keras.layers.Dense(2)(vectorizer(text))).save(tmp_path / "bag.keras")
    with pytest.raises(ConversionError, match="output_mode 'multi_hot'.*export the model"):
        export(ExportConfig(tmp_path / "bag.keras"))
    assert not (tmp_path / "bag.onnx").exists()


def test_text_beside_another_input_is_refused_with_the_reason(tmp_path):
    import keras

    layers = keras.layers
    vectorizer = layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorizer.adapt(TEXTS)
    text, extra = keras.Input((1,), dtype="string", name="t"), keras.Input((3,), name="x")
    pooled = layers.GlobalAveragePooling1D()(layers.Embedding(20, 4)(vectorizer(text)))
    model = keras.Model([text, extra], layers.Dense(2)(layers.Concatenate()([pooled, extra])))
    model.save(tmp_path / "two.keras")
    with pytest.raises(ConversionError, match="input t takes strings.*found 2 inputs"):
        export(ExportConfig(tmp_path / "two.keras"))
