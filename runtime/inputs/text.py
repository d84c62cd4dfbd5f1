"""Text inputs for models whose metadata carries a vocabulary (Keras ``TextVectorization``).

Standardisation and splitting follow Keras exactly where it matters: ``lower`` lowercases ASCII
letters only (``tf.strings.lower`` without an encoding), punctuation is ASCII punctuation, and
words are split on runs of ASCII whitespace.
"""

from __future__ import annotations

import os
import re
import string

import numpy as np

from ..errors import InputError
from ..metadata import TextPreprocess
from .base import Batch, LoadContext

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_STRIP = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")
OOV_TOKEN = "[UNK]"


class Tokenizer:
    """Text to padded id sequences; the vocabulary index is built once."""

    def __init__(self, pre: TextPreprocess) -> None:
        self.pre = pre
        self.index = {token: i for i, token in enumerate(pre.vocabulary) if token}
        self.oov = self.index.get(OOV_TOKEN)

    def standardize(self, text: str) -> str:
        mode = self.pre.standardize
        if mode in ("lower", "lower_and_strip_punctuation"):
            text = text.translate(_LOWER)
        if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = text.translate(_STRIP)
        return text

    def tokens(self, text: str) -> list[str]:
        text = self.standardize(text)
        if self.pre.split == "character":
            return list(text)
        return [t for t in _WHITESPACE.split(text) if t]

    def ids(self, text: str) -> list[int]:
        out = []
        for token in self.tokens(text):
            i = self.index.get(token, self.oov)
            if i is not None:
                out.append(i)
        return out

    def decode(self, ids: np.ndarray) -> str:
        """The text of a row of ids, padding (0) left out: what ``encode`` turns back into
        the same ids (an out-of-vocabulary id reads ``[UNK]``, which encodes as unknown
        unless the vocabulary holds the word "unk")."""
        joiner = "" if self.pre.split == "character" else " "
        vocabulary = self.pre.vocabulary
        return joiner.join(vocabulary[i] for i in np.asarray(ids).reshape(-1).tolist()
                           if 0 < i < len(vocabulary))

    def encode(self, texts: list[str], length: int | None) -> np.ndarray:
        seqs = [self.ids(t) for t in texts]
        width = length or max((len(s) for s in seqs), default=1) or 1
        out = np.zeros((len(seqs), width), dtype=np.int64)
        for row, seq in enumerate(seqs):
            seq = seq[:width]
            out[row, : len(seq)] = seq
        return out


def encode_texts(texts: list[str], sources: list[str], ctx: LoadContext) -> Batch:
    pre = ctx.text
    if pre is None:
        raise InputError("this model's metadata has no text vocabulary, so it cannot take raw "
                         "text; pass arrays (.npy, .npz, .json) instead")
    if pre.input:
        spec = ctx.signature.input(pre.input)
    else:
        spec = ctx.signature.inputs[0]
    length = pre.sequence_length
    if length is None and spec.shape and len(spec.shape) > 1 and isinstance(spec.shape[1], int):
        length = spec.shape[1]
    ids = Tokenizer(pre).encode(texts, length)
    if spec.dtype is not None and spec.dtype != ids.dtype:
        ids = ids.astype(spec.dtype)
    return Batch({spec.name: ids}, sources)


def load_txt(path: str, ctx: LoadContext) -> Batch:
    """One example per non-empty line."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as fh:
            numbered = [(i + 1, ln.strip()) for i, ln in enumerate(fh.read().splitlines())
                        if ln.strip()]
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text ({exc})") from None
    if not numbered:
        raise InputError(f"{name} holds no text (expected one example per line)")
    return encode_texts([ln for _, ln in numbered], [f"{name}:{i}" for i, _ in numbered], ctx)
