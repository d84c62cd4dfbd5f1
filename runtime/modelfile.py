"""What is inside an ONNX file: opsets, operators, weights, quantization, metadata.

Read with the wire-format reader in :mod:`.protobuf`, so ``edge-infer info`` works without the
``onnx`` package and without creating an onnxruntime session. Also used to explain why a file
fails to load (truncated, or not ONNX at all).
"""

from __future__ import annotations

import mmap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import protobuf as pb
from .dtypes import ONNX_ITEMSIZE, onnx_type_name
from .errors import ModelFileError
from .signature import Dim, TensorSpec

# Field numbers of onnx.proto3 used here.
_MODEL = {"ir_version": 1, "producer_name": 2, "producer_version": 3, "domain": 4,
          "model_version": 5, "doc_string": 6, "graph": 7, "opset_import": 8,
          "metadata_props": 14, "functions": 25}
_MODEL_WIRE = {1: pb.VARINT, 2: pb.LENGTH, 3: pb.LENGTH, 4: pb.LENGTH, 5: pb.VARINT,
               6: pb.LENGTH, 7: pb.LENGTH, 8: pb.LENGTH, 14: pb.LENGTH, 20: pb.LENGTH,
               25: pb.LENGTH}
_QOPERATOR_EXTRA = {"QGemm", "QAttention", "QEmbedLayerNormalization", "QOrderedMatMul"}
_DYNAMIC_OPS = {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
                "MatMulIntegerToFloat"}
_INTEGER_OPS = {"MatMulInteger", "ConvInteger"}
_BLOCK_WEIGHT_OPS = {"MatMulNBits", "MatMulBnb4", "GatherBlockQuantized"}
# Dynamic operators -> the inputs holding a weight's scale or zero point: more than one value
# there means per-channel weights (onnxruntime's contrib operators and ONNX's integer ones).
_DYNAMIC_WEIGHT_SCALES = {"DynamicQuantizeLSTM": (8, 10), "DynamicQuantizeMatMul": (2,),
                          "MatMulIntegerToFloat": (3,), "MatMulInteger": (3,),
                          "ConvInteger": (3,)}


