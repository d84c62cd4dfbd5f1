"""What ``edge-infer quantize --method auto`` picks for a model, and why.

The device profile (``edge_infer.devices``) names a recipe for convolutional models and one for
the rest; this module decides which a model is. Convolutional means here: a model whose
convolution weights are mostly in ``Conv`` layers, one of which is large enough for
onnxruntime's INT8 kernels to pay (``MIN_STATIC_CONV_WEIGHTS``). A generator or decoder built
of ``ConvTranspose``, and a model of small convolutions, get the other recipe; on CPUs that is
weight-only INT8, which runs the float32 graph from an int8 file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


# Static INT8 pays where onnxruntime's QLinearConv has enough to do: it runs one GEMM per image,
# and a convolution with few weights gives it a small one. On the zoo (benchmarks/weight_only.py)
# the cnn, whose largest convolution has 18,432 weights, ran 1.5x faster than float32 at batch
# 64 and the cifar_cnn (36,864) 1.5x-1.7x, but the conv_autoencoder (1,152) 0.80x with a file
# 95% of float32's, where weight-only gave 54% at float32's speed. Where between 1,152 and
# 18,432 the line lies was not measured.
MIN_STATIC_CONV_WEIGHTS = 4096


def choose_method(model: Path, device: str = "host") -> str:
    """``auto``: the device profile's recipe for convolutional models (static INT8 on CPUs)
    or for the rest (weight-only INT8 on CPUs); :func:`auto_reason` says when a model with
    convolutions counts as the rest."""
    from edge_infer.devices.profiles import get
    from edge_infer.runtime.modelfile import read_model_info

    info = read_model_info(model)
    convolutional = _convolution_weights(info)[0] > 0 and auto_reason(info) is None
    return get(device).quantization.method_for(convolutional)


def _convolution_weights(info: Any) -> tuple[int, int, int]:
    """Weights in ``Conv`` layers, in ``ConvTranspose`` layers, and in the largest ``Conv``."""
    sizes = {i.name: i.size for i in info.initializers}
    conv = transposed = largest = 0
    for node in info.nodes:
        if node.op_type in ("Conv", "ConvTranspose") and len(node.inputs) > 1:
            n = sizes.get(node.inputs[1], 1)
            if node.op_type == "Conv":
                conv, largest = conv + n, max(largest, n)
            else:
                transposed += n
    return conv, transposed, largest


def auto_reason(info: Any) -> str | None:
    """Why ``auto`` treats a model with convolutions as one without (None when it does not):
    its convolutions are mostly transposed (a generator, a decoder), for which onnxruntime's
    CPU provider has no INT8 kernel, so static INT8 would dequantize their weights on every
    call (the zoo's gan ran at 0.55x-0.60x of float32 at batch 1); or they are too small for
    INT8 kernels to pay (``MIN_STATIC_CONV_WEIGHTS``)."""
    conv, transposed, largest = _convolution_weights(info)
    if not conv + transposed:
        return None
    if transposed >= conv:
        return ("most of its convolution weights are in ConvTranspose layers, which "
                "onnxruntime's CPU provider runs in float32 (static INT8 would dequantize "
                "them on every call)")
    if largest < MIN_STATIC_CONV_WEIGHTS:
        return (f"its largest convolution has {largest:,} weights, too few for onnxruntime's "
                f"INT8 kernels to pay (static INT8 from {MIN_STATIC_CONV_WEIGHTS:,}; "
                f"--method static forces it)")
    return None


def auto_note(model: Path, method: str, device: str) -> str | None:
    """What ``quantize`` says when ``auto`` gave a model with convolutions the recipe for the
    rest (``method``, for ``device``), or None."""
    from edge_infer.devices.profiles import get
    from edge_infer.runtime.modelfile import read_model_info

    conv_method = get(device).quantization.conv_method
    why = auto_reason(read_model_info(model)) if method != conv_method else None
    return f"auto picks {method}, not {conv_method}: {why}" if why else None
