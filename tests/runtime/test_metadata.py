"""The metadata contract: round trip, defaults, and a broken key never stops a model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from edge_infer.runtime import ImagePreprocess, Model, ModelMetadata, OutputSpec, TextPreprocess
from edge_infer.runtime.metadata import MetadataError
from edge_infer.runtime.predictions import is_distribution, scores, top_k


def test_round_trip_through_props():
    meta = ModelMetadata(task="classification", labels=("a", "b"),
                         preprocess=ImagePreprocess(size=(28, 28), channels=1, layout="NHWC",
                                                    scale=1 / 16, invert=True),
                         output=OutputSpec(kind="logits"))
    props = meta.to_props()
    assert props["edge_infer.metadata"] == "1"
    back = ModelMetadata.from_props(props)
    assert (back.task, back.labels, back.preprocess, back.output) == \
        (meta.task, meta.labels, meta.preprocess, meta.output)


def test_an_output_records_a_pixel_scale_only_where_it_means_something():
    """A classifier's output carries no scale or offset (only an image output maps back to
    pixels); one set by hand is kept; all of them read back as they were written."""
    for spec in (OutputSpec(kind="probabilities"), OutputSpec(kind="image"),
                 OutputSpec(kind="image", scale=2.0, offset=-1.0),
                 OutputSpec(kind="values", scale=0.5)):
        written = json.loads(ModelMetadata(output=spec).to_props()["edge_infer.output"])
        assert ("scale" in written) == (spec.kind == "image" or spec.scale != 1 / 255)
        assert ModelMetadata.from_props({"edge_infer.output": json.dumps(written)}).output \
            == spec


def test_text_round_trip():
    pre = TextPreprocess(vocabulary=("", "[UNK]", "hi"), sequence_length=4)
    back = ModelMetadata.from_props(ModelMetadata(preprocess=pre).to_props()).preprocess
    assert back == pre


def test_labels_alone_imply_classification():
    meta = ModelMetadata.from_props({"edge_infer.labels": '["x", "y"]'})
    assert meta.is_classifier and meta.labels == ("x", "y")


def test_no_metadata_at_all():
    meta = ModelMetadata.from_props({"author": "someone"})
    assert meta.task is None and meta.labels is None and meta.preprocess is None
    assert meta.raw == {"author": "someone"}


@pytest.mark.parametrize("key,value", [
    ("edge_infer.task", "dreaming"),
    ("edge_infer.labels", "not json"),
    ("edge_infer.preprocess", '{"kind": "audio"}'),
    ("edge_infer.preprocess", '{"kind": "image", "channels": 2}'),
    ("edge_infer.preprocess", '{"kind": "text", "vocabulary": []}'),
    ("edge_infer.output", '{"kind": "banana"}'),
])
def test_a_broken_key_is_ignored_with_a_warning(key, value):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = ModelMetadata.from_props({key: value, "edge_infer.labels": '["a"]'}
                                        if key != "edge_infer.labels" else {key: value})
    assert any(key in str(w.message) for w in caught)
    assert meta.raw[key] == value


def test_model_with_broken_metadata_still_runs(models):
    path = models.classifier(metadata={"edge_infer.preprocess": "{oops"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model(path)
    assert model.run(np.ones((1, 4), np.float32))["y"].shape == (1, 3)


def test_image_preprocess_validates():
    with pytest.raises(MetadataError, match="layout"):
        ImagePreprocess(layout="HWCN")
    with pytest.raises(MetadataError, match="std"):
        ImagePreprocess(std=(0.0,))
    assert ImagePreprocess.from_dict({"size": 32}).size == (32, 32)


def test_softmax_only_when_rows_are_not_distributions():
    probs = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(scores(probs), probs)
    logits = np.array([[2.0, 1.0, 0.0]])
    s = scores(logits)
    assert is_distribution(s) and s[0, 0] > s[0, 1] > s[0, 2]
    # Metadata saying "logits" forces the softmax even for rows that look like probabilities.
    assert not np.allclose(scores(probs, OutputSpec(kind="logits")), probs)


def test_binary_single_column():
    s = scores(np.array([[0.9], [0.2]]))
    np.testing.assert_allclose(s, [[0.1, 0.9], [0.8, 0.2]])
    s = scores(np.array([[3.0]]))  # a logit: sigmoid applied
    assert s[0, 1] == pytest.approx(1 / (1 + np.exp(-3)))


def test_top_k_labels_and_clamping():
    rows = top_k(np.array([[0.1, 0.6, 0.3]]), k=10, labels=["a", "b", "c"])
    assert [(p.label, round(p.score, 3)) for p in rows[0]] == [("b", 0.6), ("c", 0.3), ("a", 0.1)]
    assert json.dumps(rows[0][0].to_dict())


def test_predicted_classes_for_softmax_and_sigmoid_outputs():
    from edge_infer.runtime.predictions import predicted_classes

    assert predicted_classes(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])).tolist() == [1, 0]
    assert predicted_classes(np.array([[0.9], [0.2], [0.5]])).tolist() == [1, 0, 0]


@pytest.mark.parametrize("rows, expected", [
    ([[0.25, 0.25, 0.5]], True),
    ([[0.5, 0.5 + 1e-3]], True),          # within atol
    ([[0.5, 0.5 + 1.02e-3]], False),      # just beyond atol (+ allclose's 1e-5)
    ([[1.0, 0.0], [0.3, 0.6]], False),    # one row short
    ([[-0.1, 1.1]], False),               # sums to 1, out of [0, 1]
    ([[np.nan, 1.0]], False),
])
def test_is_distribution_bounds(rows, expected):
    assert is_distribution(np.asarray(rows, dtype=np.float64)) is expected