@dataclass
class Initializer:
    name: str
    data_type: int
    dims: tuple[int, ...]
    external: bool

    @property
    def size(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return int(self.size * ONNX_ITEMSIZE.get(self.data_type, 0) + 0.5)


@dataclass
class Node:
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    name: str = ""

    @property
    def layer(self) -> str | None:
        return layer_of(self.name)


def layer_of(node_name: str) -> str | None:
    """The layer a node belongs to: the first scope of its name (``conv2d_1`` for
    ``conv2d_1/BiasAdd``, also PyTorch's ``/features/features.0/Conv``), or None for an
    unscoped name. ``info``, ``quantize --exclude`` and the per-layer errors all use this."""
    parts = node_name.lstrip("/").split("/")
    return parts[0] if len(parts) > 1 and parts[0] else None


@dataclass
class Layer:
    """Nodes sharing a name scope: a Keras layer in edge-infer's exports."""

    name: str
    operators: int
    parameters: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operators": self.operators, "parameters": self.parameters}


@dataclass
class ModelInfo:
    """Everything ``edge-infer info`` shows about a model file."""

    path: str
    size_bytes: int
    ir_version: int | None = None
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int | None = None
    doc_string: str = ""
    graph_name: str = ""
    opsets: dict[str, int] = field(default_factory=dict)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    initializers: list[Initializer] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        return sum(i.size for i in self.initializers)

    @property
    def weights_bytes(self) -> int:
        return sum(i.nbytes for i in self.initializers)

    @property
    def external_data(self) -> bool:
        return any(i.external for i in self.initializers)

    def op_counts(self) -> dict[str, int]:
        counts = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                         for n in self.nodes)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def layers(self) -> list[Layer]:
        """Layers in the order their last operator runs, with their operators and the
        parameters they read (each initializer counted once, for the first layer that reads
        it); empty when no node name has a scope. These are the names
        ``edge-infer quantize --exclude`` takes."""
        sizes = {i.name: i.size for i in self.initializers}
        layers: dict[str, Layer] = {}
        last: dict[str, int] = {}
        counted: set[str] = set()
        for index, node in enumerate(self.nodes):
            name = node.layer
            if name is None:
                continue
            layer = layers.setdefault(name, Layer(name, 0, 0))
            layer.operators += 1
            last[name] = index  # a QDQ model dequantizes every weight first: order by the end
            for tensor in node.inputs:
                if tensor in sizes and tensor not in counted:
                    counted.add(tensor)
                    layer.parameters += sizes[tensor]
        return sorted(layers.values(), key=lambda layer: last[layer.name])

    def weight_types(self) -> dict[str, int]:
        """Parameter count per element type."""
        counts: Counter[str] = Counter()
        for init in self.initializers:
            counts[onnx_type_name(init.data_type)] += init.size
        return dict(counts.most_common())

    def int8_stored_weights(self) -> dict[str, Initializer]:
        """Weights stored in int8 and dequantized when the model loads (``Mul`` of a ``Cast``
        from an int8 initializer by a constant: edge-infer's weight-only recipe,
        export/weight_only.py): the weight's tensor name -> its scale."""
        inits = {i.name: i for i in self.initializers}
        casts = {n.outputs[0] for n in self.nodes if n.op_type == "Cast" and n.inputs
                 and n.outputs and n.inputs[0] in inits
                 and inits[n.inputs[0]].data_type == 3}  # INT8
        stored = {}
        for node in self.nodes:
            if node.op_type == "Mul" and len(node.inputs) == 2 and node.inputs[0] in casts \
                    and node.inputs[1] in inits and node.outputs:
                stored[node.outputs[0]] = inits[node.inputs[1]]
        return stored

    def quantization(self) -> dict[str, Any]:
        """How the model is quantized: format, weight/activation types, per-channel or not."""
        ops = {n.op_type for n in self.nodes}
        inits = {i.name: i for i in self.initializers}
        stored = self.int8_stored_weights()
        result: dict[str, Any] = {"format": "none"}
        if any(op.startswith("QLinear") for op in ops) or ops & _QOPERATOR_EXTRA:
            result["format"] = "QOperator"
        elif ops & _DYNAMIC_OPS or (ops & _INTEGER_OPS and "QuantizeLinear" not in ops):
            result["format"] = "dynamic"
        elif "QuantizeLinear" in ops and "DequantizeLinear" in ops:
            result["format"] = "QDQ"
        elif "DequantizeLinear" in ops or ops & _BLOCK_WEIGHT_OPS or stored:
            result["format"] = "weight-only"
        else:
            float_bytes = {t: sum(i.nbytes for i in self.initializers if i.data_type == t)
                           for t in (1, 10, 16)}
            half = float_bytes[10] + float_bytes[16]
            if half and half >= float_bytes[1]:
                result["format"] = "fp16" if float_bytes[10] >= float_bytes[16] else "bf16"
            return result
        activations = set()
        weights = set()
        per_channel = False
        for node in self.nodes:
            if node.op_type == "QuantizeLinear" and len(node.inputs) > 2 and node.inputs[2] in inits:
                activations.add(onnx_type_name(inits[node.inputs[2]].data_type))
            if node.op_type == "DequantizeLinear" and node.inputs and node.inputs[0] in inits \
                    and inits[node.inputs[0]].data_type != 6:  # int32 tensors are biases
                weights.add(onnx_type_name(inits[node.inputs[0]].data_type))
                scale = inits.get(node.inputs[1]) if len(node.inputs) > 1 else None
                per_channel |= bool(scale is not None and scale.size > 1)
            if node.op_type in ("QLinearConv", "QLinearMatMul") and len(node.inputs) > 5:
                w = inits.get(node.inputs[3])
                if w is not None:
                    weights.add(onnx_type_name(w.data_type))
                ws = inits.get(node.inputs[4])
                per_channel |= bool(ws is not None and ws.size > 1)
                zp = inits.get(node.inputs[2])
                if zp is not None:
                    activations.add(onnx_type_name(zp.data_type))
        for scale in stored.values():
            weights.add("int8")
            per_channel |= scale.size > 1
        if result["format"] == "dynamic":
            weights.update(onnx_type_name(i.data_type) for i in self.initializers
                           if i.data_type in (2, 3) and i.size > 1)
            for node in self.nodes:
                for at in _DYNAMIC_WEIGHT_SCALES.get(node.op_type, ()):
                    scale = inits.get(node.inputs[at]) if len(node.inputs) > at else None
                    per_channel |= bool(scale is not None and scale.size > 1)
        result["weight_types"] = sorted(weights)
        result["activation_types"] = sorted(activations)
        result["per_channel"] = per_channel
        return result


