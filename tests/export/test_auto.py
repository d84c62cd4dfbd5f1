"""What ``quantize --method auto`` picks: static INT8 for large convolutions that are not
transposed, weight-only for the rest on CPUs, fp16 on GPUs."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.export.auto import MIN_STATIC_CONV_WEIGHTS, auto_note, auto_reason, choose_method
from edge_infer.runtime.modelfile import read_model_info

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, numpy_helper  # noqa: E402


def _convolutions(path, conv: int, transposed: int):
    """A model with a Conv of ``conv`` output channels and a ConvTranspose of ``transposed``
    (3x3 kernels on 4 channels; 0: none of that kind)."""
    from onnx import helper as h

    rng = np.random.default_rng(3)
    nodes, inits, x = [], [], "x"
    for op, channels in (("Conv", conv), ("ConvTranspose", transposed)):
        if channels:
            shape = (channels, 4, 3, 3) if op == "Conv" else (4, channels, 3, 3)
            inits.append(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32),
                                                 f"{op}/w"))
            nodes.append(h.make_node(op, [x, f"{op}/w"], [f"{op}/y"], name=f"{op}/op",
                                     pads=[1, 1, 1, 1]))
            x = f"{op}/y"
            if op == "Conv":  # back to 4 channels for what follows
                inits.append(numpy_helper.from_array(
                    rng.normal(size=(4, channels, 1, 1)).astype(np.float32), "mix/w"))
                nodes.append(h.make_node("Conv", [x, "mix/w"], ["mix/y"], name="mix/op"))
                x = "mix/y"
    nodes.append(h.make_node("Relu", [x], ["y"], name="out/Relu"))
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                               ["N", 4, 8, 8])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def test_auto_picks_static_only_for_large_convolutions_that_are_not_transposed(tmp_path):
    """Static INT8 where the convolutions are mostly Conv and one has at least
    MIN_STATIC_CONV_WEIGHTS; weight-only where most convolution weights are in ConvTranspose
    (no INT8 kernel on CPU), where every Conv is small, or without convolutions; fp16 on a GPU
    profile either way. ``auto_reason`` says why a model with convolutions gets weight-only."""
    assert 36 * 128 >= MIN_STATIC_CONV_WEIGHTS > 36 * 16
    large = _convolutions(tmp_path / "c.onnx", 128, 0)  # 128x4x3x3 = 4,608 weights
    assert choose_method(large, "x86-vnni") == "static" and auto_reason(read_model_info(large)) \
        is None
    small = _convolutions(tmp_path / "s.onnx", 16, 0)  # 576 weights
    assert choose_method(small, "x86-vnni") == "weight-only"
    assert "its largest convolution has 576 weights" in auto_reason(read_model_info(small))
    generator = _convolutions(tmp_path / "t.onnx", 0, 128)
    assert choose_method(generator, "x86-vnni") == "weight-only"
    assert choose_method(generator, "rpi5") == "weight-only"
    assert choose_method(generator, "jetson-orin") == "fp16"
    assert "ConvTranspose" in auto_reason(read_model_info(generator))
    # Conv 4,608 + 512 weights against ConvTranspose 4x8x3x3 = 288, and the reverse
    assert choose_method(_convolutions(tmp_path / "m.onnx", 128, 8), "x86-vnni") == "static"
    assert choose_method(_convolutions(tmp_path / "n.onnx", 2, 32), "x86-vnni") == "weight-only"


def test_the_note_names_the_recipe_and_the_reason_only_when_they_differ(tmp_path):
    """quantize prints it for auto: weight-only instead of static on a CPU, and nothing on a
    GPU profile (fp16 either way) or for a model auto treats as convolutional."""
    generator = _convolutions(tmp_path / "t.onnx", 0, 128)
    assert auto_note(generator, "weight-only", "x86-vnni").startswith(
        "auto picks weight-only, not static: most of its convolution weights are in "
        "ConvTranspose layers")
    assert auto_note(generator, "fp16", "jetson-orin") is None
    assert auto_note(_convolutions(tmp_path / "c.onnx", 128, 0), "static", "x86-vnni") is None
