"""Reading model files without onnx: opsets, parameters, operators, quantization, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_infer.runtime.errors import ModelFileError
from edge_infer.runtime.modelfile import read_model_info

from .conftest import save


def test_basic_facts(models):
    info = read_model_info(models.classifier(labels=["a", "b", "c"]))
    assert info.ir_version == 8 and info.opsets == {"ai.onnx": 17}
    assert info.producer_name == "edge-infer-tests"
    assert [(s.name, s.type, s.shape) for s in info.inputs] == [("x", "float32", ("N", 4))]
    assert [(s.name, s.shape) for s in info.outputs] == [("y", ("N", 3))]
    assert info.parameters == 4 * 3 + 3
    assert info.weights_bytes == 15 * 4
    assert info.op_counts() == {"Add": 1, "MatMul": 1, "Softmax": 1}
    assert info.metadata["edge_infer.labels"] == '["a", "b", "c"]'
    assert info.quantization() == {"format": "none"}


def test_agrees_with_the_onnx_package(models):
    import onnx

    path = models.image_cnn()
    proto = onnx.load(str(path))
    info = read_model_info(path)
    assert info.parameters == sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    assert len(info.nodes) == len(proto.graph.node)
    assert [n.op_type for n in info.nodes] == [n.op_type for n in proto.graph.node]


def test_operators_inside_subgraphs_are_counted(models):
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N"])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "if",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])])
    info = read_model_info(save(graph, models.path("if.onnx")))
    assert info.op_counts() == {"If": 1, "Neg": 1, "Relu": 1}
    assert [i.name for i in info.inputs] == ["c", "x"]


def _calibration(shape, n=8):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.items = iter([{"image": rng.random(shape, dtype=np.float32)} for _ in range(n)])

        def get_next(self):
            return next(self.items, None)

    return Reader()


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_static_quantization_is_recognised(models, fmt):
    q = pytest.importorskip("onnxruntime.quantization")
    src = models.image_cnn(layout="NCHW", size=8)
    dst = models.path(f"cnn_{fmt}.onnx")
    q.quantize_static(str(src), str(dst), _calibration((1, 1, 8, 8)),
                      quant_format=getattr(q.QuantFormat, fmt), per_channel=True,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    quant = read_model_info(dst).quantization()
    assert quant["format"] == fmt
    assert quant["weight_types"] == ["int8"]
    assert quant["activation_types"] == ["uint8"]
    assert quant["per_channel"] is True


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_quantization_is_recognised(models, per_channel):
    q = pytest.importorskip("onnxruntime.quantization")
    src = models.classifier(features=32, classes=16)
    dst = models.path(f"dyn-{per_channel}.onnx")
    q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8,
                       per_channel=per_channel)
    info = read_model_info(dst)
    assert info.quantization()["format"] == "dynamic"
    assert "int8" in info.weight_types()
    # one zero point per output column of the MatMulInteger's weight, or one in all
    assert info.quantization()["per_channel"] is per_channel


def test_fp16_weights_are_recognised(models):
    w = numpy_helper.from_array(np.ones((4, 3), np.float16), "W")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
         helper.make_node("MatMul", ["xh", "W"], ["h"]),
         helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)], "fp16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w])
    info = read_model_info(save(graph, models.path("fp16.onnx")))
    assert info.quantization() == {"format": "fp16"}
    assert info.weights_bytes == 12 * 2


def test_empty_garbage_and_truncated_files(models, tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        read_model_info(tmp_path / "empty.onnx")
    (tmp_path / "text.onnx").write_text("just text\n")
    with pytest.raises(ModelFileError, match="is not an ONNX model"):
        read_model_info(tmp_path / "text.onnx")
    (tmp_path / "zip.onnx").write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(ModelFileError, match="is not an ONNX model"):
        read_model_info(tmp_path / "zip.onnx")
    data = models.image_cnn().read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 40):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            read_model_info(tmp_path / "cut.onnx")
    with pytest.raises(ModelFileError, match="does not exist"):
        read_model_info(tmp_path / "missing.onnx")


def test_layers_come_from_node_name_scopes(tmp_path):
    """Keras-style ``dense/MatMul`` and PyTorch-style ``/fc/Gemm`` scopes both make layers;
    an unscoped node belongs to none. Parameters are counted once, for the first reader."""
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "dense/kernel")
    v = numpy_helper.from_array(np.ones((4, 2), np.float32), "fc.weight")
    nodes = [helper.make_node("MatMul", ["x", "dense/kernel"], ["h"], name="dense/MatMul"),
             helper.make_node("Relu", ["h"], ["r"], name="dense/Relu"),
             helper.make_node("Identity", ["r"], ["i"], name="Identity__3"),
             helper.make_node("Gemm", ["i", "fc.weight"], ["g"], name="/fc/Gemm"),
             helper.make_node("MatMul", ["r", "dense/kernel"], ["unused"], name="/fc/MatMul"),
             helper.make_node("Relu", ["g"], ["y"], name="/fc/Relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              [w, v])
    path = save(graph, tmp_path / "m.onnx")
    layers = [(layer.name, layer.operators, layer.parameters)
              for layer in read_model_info(path).layers()]
    assert layers == [("dense", 2, 12), ("fc", 3, 8)]
