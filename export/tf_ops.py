"""TensorFlow operators tf2onnx 1.17 leaves unconverted, written in standard ONNX operators.

tf2onnx passes an operator it has no handler for through unchanged, and onnxruntime then
refuses the whole graph. Keras 3 emits two such operators for common activations:

- ``Erfc``, from ``gelu`` (exact, Keras' default): ``0.5 * x * erfc(-x / sqrt(2))``, the
  activation of nearly every transformer block. ``erfc(z) = 1 - erf(z)``; ONNX has ``Erf``.
  Where ``erfc`` is tiny (``gelu`` of ``x < -4``) the difference rounds to zero, an absolute
  error below 1e-7 on ``gelu``'s output.
- ``Expm1``, from ``celu``: ``expm1(z) = exp(z) - 1``, the same 1e-7 at most near zero.

The handlers use tf2onnx's ``custom_op_handlers`` argument, so they apply to edge-infer's
conversions only, not to tf2onnx's global registry. :func:`unsupported` lists any operator the
converted graph still holds that ONNX does not define, so that the export can name it instead of
failing later inside onnxruntime.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _one(ctx: Any, node: Any) -> str:
    from onnx import helper
    from tf2onnx import utils

    dtype = helper.tensor_dtype_to_np_dtype(ctx.get_dtype(node.input[0]))
    return ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, dtype)).output[0]


def _erfc(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """``erfc(z)`` as ``1 - Erf(z)``: the node becomes the ``Sub``."""
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
    node.type, node.domain = "Sub", ""
    ctx.replace_inputs(node, [_one(ctx, node), erf.output[0]])


def _expm1(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    """``expm1(z)`` as ``Exp(z) - 1``: the node becomes the ``Sub``."""
    exp = ctx.make_node("Exp", [node.input[0]], op_name_scope=node.name)
    node.type, node.domain = "Sub", ""
    ctx.replace_inputs(node, [exp.output[0], _one(ctx, node)])


HANDLERS: dict[str, tuple[Callable[..., None], list[Any]]] = {
    "Erfc": (_erfc, []),
    "Expm1": (_expm1, []),
}


def unsupported(proto: Any) -> dict[str, int]:
    """Operators in the graph (subgraphs included) that no ONNX opset the model imports
    defines, by count: what tf2onnx could not convert."""
    from onnx import defs

    versions = {o.domain or "": o.version for o in proto.opset_import}
    found: dict[str, int] = {}

    def visit(graph: Any) -> None:
        for node in graph.node:
            domain = node.domain or ""
            try:
                known = domain in versions and defs.get_schema(
                    node.op_type, versions[domain], domain) is not None
            except defs.SchemaError:
                known = domain not in ("", "ai.onnx")  # another domain's ops: its runtime's
            if not known:
                found[node.op_type] = found.get(node.op_type, 0) + 1
            for attr in node.attribute:
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    visit(sub)

    visit(proto.graph)
    return found
