"""Models that take raw strings through a Keras ``TextVectorization`` layer.

A Keras text model is often built end to end: ``Input(dtype="string")``, then
``TextVectorization``, then the network. tf2onnx cannot convert the vectorizer (string
standardisation, splitting, a lookup table), and the error it leaves is about an unrelated
missing input. ONNX models here take numbers, and edge-infer's runtime already tokenizes raw
text the way ``TextVectorization`` does, from a vocabulary in the metadata
(:mod:`edge_infer.runtime.inputs.text`). So the network is exported from the vectorizer's
output on, the vectorizer's settings and vocabulary go into ``edge_infer.preprocess``, and
``edge-infer run model.onnx "some text"`` gives what the Keras model gives on that string.

That is proved, not assumed: the exporter's parity check runs the whole Keras model on
sentences made of the vocabulary's words (mixed case, punctuation, unknown words, too short
and too long) and the ONNX model on what the runtime's tokenizer makes of the same sentences.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_infer.runtime.metadata import SPLITS, STANDARDIZE, TextPreprocess

from .convert import input_name
from .errors import ConversionError

PROBE_SENTENCES = 64


@dataclass(frozen=True)
class TextFront:
    """A string model split at its vectorizer: ``network`` takes the token ids."""

    model: Any  # the whole Keras model, strings in
    network: Any  # from the vectorizer's output on
    input_name: str  # the string input's name, kept for the token-id input
    preprocess: TextPreprocess

    def probe(self, count: int = PROBE_SENTENCES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sentences as the Keras model takes them, and the token ids the runtime's tokenizer
        makes of them."""
        from edge_infer.runtime.inputs.text import Tokenizer

        sentences = _sentences(self.preprocess, count, seed)
        ids = Tokenizer(self.preprocess).encode(sentences, self.preprocess.sequence_length)
        strings = np.array(sentences, dtype=object)
        if len(self.model.inputs[0].shape) == 2:
            strings = strings[:, np.newaxis]
        return strings, ids.astype(str(self.network.inputs[0].dtype))


def _sentences(pre: TextPreprocess, count: int, seed: int) -> list[str]:
    """Vocabulary words in mixed case with punctuation around them, some unknown words (one
    not ASCII: Keras lowercases ASCII letters only), and lengths from one word to a few past
    the sequence length."""
    rng = random.Random(seed)
    words = [w for w in pre.vocabulary if w and w != "[UNK]"] or ["word"]
    longest = (pre.sequence_length or 10) + 3
    sentences = []
    for i in range(count):
        picked = [rng.choice(words) if rng.random() > 0.1 else rng.choice(["zqxv", "Été"])
                  for _ in range(rng.randint(1, longest))]
        shaped = [w.upper() if rng.random() < 0.2 else w.capitalize() if rng.random() < 0.2
                  else w for w in picked]
        sentence = " ".join(shaped)
        if i % 3 == 0:
            sentence = sentence.replace(" ", ", ", 1) + rng.choice(["!", "?", "."])
        sentences.append(sentence if i % 7 else f"  {sentence}\t")
    return sentences


def text_front(model: Any) -> TextFront | None:
    """The split of a model whose only input is strings read by one ``TextVectorization``,
    None for a model without string inputs; a string input edge-infer cannot split is refused
    with the reason."""
    import keras

    strings = [inp for inp in model.inputs if "string" in str(inp.dtype)]
    if not strings:
        return None
    name = input_name(strings[0])
    vectorizers = [layer for layer in model.layers
                   if isinstance(layer, keras.layers.TextVectorization)]
    if len(model.inputs) > 1 or len(vectorizers) != 1:
        raise ConversionError(
            f"input {name} takes strings, which ONNX models here do not: edge-infer exports a "
            f"model whose one input is text read by one TextVectorization layer (found "
            f"{len(model.inputs)} inputs and {len(vectorizers)} TextVectorization layers); "
            "otherwise export the model from the token ids on")
    vectorizer = vectorizers[0]
    config = vectorizer.get_config()
    reasons = []
    if config.get("output_mode") != "int":
        reasons.append(f"output_mode {config.get('output_mode')!r} (only 'int')")
    if config.get("ngrams"):
        reasons.append("ngrams")
    if config.get("standardize") not in STANDARDIZE and config.get("standardize") is not None:
        reasons.append(f"standardize {config.get('standardize')!r}")
    if config.get("split") not in SPLITS:
        reasons.append(f"split {config.get('split')!r}")
    if config.get("ragged"):
        reasons.append("ragged output")
    if reasons:
        raise ConversionError(
            f"{vectorizer.name} turns text into numbers in a way edge-infer's runtime tokenizer "
            f"does not ({', '.join(reasons)}); it tokenizes as TextVectorization(output_mode="
            f"'int', standardize={list(STANDARDIZE)}, split={list(SPLITS)}) does: export the "
            "model from the token ids on")
    if vectorizer.input is not strings[0]:
        raise ConversionError(f"input {name} reaches {vectorizer.name} through other layers; "
                              "edge-infer exports a TextVectorization that reads the input")
    network = keras.Model(vectorizer.output, model.outputs, name=model.name)
    preprocess = TextPreprocess(
        vocabulary=tuple(str(t) for t in vectorizer.get_vocabulary()),
        standardize=config.get("standardize") or "none", split=config["split"],
        sequence_length=config.get("output_sequence_length"))
    return TextFront(model, network, name, preprocess)
