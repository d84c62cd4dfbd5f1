"""The model metadata contract shared by the exporter and the runtime.

This module is the one place the contract is written down. The exporter (``edge_infer.export``)
writes these keys into the ONNX model's ``metadata_props``; the runtime reads them when present
and runs any model without them. Values are strings; structured values are JSON.

======================== ===================================================================
key                      value
======================== ===================================================================
``edge_infer.metadata``  contract version, ``"1"``.
``edge_infer.task``      ``classification`` | ``regression`` | ``reconstruction`` |
                         ``generation`` | ``embedding`` | ``other``.
``edge_infer.labels``    JSON list of class names, index ``i`` naming output column ``i``.
                         Labels without a task imply ``classification``.
``edge_infer.preprocess`` JSON object with ``"kind": "image"`` or ``"kind": "text"``, see below.
``edge_infer.output``    JSON object describing the first output, see below.
======================== ===================================================================

Image preprocessing (``"kind": "image"``), applied to decoded images by ``edge-infer run``::

    {"kind": "image", "size": [height, width], "channels": 1 | 3 | 4,
     "layout": "NHWC" | "NCHW", "scale": 0.00392156862745098, "offset": 0.0,
     "mean": [..] | null, "std": [..] | null, "invert": false, "resize": "bilinear",
     "input": "<input name, default the first input>"}

A pixel ``p`` in 0..255 (after ``255 - p`` when ``invert``) becomes ``p * scale + offset``, then
``(x - mean) / std`` per channel when those are given. ``size``, ``channels`` and ``layout`` default
to what the input's static shape says.

Text preprocessing (``"kind": "text"``) mirrors Keras ``TextVectorization`` in ``int`` mode::

    {"kind": "text", "vocabulary": ["", "[UNK]", "the", ...],
     "standardize": "lower_and_strip_punctuation" | "lower" | "strip_punctuation" | "none",
     "split": "whitespace" | "character", "sequence_length": 64 | null,
     "input": "<input name>"}

Token ``i`` of the vocabulary has id ``i``; id 0 pads, a word not in the vocabulary takes the id of
``"[UNK]"`` (1 in Keras' layout). Sequences are truncated or right-padded to ``sequence_length``.

Output description (``edge_infer.output``)::

    {"kind": "probabilities" | "logits" | "sigmoid" | "image" | "values",
     "scale": .., "offset": .., "layout": "NHWC" | "NCHW"}

``probabilities`` and ``sigmoid`` outputs are used as scores as they are, ``logits`` get a
softmax; without this key the runtime applies a softmax only when a row is not already a
probability distribution. For ``image`` outputs a value ``y`` maps back to a pixel as
``(y - offset) / scale``.

Provenance keys written by the exporter and shown by ``edge-infer info`` (the runtime does not
interpret them): ``edge_infer.source`` (JSON: framework and versions), ``edge_infer.dataset``,
``edge_infer.metrics`` (JSON), ``edge_infer.parity`` (JSON), ``edge_infer.quantization`` (JSON),
``edge_infer.weights_sha256``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from .records import Record, field

PREFIX = "edge_infer."
KEY_VERSION = PREFIX + "metadata"
KEY_TASK = PREFIX + "task"
KEY_LABELS = PREFIX + "labels"
KEY_PREPROCESS = PREFIX + "preprocess"
KEY_OUTPUT = PREFIX + "output"
CONTRACT_VERSION = "1"

TASKS = ("classification", "regression", "reconstruction", "generation", "embedding", "other")
LAYOUTS = ("NHWC", "NCHW")
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none")
SPLITS = ("whitespace", "character")
OUTPUT_KINDS = ("probabilities", "logits", "sigmoid", "image", "values")
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class MetadataError(ValueError):
    """A metadata value breaks the contract; the key is then ignored with a warning."""


def _choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise MetadataError(f"{what} must be one of {', '.join(allowed)}, found {value!r}")
    return value


def _floats(value: Any, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (float(value),)
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        raise MetadataError(f"{what} must be a number or a list of numbers, found {value!r}")
    return tuple(float(v) for v in value)


class ImagePreprocess(Record):
    """How a decoded 0..255 image becomes the model's input tensor."""

    size: tuple[int, int] | None = None
    channels: int | None = None
    layout: str | None = None
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    invert: bool = False
    resize: str = "bilinear"
    input: str | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise MetadataError(f"image size must be [height, width], found {list(self.size)}")
        if self.channels is not None and self.channels not in (1, 3, 4):
            raise MetadataError(f"image channels must be 1, 3 or 4, found {self.channels}")
        if self.layout is not None:
            _choice(self.layout, LAYOUTS, "image layout")
        _choice(self.resize, RESAMPLING, "image resize")
        if self.std is not None and any(s == 0 for s in self.std):
            raise MetadataError("image std must not contain 0")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImagePreprocess:
        size = d.get("size")
        if isinstance(size, int):
            size = [size, size]
        if size is not None and not (isinstance(size, list) and all(isinstance(s, int) for s in size)):
            raise MetadataError(f"image size must be [height, width], found {size!r}")
        return cls(
            size=tuple(size) if size is not None else None,
            channels=d.get("channels"),
            layout=d.get("layout"),
            scale=float(d.get("scale", 1.0 / 255.0)),
            offset=float(d.get("offset", 0.0)),
            mean=_floats(d.get("mean"), "image mean"),
            std=_floats(d.get("std"), "image std"),
            invert=bool(d.get("invert", False)),
            resize=d.get("resize", "bilinear"),
            input=d.get("input"),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "image", "scale": self.scale, "offset": self.offset,
                             "invert": self.invert, "resize": self.resize}
        for name in ("size", "channels", "layout", "mean", "std", "input"):
            value = getattr(self, name)
            if value is not None:
                d[name] = list(value) if isinstance(value, tuple) else value
        return d


