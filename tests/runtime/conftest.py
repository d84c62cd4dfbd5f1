"""Tiny ONNX models built with ``onnx.helper`` inside the tests: no downloads, no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17
IR_VERSION = 8  # loadable by every onnxruntime this project supports


def save(graph, path: Path, metadata: dict[str, str] | None = None, opsets=None) -> Path:
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", OPSET)],
                              producer_name="edge-infer-tests", producer_version="1")
    model.ir_version = IR_VERSION
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


class Models:
    """Factory for the small models the runtime tests run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / name

    def classifier(self, name="clf.onnx", features=4, classes=3, softmax=True, labels=None,
                   metadata=None, seed=0, batch="N") -> Path:
        """x [N, features] -> MatMul + Add (+ Softmax) -> probs [N, classes]."""
        rng = np.random.default_rng(seed)
        w = numpy_helper.from_array(rng.normal(size=(features, classes)).astype(np.float32), "W")
        b = numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "B")
        nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
                 helper.make_node("Add", ["h", "B"], ["logits" if softmax else "y"])]
        if softmax:
            nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=-1))
        graph = helper.make_graph(nodes, "clf", [_vi("x", TensorProto.FLOAT, [batch, features])],
                                  [_vi("y", TensorProto.FLOAT, [batch, classes])], [w, b])
        meta = dict(metadata or {})
        if labels is not None:
            meta["edge_infer.task"] = "classification"
            meta["edge_infer.labels"] = json.dumps(labels)
        return save(graph, self.path(name), meta)

    def identity(self, dtype: int, shape, name=None) -> Path:
        """One input straight to one output, of any element type."""
        name = name or f"identity_{dtype}.onnx"
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                                  [_vi("x", dtype, shape)], [_vi("y", dtype, shape)])
        return save(graph, self.path(name))

    def two_in_two_out(self, name="multi.onnx") -> Path:
        """a float32 [N, 3], b int64 [N, 3] -> sum float32 [N, 3], mask bool [N, 3]."""
        nodes = [helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
                 helper.make_node("Add", ["a", "bf"], ["sum"]),
                 helper.make_node("Greater", ["a", "bf"], ["mask"])]
        graph = helper.make_graph(nodes, "multi",
                                  [_vi("a", TensorProto.FLOAT, ["N", 3]),
                                   _vi("b", TensorProto.INT64, ["N", 3])],
                                  [_vi("sum", TensorProto.FLOAT, ["N", 3]),
                                   _vi("mask", TensorProto.BOOL, ["N", 3])])
        return save(graph, self.path(name))

    def dynamic(self, name="dyn.onnx") -> Path:
        """x [N, T, F] (all symbolic) -> ReduceSum over T -> y [N, F]."""
        axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
        graph = helper.make_graph(
            [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)], "dyn",
            [_vi("x", TensorProto.FLOAT, ["N", "T", "F"])], [_vi("y", TensorProto.FLOAT, ["N", "F"])],
            [axes])
        return save(graph, self.path(name))

    def image_cnn(self, name="cnn.onnx", layout="NHWC", channels=1, size=8, classes=3,
                  metadata=None, labels=None) -> Path:
        """A tiny CNN: image -> Conv 3x3 (4 filters) -> Relu -> GlobalAveragePool -> Gemm."""
        rng = np.random.default_rng(1)
        shape = ["N", size, size, channels] if layout == "NHWC" else ["N", channels, size, size]
        nodes = []
        src = "image"
        if layout == "NHWC":
            nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
            src = "nchw"
        w = numpy_helper.from_array(rng.normal(size=(4, channels, 3, 3)).astype(np.float32), "cw")
        d = numpy_helper.from_array(rng.normal(size=(4, classes)).astype(np.float32), "dw")
        nodes += [helper.make_node("Conv", [src, "cw"], ["c"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c"], ["r"]),
                  helper.make_node("GlobalAveragePool", ["r"], ["g"]),
                  helper.make_node("Flatten", ["g"], ["f"]),
                  helper.make_node("MatMul", ["f", "dw"], ["logits"])]
        graph = helper.make_graph(nodes, "cnn", [_vi("image", TensorProto.FLOAT, shape)],
                                  [_vi("logits", TensorProto.FLOAT, ["N", classes])], [w, d])
        meta = dict(metadata or {})
        if labels is not None:
            meta["edge_infer.labels"] = json.dumps(labels)
        return save(graph, self.path(name), meta)

    def pixels(self, name="pixels.onnx", shape=("N", 4, 4, 1), dtype=TensorProto.FLOAT,
               metadata=None) -> Path:
        """Returns its image input unchanged, to test image preprocessing exactly."""
        graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "px",
                                  [_vi("image", dtype, list(shape))],
                                  [_vi("out", dtype, list(shape))])
        return save(graph, self.path(name), metadata)

    def text_model(self, name="text.onnx", vocabulary=None, length=6, classes=2,
                   labels=("ham", "spam")) -> Path:
        """ids int64 [N, L] -> Identity ids out, and a classifier that says 'spam' when token
        'free' (id 2) occurs."""
        vocabulary = vocabulary or ["", "[UNK]", "free", "prize", "hello", "friend"]
        v = len(vocabulary)
        emb = np.zeros((v, classes), dtype=np.float32)
        emb[:, 0] = 0.1
        emb[2, 1] = 10.0  # "free" pushes towards spam
        table = numpy_helper.from_array(emb, "emb")
        axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
        nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]),
                 helper.make_node("ReduceSum", ["e", "axes"], ["s"], keepdims=0),
                 helper.make_node("Softmax", ["s"], ["probs"], axis=-1),
                 helper.make_node("Identity", ["ids"], ["ids_out"])]
        graph = helper.make_graph(nodes, "text", [_vi("ids", TensorProto.INT64, ["N", length])],
                                  [_vi("probs", TensorProto.FLOAT, ["N", classes]),
                                   _vi("ids_out", TensorProto.INT64, ["N", length])],
                                  [table, axes])
        meta = {"edge_infer.task": "classification", "edge_infer.labels": json.dumps(list(labels)),
                "edge_infer.preprocess": json.dumps({"kind": "text", "vocabulary": vocabulary,
                                                     "sequence_length": length})}
        return save(graph, self.path(name), meta)

    def fixed_batch_one(self, name="fixed1.onnx") -> Path:
        graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "fixed",
                                  [_vi("x", TensorProto.FLOAT, [1, 3])],
                                  [_vi("y", TensorProto.FLOAT, [1, 3])])
        return save(graph, self.path(name))


@pytest.fixture
def models(tmp_path) -> Models:
    folder = tmp_path / "models"
    folder.mkdir()
    return Models(folder)


@pytest.fixture
def write_png(tmp_path) -> Callable[..., Path]:
    Image = pytest.importorskip("PIL.Image")

    def write(name: str, array: np.ndarray, mode: str | None = None) -> Path:
        path = tmp_path / name
        Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode).save(path)
        return path

    return write