def _open(path: Path) -> tuple[memoryview, Any]:
    try:
        with open(path, "rb") as fh:
            if path.stat().st_size == 0:
                raise ModelFileError(f"{path} is empty, not an ONNX model")
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except IsADirectoryError:
        from .not_onnx import describe_folder

        raise ModelFileError(describe_folder(path)) from None
    except PermissionError:
        raise ModelFileError(f"model file {path} is not readable (permission denied)") from None
    return memoryview(mapped), mapped


def _not_onnx(path: Path) -> str | None:
    from .not_onnx import describe_file

    return describe_file(path)


def read_model_info(path: str | Path) -> ModelInfo:
    """Parse ``path``; raises :class:`ModelFileError` for a file that is not a whole ONNX model."""
    path = Path(path)
    if path.is_dir():
        from .not_onnx import describe_folder

        raise ModelFileError(describe_folder(path))
    buf, mapped = _open(path)
    try:
        info = ModelInfo(path=str(path), size_bytes=len(buf))
        try:
            _parse_model(buf, info)
        except pb.WireError as exc:
            if exc.truncated and info.ir_version is not None:
                raise ModelFileError(f"{path} is truncated or corrupt ({exc}; the file has "
                                     f"{len(buf)} bytes)") from None
            raise ModelFileError(_not_onnx(path) or f"{path} is not an ONNX model (it does not "
                                 f"parse as an ONNX ModelProto: {exc})") from None
        except UnicodeDecodeError:
            raise ModelFileError(_not_onnx(path) or f"{path} is not an ONNX model") from None
        if info.ir_version is None or not (info.nodes or info.inputs or info.outputs):
            raise ModelFileError(_not_onnx(path) or f"{path} is not an ONNX model (no IR "
                                 "version or graph found)")
        return info
    finally:
        buf.release()
        mapped.close()


def _parse_model(buf: memoryview, info: ModelInfo) -> None:
    for number, wire, value in pb.fields(buf):
        expected = _MODEL_WIRE.get(number)
        if expected is not None and expected != wire:
            raise pb.WireError(f"field {number} has wire type {wire}, ONNX uses {expected}", 0)
        if number == 1:
            info.ir_version = value  # type: ignore[assignment]
        elif number == 2:
            info.producer_name = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 3:
            info.producer_version = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 4:
            info.domain = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 5:
            info.model_version = pb.signed(value)  # type: ignore[arg-type]
        elif number == 6:
            info.doc_string = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 7:
            _parse_graph(buf, value, info, top=True)  # type: ignore[arg-type]
        elif number == 8:
            domain, version = "", 0
            for n, _, v in pb.fields(buf, *value):  # type: ignore[misc]
                if n == 1:
                    domain = pb.text(buf, v)  # type: ignore[arg-type]
                elif n == 2:
                    version = pb.signed(v)  # type: ignore[arg-type]
            info.opsets[domain or "ai.onnx"] = version
        elif number == 14:
            key, val = pb.string_pair(buf, value)  # type: ignore[arg-type]
            info.metadata[key] = val