class TextPreprocess(Record):
    """How raw text becomes token ids, the way Keras ``TextVectorization`` does it."""

    vocabulary: tuple[str, ...]
    standardize: str = "lower_and_strip_punctuation"
    split: str = "whitespace"
    sequence_length: int | None = None
    input: str | None = None

    def __post_init__(self) -> None:
        if not self.vocabulary:
            raise MetadataError("text vocabulary must not be empty")
        _choice(self.standardize, STANDARDIZE, "text standardize")
        _choice(self.split, SPLITS, "text split")
        if self.sequence_length is not None and self.sequence_length < 1:
            raise MetadataError(f"text sequence_length must be >= 1, found {self.sequence_length}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextPreprocess:
        vocab = d.get("vocabulary")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise MetadataError("text vocabulary must be a JSON list of strings")
        return cls(
            vocabulary=tuple(vocab),
            standardize=d.get("standardize", "lower_and_strip_punctuation"),
            split=d.get("split", "whitespace"),
            sequence_length=d.get("sequence_length"),
            input=d.get("input"),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "text", "vocabulary": list(self.vocabulary),
                             "standardize": self.standardize, "split": self.split,
                             "sequence_length": self.sequence_length}
        if self.input is not None:
            d["input"] = self.input
        return d


class OutputSpec(Record):
    """What the first output holds, so the runtime post-processes it correctly."""

    kind: str = "values"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    layout: str | None = None

    def __post_init__(self) -> None:
        _choice(self.kind, OUTPUT_KINDS, "output kind")
        if self.layout is not None:
            _choice(self.layout, LAYOUTS, "output layout")
        if self.scale == 0:
            raise MetadataError("output scale must not be 0")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputSpec:
        return cls(kind=d.get("kind", "values"), scale=float(d.get("scale", 1.0 / 255.0)),
                   offset=float(d.get("offset", 0.0)), layout=d.get("layout"))

    def to_dict(self) -> dict[str, Any]:
        """Scale and offset only where they mean something (an image output) or were changed:
        a classifier's file should not carry a pixel scale its runtime never reads."""
        d: dict[str, Any] = {"kind": self.kind}
        default = (self._defaults["scale"], self._defaults["offset"])
        if self.kind == "image" or (self.scale, self.offset) != default:
            d.update(scale=self.scale, offset=self.offset)
        if self.layout is not None:
            d["layout"] = self.layout
        return d


Preprocess = ImagePreprocess | TextPreprocess
_PREPROCESS_KINDS: dict[str, type] = {"image": ImagePreprocess, "text": TextPreprocess}


class ModelMetadata(Record):
    """The parsed contract, plus every raw ``metadata_props`` entry (ours and foreign)."""

    task: str | None = None
    labels: tuple[str, ...] | None = None
    preprocess: Preprocess | None = None
    output: OutputSpec | None = None
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ModelMetadata:
        """Parse ``metadata_props``; a key that breaks the contract is ignored with a warning."""
        parsed: dict[str, Any] = {}
        for key, parse in ((KEY_TASK, _parse_task), (KEY_LABELS, _parse_labels),
                           (KEY_PREPROCESS, _parse_preprocess), (KEY_OUTPUT, _parse_output)):
            if key not in props:
                continue
            try:
                parsed[key] = parse(props[key])
            except (MetadataError, ValueError, TypeError) as exc:
                warnings.warn(f"ignoring model metadata {key}: {exc}", stacklevel=3)
        task = parsed.get(KEY_TASK)
        labels = parsed.get(KEY_LABELS)
        if task is None and labels is not None:
            task = "classification"
        return cls(task=task, labels=labels, preprocess=parsed.get(KEY_PREPROCESS),
                   output=parsed.get(KEY_OUTPUT), raw=dict(props))

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries for this metadata (what the exporter writes)."""
        props = {KEY_VERSION: CONTRACT_VERSION}
        if self.task is not None:
            props[KEY_TASK] = self.task
        if self.labels is not None:
            props[KEY_LABELS] = _dumps(list(self.labels))
        if self.preprocess is not None:
            props[KEY_PREPROCESS] = _dumps(self.preprocess.to_dict())
        if self.output is not None:
            props[KEY_OUTPUT] = _dumps(self.output.to_dict())
        return props


def _loads(value: str) -> Any:
    import json  # only models that carry our metadata pay for it

    return json.loads(value)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value)


def _parse_task(value: str) -> str:
    return _choice(value.strip(), TASKS, "task")


def _parse_labels(value: str) -> tuple[str, ...]:
    labels = _loads(value)
    if not isinstance(labels, list) or not labels:
        raise MetadataError("labels must be a non-empty JSON list")
    return tuple(str(label) for label in labels)


def _parse_preprocess(value: str) -> Preprocess:
    d = _loads(value)
    if not isinstance(d, dict):
        raise MetadataError("preprocess must be a JSON object")
    kind = d.get("kind")
    if kind not in _PREPROCESS_KINDS:
        raise MetadataError(f"preprocess kind must be one of image, text, found {kind!r}")
    return _PREPROCESS_KINDS[kind].from_dict(d)


def _parse_output(value: str) -> OutputSpec:
    d = _loads(value)
    if not isinstance(d, dict):
        raise MetadataError("output must be a JSON object")
    return OutputSpec.from_dict(d)
