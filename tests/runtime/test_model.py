"""``Model``: running any valid ONNX model, input checks, batching, providers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto

from edge_infer.runtime import (InputError, Model, ModelFileError, ProviderFallbackWarning,
                                ProviderUnavailableError)


def test_session_is_created_once_and_reused(models):
    model = Model(models.classifier())
    session = model.session
    x = np.ones((2, 4), np.float32)
    first = model.run(x)["y"]
    second = model(x)["y"]
    assert model.session is session
    np.testing.assert_array_equal(first, second)
    assert first.shape == (2, 3)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-6)


def test_results_match_a_bare_session(models):
    import onnxruntime as ort

    path = models.classifier()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(Model(path, providers=["cpu"]).run(x)["y"], bare[0])


@pytest.mark.parametrize("elem,dtype", [
    (TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64),
    (TensorProto.INT64, np.int64), (TensorProto.BOOL, np.bool_), (TensorProto.INT8, np.int8),
    (TensorProto.UINT8, np.uint8), (TensorProto.INT32, np.int32)])
def test_any_element_type_runs(models, elem, dtype):
    model = Model(models.identity(elem, ["N", 3]))
    x = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    y = model.run(x)["y"]
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, x)


def test_string_inputs_run(models):
    model = Model(models.identity(TensorProto.STRING, ["N"]))
    y = model.run(np.array(["a", "bc"]))["y"]
    assert list(y) == ["a", "bc"]


def test_several_inputs_and_outputs_by_name_and_position(models):
    model = Model(models.two_in_two_out())
    a = np.array([[1.0, 5.0, 3.0]], np.float32)
    b = np.array([[2, 2, 2]], np.int64)
    by_name = model.run({"a": a, "b": b})
    by_position = model.run([a, b])
    np.testing.assert_array_equal(by_name["sum"], [[3.0, 7.0, 5.0]])
    np.testing.assert_array_equal(by_name["mask"], [[False, True, True]])
    np.testing.assert_array_equal(by_position["sum"], by_name["sum"])
    assert model.run({"a": a, "b": b}, outputs=["mask"]).keys() == {"mask"}


def test_dynamic_shapes_take_any_size(models):
    model = Model(models.dynamic())
    for shape in [(1, 1, 1), (3, 7, 2), (2, 50, 5)]:
        x = np.ones(shape, np.float32)
        np.testing.assert_array_equal(model.run(x)["y"], np.full((shape[0], shape[2]), shape[1]))


def test_one_sample_gets_a_batch_axis(models):
    model = Model(models.classifier())
    y = model.run(np.ones(4, np.float32))["y"]
    assert y.shape == (1, 3)


def test_fast_path_passes_the_callers_array_without_copy(models):
    model = Model(models.classifier())
    x = np.ones((2, 4), np.float32)
    feed = model.signature.prepare(x)
    assert feed["x"] is x


def test_non_contiguous_input_is_made_contiguous(models):
    model = Model(models.classifier())
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    np.testing.assert_allclose(model.run(x)["y"], model.run(np.ascontiguousarray(x))["y"])


def test_batch_splitting_gives_the_same_outputs(models):
    model = Model(models.classifier(), providers=["cpu"])  # a GPU's kernels vary with batch
    x = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    whole = model.run(x)["y"]
    calls = []
    real = model._run
    model._run = lambda names, feed: calls.append(len(feed["x"])) or real(names, feed)
    split = model.run(x, batch_size=3)["y"]
    np.testing.assert_allclose(split, whole, rtol=1e-6)
    assert calls == [3, 3, 3, 1]


def test_batch_splitting_with_several_inputs(models):
    model = Model(models.two_in_two_out())
    a = np.arange(15, dtype=np.float32).reshape(5, 3)
    b = np.ones((5, 3), np.int64)
    np.testing.assert_array_equal(model.run({"a": a, "b": b}, batch_size=2)["sum"], a + 1)


def test_fixed_batch_of_one_runs_samples_one_by_one(models):
    model = Model(models.fixed_batch_one())
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(model.run(x)["y"], -x)


def test_batch_size_must_be_positive(models):
    with pytest.raises(InputError, match="batch size must be >= 1"):
        Model(models.classifier()).run(np.ones((2, 4), np.float32), batch_size=0)


def test_unknown_output_name(models):
    with pytest.raises(InputError, match="no output 'nope'.*its outputs are y"):
        Model(models.classifier()).run(np.ones((1, 4), np.float32), outputs=["nope"])


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        Model(tmp_path / "missing.onnx")


def test_folder_is_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder"):
        Model(tmp_path)


def test_garbage_file_is_not_an_onnx_model(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a network\n" * 4)
    with pytest.raises(ModelFileError, match="is not an ONNX model"):
        Model(path)


def test_truncated_model_is_reported_as_truncated(models, tmp_path):
    data = models.classifier().read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        Model(cut)


def test_unavailable_provider_falls_back_to_cpu_with_one_warning(models):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = Model(models.classifier(), providers=["coreml"])
    ours = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert len(ours) == 1
    assert "coreml is not available" in str(ours[0].message)
    assert "cpu" in str(ours[0].message)
    assert not [w for w in caught if w not in ours]  # onnxruntime's own warning is not repeated
    assert model.provider == "cpu"


def test_strict_refuses_the_fallback(models):
    with pytest.raises(ProviderUnavailableError, match="coreml"):
        Model(models.classifier(), providers=["coreml"], strict=True)


def test_threads_and_cast_are_validated(models):
    with pytest.raises(InputError, match="threads"):
        Model(models.classifier(), threads=-1)
    with pytest.raises(InputError, match="cast must be one of"):
        Model(models.classifier(), cast="sometimes")  # type: ignore[arg-type]


def test_threads_are_applied(models):
    model = Model(models.classifier(), threads=1)
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_classify_uses_labels_and_orders_by_score(models):
    model = Model(models.classifier(labels=["cat", "dog", "bird"]))
    x = np.random.default_rng(2).normal(size=(4, 4)).astype(np.float32)
    probs = model.run(x)["y"]
    preds = model.classify(x, k=2)
    assert len(preds) == 4 and all(len(row) == 2 for row in preds)
    for row, p in zip(preds, probs):
        assert row[0].index == int(np.argmax(p))
        assert row[0].label == ["cat", "dog", "bird"][row[0].index]
        assert row[0].score == pytest.approx(float(p.max()), rel=1e-6)  # no second softmax
        assert row[0].score >= row[1].score


def test_run_failure_inside_onnxruntime_is_one_error(models):
    from edge_infer.runtime import ModelRunError

    # Reshape to a fixed [2, 2] accepts any [N, 4] input by signature, but fails for N != 1.
    from onnx import TensorProto, helper, numpy_helper

    from .conftest import save

    shape = numpy_helper.from_array(np.array([2, 2], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "r",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
                              [shape])
    model = Model(save(graph, models.path("reshape.onnx")))
    assert model.run(np.ones((1, 4), np.float32))["y"].shape == (2, 2)
    with pytest.raises(ModelRunError, match="onnxruntime failed to run reshape.onnx"):
        model.run(np.ones((3, 4), np.float32))


def test_runs_without_the_compiled_session_shortcut(models):
    """The fast path calls onnxruntime's compiled session directly; builds without that private
    attribute go through InferenceSession.run and give the same outputs."""
    model = Model(models.classifier())
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    fast = model.run(x)["y"]
    assert model._native is not None and model._fast is not None
    model._native = model._fast = None  # what __init__ sets when there is no _sess
    np.testing.assert_array_equal(model.run(x)["y"], fast)
    with pytest.raises(InputError):
        model.run(np.zeros((5, 7), np.float32))


def test_concurrent_runs_share_the_models_run_options_safely(models):
    """Model.run hands onnxruntime one RunOptions for every call (cheaper than letting it make
    one per call); calls from several threads at once must still each get their own result."""
    from concurrent.futures import ThreadPoolExecutor

    model = Model(models.image_cnn(), providers=["cpu"], threads=1)
    rng = np.random.default_rng(0)
    batches = [rng.random((3, 8, 8, 1), dtype=np.float32) for _ in range(16)]
    expected = [model.run(b)["logits"] for b in batches]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            got = list(pool.map(lambda b: model.run(b)["logits"], batches))
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e)
    assert model.run(batches[0], outputs=["logits"])["logits"].shape == (3, 3)  # slow path too
