"""Where a quantized model drifts from its float original: the error at each layer's output.

When the accuracy guard refuses a recipe, "try another recipe" is only half an answer; what a
user needs is the layer to keep in float (``--exclude``). onnxruntime's ``qdq_loss_debug`` and
TFLite's ``QuantizationDebugger`` answer it by comparing activations layer by layer; this does
the same for any of our recipes: both models run on the evaluation samples with every layer's
output added as a graph output, and each layer gets the relative error of its output
``||q - f|| / ||f||`` (and the same as a signal-to-quantization-noise ratio in dB). The error
accumulates along the graph, so the layer to look at is where it *jumps*: ``worst_jump``.

Layers are the first component of node names, which :mod:`.names` makes the Keras layers'
(``conv2d_1/BiasAdd`` belongs to ``conv2d_1``); a layer's output is the last tensor its nodes
write that both graphs hold under the same name (the quantizers keep the float tensor names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_infer.runtime.modelfile import layer_of

from .samples import Samples, count, feeds, rows
from .simplify import consumers


@dataclass(frozen=True)
class LayerError:
    layer: str
    tensor: str
    relative_error: float  # ||quantized - float|| / ||float|| over the samples

    @property
    def sqnr_db(self) -> float:
        return math.inf if self.relative_error == 0 else -20 * math.log10(self.relative_error)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sqnr_db"] = None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 2)
        return d


def layer_outputs(proto: Any) -> dict[str, str]:
    """Layer name -> the last tensor its nodes write, in graph order."""
    outputs: dict[str, str] = {}
    for node in proto.graph.node:
        layer = layer_of(node.name)
        if layer is not None and node.output and node.output[0]:
            outputs.pop(layer, None)  # keep graph order of each layer's last output
            outputs[layer] = node.output[0]
    return outputs


def _dequantized(proto: Any) -> dict[str, str]:
    """Tensor name -> the tensor that holds what the next layer sees in the quantized model:
    in a QDQ model a float tensor goes through ``QuantizeLinear -> DequantizeLinear`` first
    (and the quantizer drops a ``Relu`` that the uint8 range clips anyway, so the tensor
    before the pair is not yet clipped); elsewhere the tensor itself."""
    readers_of = consumers(proto.graph)
    seen = {}
    for node in proto.graph.node:
        for tensor in node.output:
            readers = readers_of.get(tensor, [])
            if len(readers) == 1 and readers[0].op_type == "QuantizeLinear":
                after = readers_of.get(readers[0].output[0], [])
                if len(after) == 1 and after[0].op_type == "DequantizeLinear":
                    seen[tensor] = after[0].output[0]
                    continue
            seen[tensor] = tensor
    return seen


def _with_outputs(proto: Any, names: list[str]) -> bytes:
    from onnx import helper

    present = {o.name for o in proto.graph.output}
    proto.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names
                              if n not in present)
    return proto.SerializeToString()


def layer_errors(original: Path, quantized: Path, x: Samples,
                 batch: int = 256) -> list[LayerError]:
    """The relative error of each layer's output, in graph order (see the module docstring)."""
    import onnx
    import onnxruntime as ort

    float_proto = onnx.load(str(original))
    quant_proto = onnx.load(str(quantized))
    seen = _dequantized(quant_proto)
    pairs = [(layer, t) for layer, t in layer_outputs(float_proto).items() if t in seen]
    if not pairs:
        return []
    names = [t for _, t in pairs]
    quant_names = [seen[t] for t in names]
    sessions = [ort.InferenceSession(_with_outputs(p, n), providers=["CPUExecutionProvider"])
                for p, n in ((float_proto, names), (quant_proto, quant_names))]
    inputs = [spec.name for spec in sessions[0].get_inputs()]
    noise = np.zeros(len(names))
    signal = np.zeros(len(names))
    for start in range(0, count(x), batch):
        feed = feeds(rows(x, start, start + batch), inputs)
        f_out, q_out = sessions[0].run(names, feed), sessions[1].run(quant_names, feed)
        for i, (f, q) in enumerate(zip(f_out, q_out)):
            f64 = np.asarray(f, np.float64)
            noise[i] += float(np.sum((np.asarray(q, np.float64) - f64) ** 2))
            signal[i] += float(np.sum(f64 ** 2))
    return [LayerError(layer, tensor, float(math.sqrt(n / s)) if s > 0 else
                       (0.0 if n == 0 else math.inf))
            for (layer, tensor), n, s in zip(pairs, noise, signal)]


def worst_jump(errors: list[LayerError], skip: Sequence[str] = ()) -> LayerError | None:
    """The layer whose output error grows most over the layer before it (as a ratio; the
    first layer is compared with a tenth of a percent): the first candidate for
    ``--exclude``. Layers in ``skip`` (already in float) are not candidates."""
    best, best_ratio, previous = None, 1.0, 1e-3
    for e in errors:
        ratio = e.relative_error / max(previous, 1e-12)
        if ratio > best_ratio and e.layer not in skip:
            best, best_ratio = e, ratio
        previous = max(e.relative_error, 1e-12)
    return best