def _parse_graph(buf: memoryview, span: tuple[int, int], info: ModelInfo, top: bool) -> None:
    inputs: list[TensorSpec] = []
    init_names: set[str] = set()
    for number, wire, value in pb.fields(buf, *span):
        if wire != pb.LENGTH:
            continue
        if number == 1:
            _parse_node(buf, value, info)  # type: ignore[arg-type]
        elif number == 2 and top:
            info.graph_name = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 5:
            init = _parse_tensor(buf, value)  # type: ignore[arg-type]
            info.initializers.append(init)
            init_names.add(init.name)
        elif number == 15:
            for n, _, v in pb.fields(buf, *value):  # type: ignore[misc]
                if n == 1:
                    info.initializers.append(_parse_tensor(buf, v))  # type: ignore[arg-type]
        elif number == 11 and top:
            inputs.append(_parse_value_info(buf, value))  # type: ignore[arg-type]
        elif number == 12 and top:
            info.outputs.append(_parse_value_info(buf, value))  # type: ignore[arg-type]
    if top:
        # Before IR 4 initializers were listed as inputs too; they are weights, not inputs.
        info.inputs = [i for i in inputs if i.name not in init_names]


def _parse_node(buf: memoryview, span: tuple[int, int], info: ModelInfo) -> None:
    node = Node(op_type="", domain="", inputs=[], outputs=[])
    for number, wire, value in pb.fields(buf, *span):
        if number == 1:
            node.inputs.append(pb.text(buf, value))  # type: ignore[arg-type]
        elif number == 2:
            node.outputs.append(pb.text(buf, value))  # type: ignore[arg-type]
        elif number == 3:
            node.name = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 4:
            node.op_type = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 7:
            node.domain = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 5 and wire == pb.LENGTH:
            _parse_attribute_graphs(buf, value, info)  # type: ignore[arg-type]
    info.nodes.append(node)


def _parse_attribute_graphs(buf: memoryview, span: tuple[int, int], info: ModelInfo) -> None:
    """Sub-graphs of If/Loop/Scan count towards operators and weights."""
    for number, wire, value in pb.fields(buf, *span):
        if number in (6, 11) and wire == pb.LENGTH:
            _parse_graph(buf, value, info, top=False)  # type: ignore[arg-type]


def _parse_tensor(buf: memoryview, span: tuple[int, int]) -> Initializer:
    name, data_type, dims, external = "", 0, [], False
    for number, wire, value in pb.fields(buf, *span):
        if number == 1:
            if wire == pb.LENGTH:
                dims.extend(pb.packed_varints(buf, value))  # type: ignore[arg-type]
            else:
                dims.append(pb.signed(value))  # type: ignore[arg-type]
        elif number == 2:
            data_type = value  # type: ignore[assignment]
        elif number == 8:
            name = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 14:
            external = value == 1
    return Initializer(name=name, data_type=data_type, dims=tuple(dims), external=external)


def _parse_value_info(buf: memoryview, span: tuple[int, int]) -> TensorSpec:
    name, type_name, kind, shape = "", "unknown", "tensor", None
    for number, _, value in pb.fields(buf, *span):
        if number == 1:
            name = pb.text(buf, value)  # type: ignore[arg-type]
        elif number == 2:
            kind, type_name, shape = _parse_type(buf, value)  # type: ignore[arg-type]
    return TensorSpec(name=name, type=type_name, shape=shape, kind=kind)


def _parse_type(buf: memoryview, span: tuple[int, int]
                ) -> tuple[str, str, tuple[Dim, ...] | None]:
    kinds = {1: "tensor", 4: "seq", 5: "map", 8: "sparse_tensor", 9: "optional"}
    for number, _, value in pb.fields(buf, *span):
        if number not in kinds:
            continue
        if number not in (1, 8):
            return kinds[number], kinds[number], None
        elem, shape = 0, None
        for n, _, v in pb.fields(buf, *value):  # type: ignore[misc]
            if n == 1:
                elem = v  # type: ignore[assignment]
            elif n == 2:
                shape = _parse_shape(buf, v)  # type: ignore[arg-type]
        return kinds[number], onnx_type_name(elem), shape
    return "unknown", "unknown", None


def _parse_shape(buf: memoryview, span: tuple[int, int]) -> tuple[Dim, ...]:
    dims: list[Dim] = []
    for number, _, value in pb.fields(buf, *span):
        if number != 1:
            continue
        dim: Dim = None
        for n, _, v in pb.fields(buf, *value):  # type: ignore[misc]
            if n == 1:
                dim = pb.signed(v)  # type: ignore[arg-type]
            elif n == 2:
                dim = pb.text(buf, v)  # type: ignore[arg-type]
        dims.append(dim)
    return tuple(dims)
