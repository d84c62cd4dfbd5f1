"""``Model.bind()``: IO-bound buffers give what ``Model.run`` gives, and refuse other shapes."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.runtime import Model
from edge_infer.runtime.errors import InputError


def test_bound_runs_match_model_run_and_reuse_their_buffers(models):
    model = Model(models.image_cnn(), providers=["cpu"])
    runner = model.bind(batch_size=2)
    assert runner.inputs["image"].shape == (2, 8, 8, 1)
    rng = np.random.default_rng(0)
    first = rng.random((2, 8, 8, 1), dtype=np.float32)
    out = runner(first)
    expected = model.run(first)
    for name in expected:
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-6)
    buffer = out[model.signature.output_names[0]]
    second = rng.random((2, 8, 8, 1), dtype=np.float32)
    again = runner(second)
    assert again[model.signature.output_names[0]] is buffer  # reused, not reallocated
    np.testing.assert_allclose(buffer, model.run(second)[model.signature.output_names[0]],
                               rtol=1e-6)
    # Writing into the bound input in place is the zero-copy path.
    runner.inputs["image"][:] = first
    np.testing.assert_allclose(runner()[model.signature.output_names[0]],
                               expected[model.signature.output_names[0]], rtol=1e-6)


def test_multi_input_models_take_a_mapping(models):
    model = Model(models.two_in_two_out(), providers=["cpu"])
    runner = model.bind(batch_size=3)
    a = np.arange(9, dtype=np.float32).reshape(3, 3)
    b = np.ones((3, 3), dtype=np.int64)
    out = runner({"a": a, "b": b})
    np.testing.assert_array_equal(out["sum"], a + 1)
    np.testing.assert_array_equal(out["mask"], a > 1)
    with pytest.raises(InputError, match="pass a mapping by input name"):
        runner(a)
    with pytest.raises(InputError, match="no input 'c'"):
        runner({"c": a})


def test_other_shapes_and_types_are_refused(models):
    runner = Model(models.classifier(), providers=["cpu"]).bind(batch_size=4)
    with pytest.raises(InputError, match=r"bound with shape \[4, 4\], found \[2, 4\]"):
        runner(np.zeros((2, 4), np.float32))
    with pytest.raises(InputError, match="is float32, found complex128"):
        runner(np.zeros((4, 4), np.complex128))
    # Safe widening copies are fine: float64 values into the float32 buffer.
    runner(np.ones((4, 4), np.float64))
    assert runner.inputs["x"].dtype == np.float32 and runner.inputs["x"].sum() == 16


def test_symbolic_dimensions_are_set_with_dims(models):
    model = Model(models.dynamic(), providers=["cpu"])
    with pytest.raises(InputError, match="symbolic dimension T"):
        model.bind()
    runner = model.bind(batch_size=2, dims={"T": 5, "F": 3})
    x = np.ones((2, 5, 3), np.float32)
    np.testing.assert_array_equal(runner(x)["y"], np.full((2, 3), 5, np.float32))
    with pytest.raises(InputError, match="batch size must be >= 1"):
        model.bind(batch_size=0)


def test_each_runner_keeps_its_own_buffers(models):
    """Runners of one model share its session (and RunOptions) but not their buffers."""
    model = Model(models.image_cnn(), providers=["cpu"])
    one, two = model.bind(batch_size=1), model.bind(batch_size=1)
    rng = np.random.default_rng(1)
    a, b = (rng.random((1, 8, 8, 1), dtype=np.float32) for _ in range(2))
    out_a = one(a)["logits"].copy()
    out_b = two(b)["logits"].copy()
    np.testing.assert_allclose(out_a, model.run(a)["logits"], rtol=1e-6)
    np.testing.assert_allclose(out_b, model.run(b)["logits"], rtol=1e-6)
    np.testing.assert_allclose(one()["logits"], out_a, rtol=1e-6)  # its input is still a


def _runs_like_model_run(runner, reference, seed):
    """Several different inputs through ``runner`` give what ``reference.run`` gives, each in
    the same reused output buffer (a replayed graph reading stale inputs would repeat one)."""
    rng = np.random.default_rng(seed)
    buffer = None
    for _ in range(3):
        x = rng.random(runner.inputs["image"].shape, dtype=np.float32)
        out = runner(x)["logits"]
        buffer = out if buffer is None else buffer
        assert out is buffer
        np.testing.assert_allclose(out, reference.run(x)["logits"], rtol=1e-5, atol=1e-6)


def test_a_graph_capturing_session_runs_only_through_bound_buffers(models, monkeypatch):
    """A session that replays a captured CUDA graph would hand run() the captured run's
    buffers: run() refuses in one line, and bind() gives a runner that copies its inputs into
    the bound device buffers and its outputs back. Here the "device" is the CPU (the runner's
    bookkeeping, not CUDA's); the CUDA test below runs where onnxruntime has CUDA."""
    from edge_infer.runtime import model as model_module
    from edge_infer.runtime.bound import GraphRunner
    from edge_infer.runtime.errors import UsageError

    path = models.image_cnn()
    reference = Model(path, providers=["cpu"])
    monkeypatch.setattr(model_module, "graph_capture", lambda session: ("cpu", 0))
    model = Model(path, providers=["cpu"])
    x = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(UsageError, match=r"captures a CUDA graph .* through Model.bind\(\)"):
        model.run(x)
    with pytest.raises(UsageError, match="captures a CUDA graph"):
        model.run(x[0])  # the checked path too, not only the fast one
    runner = model.bind(batch_size=2)
    assert isinstance(runner, GraphRunner)
    _runs_like_model_run(runner, reference, seed=2)
    runner.inputs["image"][:] = 1.0  # written in place, then run with no argument
    np.testing.assert_allclose(runner()["logits"], reference.run(runner.inputs["image"])["logits"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.skipif("CUDAExecutionProvider" not in __import__("onnxruntime")
                    .get_available_providers(), reason="needs onnxruntime with CUDA")
def test_cuda_graph_replays_give_the_cpu_results(models):
    cuda = Model(models.image_cnn(), providers=["cuda"], strict=True,
                 provider_options={"cuda": {"graph": "1"}})
    assert cuda.provider == "cuda" and cuda.graph_device == ("cuda", 0)
    cpu = Model(models.image_cnn(), providers=["cpu"])
    four, one = cuda.bind(batch_size=4), cuda.bind(batch_size=1)  # a graph each
    for seed in (3, 4):
        _runs_like_model_run(four, cpu, seed=seed)
        _runs_like_model_run(one, cpu, seed=seed)
