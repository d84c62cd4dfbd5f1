"""Element types: onnxruntime's type strings, ONNX ``TensorProto`` codes and NumPy dtypes.

One table so that the signature checks, the model-file reader and the input loaders agree.
"""

from __future__ import annotations

import numpy as np

# ONNX TensorProto.DataType code -> (name as we spell it, NumPy dtype or None when NumPy has
# none, bytes per element; sub-byte types count their fraction).
_TABLE: dict[int, tuple[str, str | None, float]] = {
    1: ("float32", "float32", 4), 2: ("uint8", "uint8", 1), 3: ("int8", "int8", 1),
    4: ("uint16", "uint16", 2), 5: ("int16", "int16", 2), 6: ("int32", "int32", 4),
    7: ("int64", "int64", 8), 8: ("string", "object", 0), 9: ("bool", "bool", 1),
    10: ("float16", "float16", 2), 11: ("float64", "float64", 8), 12: ("uint32", "uint32", 4),
    13: ("uint64", "uint64", 8), 14: ("complex64", "complex64", 8),
    15: ("complex128", "complex128", 16), 16: ("bfloat16", None, 2),
    17: ("float8e4m3fn", None, 1), 18: ("float8e4m3fnuz", None, 1), 19: ("float8e5m2", None, 1),
    20: ("float8e5m2fnuz", None, 1), 21: ("uint4", None, 0.5), 22: ("int4", None, 0.5),
    23: ("float4e2m1", None, 0.5),
}
ONNX_TYPES: dict[int, tuple[str, np.dtype | None]] = {
    code: (name, np.dtype(dt) if dt else None) for code, (name, dt, _) in _TABLE.items()}
ONNX_ITEMSIZE: dict[int, float] = {code: size for code, (_, _, size) in _TABLE.items()}

# onnxruntime's NodeArg.type element names ("tensor(float)") -> the names used above.
_ORT_NAMES = {
    "float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16",
    "int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16",
    "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
    "bool": "bool", "string": "string", "complex64": "complex64", "complex128": "complex128",
}
_BY_NAME: dict[str, np.dtype | None] = {name: dt for name, dt in ONNX_TYPES.values()}


def parse_ort_type(type_str: str) -> tuple[str, str]:
    """Split onnxruntime's ``tensor(float)`` into ``("tensor", "float32")``.

    Non-tensor types (``seq(tensor(float))``, ``map(int64,tensor(float))``) come back whole as
    ``(kind, type_str)`` so they can be displayed even though inputs of that kind are refused.
    """
    if type_str.startswith("tensor(") and type_str.endswith(")"):
        inner = type_str[len("tensor("):-1]
        return "tensor", _ORT_NAMES.get(inner, inner)
    kind = type_str.split("(", 1)[0]
    return kind, type_str


def numpy_dtype(name: str) -> np.dtype | None:
    """NumPy dtype for an element type name, or None when NumPy cannot represent it."""
    return _BY_NAME.get(name)


def onnx_type_name(code: int) -> str:
    """Name of an ONNX ``TensorProto`` data type code (``"type17"`` when unknown)."""
    entry = ONNX_TYPES.get(code)
    return entry[0] if entry else f"type{code}"
