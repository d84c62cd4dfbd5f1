"""INT8 and FP16 quantization with a measured accuracy report and an accuracy guard.

Recipes are typed configurations in a registry: ``dynamic`` (INT8 weights, activations quantized
at run time by onnxruntime's integer kernels), ``static`` (QDQ INT8, per-channel weights,
activations calibrated on training samples after onnxruntime's ``quant_pre_process``),
``weight-only`` (int8 weights dequantized once when the model loads, float32 compute:
:mod:`.weight_only`), ``fp16`` (half precision weights and compute, float32 inputs and outputs
kept).

The target device profile (``edge_infer.devices``; default: the machine quantizing) decides the
INT8 types (U8S8 on x86, with ``reduce_range`` where there is no VNNI; S8S8 on arm64) and what
``auto`` picks: the profile's recipe for convolutional models (static INT8 on CPUs, fp16 on
Jetson/CUDA) and for the rest (weight-only INT8 on CPUs, fp16 on Jetson/CUDA). ``auto`` never
picks dynamic: its ``ConvInteger`` kernels are several times slower than float32 on CPU, and on
the zoo's dense and recurrent models it was slower than float32 too.

Every quantization evaluates the original and the quantized model on the same held-out samples
and refuses (writing nothing) when the accuracy drops by more than ``max_accuracy_drop`` points.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_infer.runtime.atomic import atomic_open
from edge_infer.runtime.compat import (KEY_REQUIRES, SPEED, Requirement, graph_requirements,
                                       to_prop)
from edge_infer.runtime.dtypes import numpy_dtype
from edge_infer.runtime.errors import EdgeInferError, UnknownNameError, UsageError
from edge_infer.runtime.predictions import predicted_classes

from .qdq import THIN_CONV_CHANNELS, thin_conv_layers
from .auto import auto_note, choose_method
from .quiet import dropped
from .samples import Samples, count, dataset_for_input, feeds, named_arrays, rows
from .sensitivity import LayerError, layer_errors, worst_jump
from .weight_only import small_weights, store_weights_int8, weights_to_store

METHODS = ("auto", "dynamic", "static", "weight-only", "fp16")
CALIBRATIONS = ("minmax", "entropy", "percentile")
INT8_TYPES = ("uint8", "int8")
Log = Callable[[str], None]
PER_LAYER_SAMPLES = 512  # enough for a stable error figure, cheap on any zoo model


class RefusedError(EdgeInferError):
    """The quantized model is not one to write; nothing was written (the float32 model stays
    the one to deploy)."""


class AccuracyGuardError(RefusedError):
    """The quantized model lost more accuracy than allowed; nothing was written."""


class UnloadableError(RefusedError):
    """onnxruntime cannot open the quantized model (or crashes opening it); nothing was
    written."""


# The dynamic recipe leaves a layer with fewer weights than this in float, as TensorFlow Lite's
# dynamic-range quantization does (its converter's threshold is 1024 elements). On a small
# layer the quantize operators cost more than INT8 saves: the lstm's 32x4 classifier became
# six operators (DynamicQuantizeLinear, MatMulInteger, two Mul, Cast, Add) instead of one Gemm,
# and the file grew by 578 bytes. The weight-only recipe's operators run once, when the model
# loads, so only the file decides there: below about 128 weights the Cast, the Mul and the
# scale weigh what int8 saves (3 bytes a weight); no smaller threshold made a zoo file smaller
# by 0.1% of float32.
MIN_WEIGHTS = {"dynamic": 1024, "weight-only": 128}
# Weight scales per output channel, by recipe, unless --per-channel/--per-tensor says. Static:
# per channel, the usual choice for convolutions, whose filters differ in range (TensorRT's and
# TFLite's INT8 weights are per channel). Dynamic: one scale per tensor, onnxruntime's own
# default. Per channel, every output channel carries a float32 scale and an int8 zero point: 5
# bytes, against 1 byte of weight per channel in the first LSTM of the waves lstm. On the VNNI
# machine (python benchmarks/weight_scales.py), over 8 trained lstm models (waves and a text set,
# 4 seeds, each for the x86-vnni and x86-avx2 profiles), per-tensor agreed with float32 as often
# or more often in all 16 pairs (one of the 240 test samples is 0.42 points, so accuracy is a tie
# within noise; an earlier sweep on an AVX2 machine leaned as slightly the other way), its files
# were smaller (29.9% of float32 against 33.1% for waves) and it ran at 0.73x to 0.94x of float32
# at batch 1 against 0.68x to 0.93x.
PER_CHANNEL = {"static": True, "dynamic": False, "weight-only": True}
# What onnxruntime's dynamic quantizer turns to INT8 (its IntegerOps registry: MatMul, Gemm,
# Conv, LSTM, Attention, the embedding table a Gather reads, ...): op -> index of its weight.
_DYNAMIC_WEIGHT = {"MatMul": 1, "Gemm": 1, "Conv": 1, "LSTM": 1, "Attention": 1, "Gather": 0,
                   "EmbedLayerNormalization": 2}
_SMALL_LAYER_OPS = ("MatMul", "Gemm", "Conv")  # those the small-layer rule applies to


def _dynamic_weights(proto: Any, ops: Sequence[str] = tuple(_DYNAMIC_WEIGHT)) -> dict[str, Any]:
    """Node name -> its constant float weight (a TensorProto), for the nodes of ``ops``."""
    inits = {i.name: i for i in proto.graph.initializer if i.data_type in (1, 10, 16)}
    found = {}
    for node in proto.graph.node:
        at = _DYNAMIC_WEIGHT.get(node.op_type) if node.op_type in ops else None
        if at is not None and len(node.input) > at and node.input[at] in inits:
            found[node.name] = inits[node.input[at]]
    return found


def small_layers(proto: Any, limit: int) -> dict[str, int]:
    """The MatMul/Gemm/Conv nodes whose constant weight has fewer than ``limit`` elements,
    with that count: what the dynamic recipe keeps in float."""
    sizes = {name: int(np.prod(w.dims)) for name, w in
             _dynamic_weights(proto, _SMALL_LAYER_OPS).items()}
    return {name: n for name, n in sizes.items() if n < limit}


@dataclass(frozen=True)
class QuantizeConfig:
    model: Path
    method: str = "auto"
    dataset: str | None = None
    calibration_size: int = 256
    per_channel: bool | None = None  # None: the recipe's (PER_CHANNEL)
    calibrate: str = "minmax"
    device: str = "host"
    activation_type: str | None = None  # None: the device profile's
    reduce_range: bool | None = None  # None: the device profile's
    max_accuracy_drop: float = 1.0
    out: Path | None = None
    exclude: tuple[str, ...] = ()  # layers (node-name prefixes) kept in float
    per_layer: bool = False  # report each layer's output error (sensitivity.py)
    auto_exclude: int = 0  # on a refusal, keep up to this many layers in float and retry
    min_weights: int | None = None  # smaller layers stay float (0: none; None: MIN_WEIGHTS)
    # static: convolutions reading at most this many channels stay float32 (0: none), where
    # onnxruntime's INT8 convolution is several times slower (qdq.py)
    float_thin_conv: int = THIN_CONV_CHANNELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))  # str from Python callers
        object.__setattr__(self, "out", None if self.out is None else Path(self.out))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.method not in METHODS:
            raise UnknownNameError("quantization method", self.method, METHODS)
        if self.calibrate not in CALIBRATIONS:
            raise UnknownNameError("calibration method", self.calibrate, CALIBRATIONS)
        if self.activation_type is not None and self.activation_type not in INT8_TYPES:
            raise UnknownNameError("activation type", self.activation_type, INT8_TYPES)
        from edge_infer.devices.profiles import get

        get(self.device)  # an unknown profile is refused before any work
        if self.calibration_size < 1:
            raise UsageError(f"calibration size must be >= 1, found {self.calibration_size}")
        if self.auto_exclude < 0:
            raise UsageError(f"auto-exclude must be >= 0 layers, found {self.auto_exclude}")
        if self.min_weights is not None and self.min_weights < 0:
            raise UsageError(f"min weights must be >= 0, found {self.min_weights}")
        if self.float_thin_conv < 0:
            raise UsageError(f"float thin conv must be >= 0 channels, found "
                             f"{self.float_thin_conv}")
        if self.max_accuracy_drop < 0:
            raise UsageError(f"max accuracy drop must be >= 0 points, found "
                             f"{self.max_accuracy_drop}")


@dataclass(frozen=True)
class Recipe:
    """One way to quantize; ``apply`` writes the quantized model from the float one.

    ``float32_compute``: once onnxruntime has loaded the file, the graph it runs is float32's
    (weight-only), so a timing difference against float32 is noise, not something to act on."""

    name: str
    description: str
    suffix: str
    alternatives: str
    apply: Callable[[Path, Path, QuantizeConfig, np.ndarray], None]
    float32_compute: bool = False


RECIPES: dict[str, Recipe] = {}


def register(name: str, description: str, suffix: str, alternatives: str,
             float32_compute: bool = False):
    def wrap(fn: Callable[[Path, Path, QuantizeConfig, np.ndarray], None]):
        RECIPES[name] = Recipe(name, description, suffix, alternatives, fn, float32_compute)
        return fn
    return wrap


def computes_in_float32(method: str | None) -> bool:
    """Whether the files of recipe ``method`` run float32's graph once loaded."""
    recipe = RECIPES.get(method or "")
    return recipe is not None and recipe.float32_compute


def layers_of(proto: Any) -> list[str]:
    """The layers a graph's node names carry (``conv2d`` for ``conv2d/BiasAdd``), in graph
    order: what ``--exclude`` accepts."""
    from edge_infer.runtime.modelfile import layer_of

    layers = (layer_of(node.name) for node in proto.graph.node)
    return list(dict.fromkeys(layer for layer in layers if layer is not None))


def excluded_nodes(proto: Any, names: Sequence[str]) -> list[str]:
    """The nodes ``--exclude NAME`` keeps in float: those named ``NAME`` or ``NAME/...`` (a
    layer of the exported Keras model; see export/names.py). An unknown name is refused with
    the names that exist."""
    from edge_infer.runtime.modelfile import layer_of

    nodes = [n.name for n in proto.graph.node]
    chosen: list[str] = []
    for name in names:
        prefix = name.rstrip("/") + "/"
        matched = [n for n in nodes if n == name or n.startswith(prefix) or layer_of(n) == name]
        if not matched:
            layers = layers_of(proto)
            raise UsageError(f"--exclude {name}: no layer or node of that name; the model's "
                             f"layers are {', '.join(layers) if layers else '(none named)'}")
        chosen.extend(m for m in matched if m not in chosen)
    return chosen


def _quant_type(q: Any, name: str) -> Any:
    return q.QuantType.QUInt8 if name == "uint8" else q.QuantType.QInt8


@register("dynamic", "INT8 weights, activations quantized at run time", "int8",
          "try --method weight-only (activations stay float), --per-channel, --method "
          "static (convolutional models), --exclude LAYER for the most sensitive layers, or "
          "--method fp16")
def _dynamic(src: Path, dst: Path, config: QuantizeConfig, calibration: np.ndarray) -> None:
    import logging

    from onnxruntime import quantization as q

    class NoPreprocessAdvice(logging.Filter):
        """onnxruntime advises ``quant_pre_process`` (on the root logger) before any
        quantization. For the dynamic recipe it changes nothing: on the ``lstm`` the same four
        quantized operators, the same accuracy and batch-1 latency (287 vs 289 us) came out,
        so the advice would only be a warning in the middle of a good run."""

        def filter(self, record: logging.LogRecord) -> bool:
            return "consider to run pre-processing" not in record.getMessage()

    advice = NoPreprocessAdvice()
    logging.getLogger().addFilter(advice)
    try:
        import onnx

        proto = onnx.load(str(src), load_external_data=False)
        excluded = excluded_nodes(proto, config.exclude)
        excluded += [n for n in small_layers(proto, config.min_weights) if n not in excluded]
        # The dynamic quantizer first splits every Gemm into NAME_MatMul and NAME_Add
        # (onnx_model.replace_gemm_with_matmul) and matches the exclusions after that.
        gemms = {n.name for n in proto.graph.node if n.op_type == "Gemm"}
        excluded += [f"{name}_MatMul" for name in excluded if name in gemms]
        q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8,
                           per_channel=config.per_channel, reduce_range=bool(config.reduce_range),
                           nodes_to_exclude=excluded)
    finally:
        logging.getLogger().removeFilter(advice)


def calibration_reader(model: Path, samples: Samples) -> Any:
    """onnxruntime's calibration reader over ``samples``, one sample at a time."""
    from onnxruntime import quantization as q

    from edge_infer.runtime.modelfile import read_model_info

    names = [spec.name for spec in read_model_info(model).inputs]

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds(rows(samples, i, i + 1), names)
                              for i in range(count(samples)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    return Reader()


@register("static", "QDQ INT8, per-channel weights, calibrated activations, float head", "int8",
          "try --reduce-range, --calibrate entropy or percentile, more --calibration-size, "
          "--per-tensor, --exclude LAYER for the most sensitive layers (often the first or "
          "the last), --method weight-only (activations stay float), or --method fp16")
def _static(src: Path, dst: Path, config: QuantizeConfig, calibration: np.ndarray) -> None:
    import onnx
    from onnxruntime import quantization as q

    from .qdq import (channels_last_handover, drop_propagated_pairs, float_head,
                      head_activations, pool_before_activation)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # auto_merge: the shape inference gives a Resize's output batch as floor(1.0*batch),
        # and without merging it with batch an UpSampling2D added to its input stops it
        q.quant_pre_process(str(src), str(prepared), auto_merge=True)
        proto = onnx.load(str(prepared), load_external_data=False)
        heads = head_activations(proto)
        excluded = excluded_nodes(proto, config.exclude)
        method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                  "percentile": q.CalibrationMethod.Percentile}[config.calibrate]
        q.quantize_static(str(prepared), str(dst), calibration_reader(src, calibration),
                          quant_format=q.QuantFormat.QDQ,
                          per_channel=config.per_channel,
                          activation_type=_quant_type(q, config.activation_type),
                          weight_type=q.QuantType.QInt8, calibrate_method=method,
                          reduce_range=bool(config.reduce_range),
                          nodes_to_exclude=heads + [n for n in excluded if n not in heads])
    model = onnx.load(str(dst))
    changed = ((float_head(model, heads) if heads else 0) + pool_before_activation(model)
               + channels_last_handover(model) + drop_propagated_pairs(model))
    if changed:
        onnx.save(model, str(dst))


@register("weight-only", "INT8 weights dequantized when the model loads, float32 compute",
          "int8", "keep float32, --exclude LAYER for the most sensitive layers, or --method fp16",
          float32_compute=True)
def _weight_only(src: Path, dst: Path, config: QuantizeConfig, calibration: np.ndarray) -> None:
    import onnx

    proto = onnx.load(str(src))
    store_weights_int8(proto, per_channel=bool(config.per_channel),
                       min_weights=config.min_weights,
                       exclude=excluded_nodes(proto, config.exclude))
    onnx.save(proto, str(dst))


@register("fp16", "float16 weights and compute, float32 inputs and outputs", "fp16",
          "keep float32, or try --method weight-only")
def _fp16(src: Path, dst: Path, config: QuantizeConfig, calibration: np.ndarray) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    excluded = excluded_nodes(model, config.exclude)
    onnx.save(convert_float_to_float16(model, keep_io_types=True, node_block_list=excluded),
              str(dst))


def resolve(config: QuantizeConfig) -> QuantizeConfig:
    """The configuration with ``auto`` and the profile-dependent types made concrete."""
    from edge_infer.devices.profiles import get

    plan = get(config.device).quantization
    method = choose_method(config.model, config.device) if config.method == "auto" \
        else config.method
    activation = config.activation_type or plan.activation_type
    reduce_range = plan.reduce_range if config.reduce_range is None else config.reduce_range
    per_channel = PER_CHANNEL.get(method, True) if config.per_channel is None \
        else config.per_channel
    min_weights = MIN_WEIGHTS.get(method, 0) if config.min_weights is None \
        else config.min_weights
    return replace(config, method=method, device=get(config.device).name,
                   activation_type=activation, reduce_range=reduce_range,
                   per_channel=per_channel, min_weights=min_weights)


# -- evaluation -------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """One model on the evaluation samples."""

    metric: str
    value: float | None
    size_bytes: int
    latency_ms: float
    outputs: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("outputs")
        return d


def _predict(session: Any, x: Samples, batch: int = 256) -> np.ndarray:
    names = [spec.name for spec in session.get_inputs()]
    parts = [session.run(None, feeds(rows(x, i, i + batch), names))[0]
             for i in range(0, count(x), batch)]
    return np.concatenate(parts)


def evaluate_onnx(path: Path, x: Samples, y: np.ndarray | None, task: str | None
                  ) -> Evaluation:
    """The model's outputs on ``x`` and its metric; ``latency_ms`` is left at 0 for
    :func:`batch1_latencies`, which times the models being compared together."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    out = _predict(session, x)
    if task == "classification" and y is not None:
        metric, value = "accuracy", float(np.mean(predicted_classes(out) == y.reshape(-1)))
    elif task in ("regression", "reconstruction") and y is not None:  # y is x to reconstruct
        metric, value = "mse", float(np.mean((out.reshape(len(y), -1)
                                              - y.reshape(len(y), -1)) ** 2))
    else:
        metric, value = "none", None
    return Evaluation(metric, value, path.stat().st_size, 0.0, out)


def batch1_latencies(paths: Sequence[Path], x: Samples, runs: int = 300,
                     warmup_s: float = 0.2) -> list[float]:
    """Median milliseconds per batch-1 call of each model, the calls alternating between them
    after a warm-up of at least ``warmup_s``. Timed one after the other with a 20-call
    warm-up, a model of 15 us read 0.80x and then 1.01x of its float32 original in two runs a
    minute apart, and the note that the quantized model ran slower fired on that noise."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sessions = [ort.InferenceSession(str(p), sess_options=so,
                                     providers=["CPUExecutionProvider"]) for p in paths]
    one = feeds(rows(x, 0, 1), [spec.name for spec in sessions[0].get_inputs()])
    started = time.perf_counter()
    while time.perf_counter() - started < warmup_s:
        for session in sessions:
            session.run(None, one)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for session, spent in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, one)
            spent.append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


# -- data -------------------------------------------------------------------------------------

def _run_dir(model: Path) -> Path | None:
    return model.parent if (model.parent / "model.json").is_file() else None


def load_data(model: Path, dataset: str | None, calibration_size: int, log: Log
              ) -> tuple[Samples, Samples, np.ndarray | None, str | None]:
    """Calibration inputs, evaluation inputs and targets, and the task."""
    from edge_infer.runtime.modelfile import read_model_info

    names = [spec.name for spec in read_model_info(model).inputs]
    if len(names) > 1:  # datasets and samples.npz hold one input array
        return _named_arrays(model, names, dataset, calibration_size)
    run = _run_dir(model)
    info = json.loads((run / "model.json").read_text()) if run else {}
    task = info.get("task")
    # A generator's inputs are latent vectors, not the images it was trained on.
    spec = dataset or (info.get("dataset_spec") if task != "generation" else None)
    if spec:
        from edge_infer.runtime.metadata import ModelMetadata, TextPreprocess

        try:
            file_info = read_model_info(model)
            expected = ModelMetadata.from_props(file_info.metadata).preprocess
            # a text model's own vocabulary encodes the rows, without TensorFlow
            text = expected if isinstance(expected, TextPreprocess) else None
            first = file_info.inputs[0]
            data = dataset_for_input(spec, first.shape, numpy_dtype(first.type),
                                     seed=info.get("seed", 0), text=text)
            if expected is None or data.preprocess == expected:
                task = task or data.task
                y = data.x_test if task == "reconstruction" else data.y_test
                return data.x_train[:calibration_size], data.x_test, y, task
            log(f"warning: {spec} does not preprocess like the model; using samples.npz")
        except EdgeInferError as exc:
            if dataset:
                raise
            log(f"warning: cannot load {spec} ({exc}); using the run's samples.npz")
    if run and (run / "samples.npz").is_file():
        with np.load(run / "samples.npz") as s:
            x = s["x"]
            y = s["y"] if "y" in s.files else None
        return x[:calibration_size], x, (x if task == "reconstruction" else y), task
    raise UsageError(f"quantizing {model.name} needs samples: pass --dataset SPEC, or quantize "
                     "a model.onnx inside its run folder")


def _named_arrays(model: Path, names: list[str], dataset: str | None, calibration_size: int
                  ) -> tuple[Samples, Samples, np.ndarray | None, str | None]:
    """A multi-input model's samples: an .npz with one array per input, named after it, and
    optionally ``y`` (integer class labels make it a classifier's test, others a regressor's)."""
    if not dataset or not dataset.endswith(".npz"):
        raise UsageError(f"{model.name} has {len(names)} inputs ({', '.join(names)}); pass "
                         "--dataset FILE.npz with one array per input, named after it, and "
                         "optionally y (the targets)")
    arrays = named_arrays(dataset, names, optional=("y",))
    x = {n: arrays[n] for n in names}
    y = arrays.get("y")
    task = None if y is None else (
        "classification" if y.dtype.kind in "iu" and y.ndim == 1 else "regression")
    return rows(x, 0, calibration_size), x, y, task


@dataclass
class QuantizeResult:
    path: Path
    method: str
    original: Evaluation
    quantized: Evaluation
    agreement: float | None
    max_abs_diff: float
    settings: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerError] | None = None  # with --per-layer, or when the guard refused
    requires: list[Requirement] = field(default_factory=list)  # of onnxruntime (compat.py)

    @property
    def not_smaller(self) -> bool:
        """Whether the quantized file saves nothing (report.NOT_SMALLER says why it can)."""
        return self.quantized.size_bytes >= self.original.size_bytes

    @property
    def drop_points(self) -> float | None:
        if self.original.value is None or self.quantized.value is None:
            return None
        if self.original.metric == "accuracy":
            return (self.original.value - self.quantized.value) * 100
        return None

    def report(self) -> dict[str, Any]:
        return {"method": self.method, "path": str(self.path), "settings": self.settings,
                "original": self.original.to_dict(), "quantized": self.quantized.to_dict(),
                "accuracy_drop_points": self.drop_points, "top1_agreement": self.agreement,
                "max_abs_diff": self.max_abs_diff,
                "size_ratio": self.quantized.size_bytes / self.original.size_bytes,
                "speedup": self.original.latency_ms / self.quantized.latency_ms,
                "requires": [r.to_dict() for r in self.requires],
                **({"layers": [e.to_dict() for e in self.layers]}
                   if self.layers is not None else {})}


def _refuse_quantized(src: Path) -> None:
    """Quantizing a quantized model stacks a second set of scales on rounded weights, when
    onnxruntime's quantizer gets that far: on a QDQ model it writes duplicate node names and
    the result does not load. Say so before any work, and name the float32 source when it
    lies beside the file under the name ``quantize`` gave it."""
    from edge_infer.runtime.modelfile import read_model_info

    fmt = read_model_info(src).quantization()["format"]
    if fmt == "none":
        return
    source = next((src.with_name(src.name[:-len(end)] + ".onnx") for end in
                   (f".{r.suffix}.onnx" for r in RECIPES.values()) if src.name.endswith(end)),
                  None)
    hint = (f"quantize {source} instead" if source is not None and source.is_file() else
            "quantize the float32 model it was made from")
    raise UsageError(f"{src.name} is already quantized ({fmt}); expected a float32 model: "
                     f"{hint}")


class NothingQuantizedError(RefusedError):
    """The recipe has nothing to quantize in this model: the file would be float32 again."""


def quantize(config: QuantizeConfig, log: Log | None = None) -> QuantizeResult:
    log = log or (lambda _m: None)
    src = Path(config.model)
    if src.is_dir():
        from edge_infer.runtime.not_onnx import describe_folder

        raise UsageError(describe_folder(src))
    if not src.is_file():
        raise UsageError(f"model file {src} does not exist")
    _refuse_quantized(src)
    auto = config.method == "auto"
    config = resolve(config)
    method = config.method
    note = auto_note(src, config.method, config.device) if auto else None
    if note:
        log(note)
    recipe = RECIPES[method]
    out = Path(config.out) if config.out else src.with_name(f"{src.stem}.{recipe.suffix}.onnx")
    thin_nodes: list[str] = []
    if config.exclude or method in ("dynamic", "static", "weight-only"):  # unknown names: refused
        import onnx

        proto = onnx.load(str(src), load_external_data=False)
        kept = excluded_nodes(proto, config.exclude)
        if kept:
            log(f"keeping {len(kept)} operator{'s' if len(kept) != 1 else ''} in float: "
                f"{', '.join(config.exclude)}")
        thin = [name for name in thin_conv_layers(proto, config.float_thin_conv)
                if name not in config.exclude] if method == "static" else []
        if thin:
            log(f"keeping {', '.join(thin)} in float32: a convolution reading at most "
                f"{config.float_thin_conv} channels on a small image, where onnxruntime's INT8 "
                "kernel is several times slower (--float-thin-conv 0 quantizes it); its "
                "weights are stored in int8 and dequantized when the model loads")
            config = replace(config, exclude=config.exclude + tuple(thin))
            thin_nodes = excluded_nodes(proto, thin)
        small = (small_layers(proto, config.min_weights) if method == "dynamic" else
                 small_weights(proto, config.min_weights) if method == "weight-only" else {})
        if method == "weight-only" and not weights_to_store(proto, config.min_weights, kept):
            raise NothingQuantizedError(
                f"weight-only INT8 has nothing to store in int8 in {src.name}: it stores the "
                f"weights of MatMul, Gemm, Conv, ConvTranspose, LSTM, GRU and RNN layers and "
                f"embedding tables with {config.min_weights} values or more, and this model has "
                f"none (--min-weights 0 stores smaller ones); nothing was written; keep the "
                f"float32 model")
        if method == "dynamic" and not set(_dynamic_weights(proto)) - set(small) - set(kept):
            # Nothing would change: the file would be float32 again, with a report.
            raise NothingQuantizedError(
                f"dynamic INT8 has nothing to quantize in {src.name}: onnxruntime quantizes "
                f"MatMul, Gemm, Conv, LSTM and attention layers and embedding tables, and "
                f"this model has none"
                + (f" with {config.min_weights} weights or more (--min-weights 0 quantizes "
                   f"smaller ones)" if small else "")
                + " (a GRU has no integer kernel); nothing was written; try --method "
                  "weight-only (int8 storage, float32 compute) or fp16, or keep the float32 "
                  "model")
        if small:
            from edge_infer.runtime.modelfile import layer_of

            why = ("where INT8 saves less than its operators cost" if method == "dynamic" else
                   "where int8 saves about what its two operators weigh in the file")
            log(f"keeping small layers in float (fewer than {config.min_weights} weights, "
                f"{why}): "
                + ", ".join(f"{layer_of(n) or n} ({w})" for n, w in small.items()))
    calibration, x, y, task = load_data(src, config.dataset, config.calibration_size, log)
    types = (f", {config.activation_type} activations" if method == "static" else "") + \
        (", reduce_range" if config.reduce_range and method in ("static", "dynamic") else "")
    _note_foreign_target(config.device, log)
    log(f"quantizing {src.name} for {config.device} with {method} ({recipe.description}"
        f"{types}); evaluating on {count(x)} samples")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "quantized.onnx"
        original: Evaluation | None = None
        excluded = list(config.exclude)
        for attempt in range(config.auto_exclude + 1):
            config = replace(config, exclude=tuple(excluded))
            with dropped(QUANTIZER_NOISE):
                recipe.apply(src, candidate, config, calibration)
            _tidy_file(candidate, int8_weights_of=thin_nodes)
            failure = _opening_failure(candidate)
            if failure:
                raise UnloadableError(
                    f"onnxruntime {_ort_version()} {failure} opening the {method} model; "
                    f"nothing was written; {recipe.alternatives}")
            if original is None:
                original = evaluate_onnx(src, x, y, task)
            quantized = evaluate_onnx(candidate, x, y, task)
            agreement = (float(np.mean(predicted_classes(original.outputs)
                                       == predicted_classes(quantized.outputs)))
                         if task == "classification" else None)
            diff = float(np.max(np.abs(original.outputs.astype(np.float64)
                                       - quantized.outputs.astype(np.float64))))
            result = QuantizeResult(out, method, original, quantized, agreement, diff,
                                    settings=_settings(config))
            drop = result.drop_points
            refused = drop is not None and drop > config.max_accuracy_drop
            if config.per_layer or refused:
                result.layers = layer_errors(src, candidate, rows(x, 0, PER_LAYER_SAMPLES))
            if not refused:
                break
            worst = worst_jump(result.layers or [], skip=excluded)
            if worst is not None and attempt < config.auto_exclude:
                log(f"{method} lowers accuracy by {drop:.2f} points; the error jumps at "
                    f"{worst.layer}: keeping it in float and quantizing again")
                excluded.append(worst.layer)
                continue
            hint = (f"; the error grows most at layer {worst.layer} (its output is "
                    f"{worst.relative_error:.1%} off): try --exclude {worst.layer}"
                    if worst is not None else "")
            tried = (f" (with {', '.join(excluded)} in float)" if excluded else "")
            raise AccuracyGuardError(
                f"{method}{tried} lowers accuracy by {drop:.2f} points "
                f"({original.value:.4f} -> {quantized.value:.4f}), more than "
                f"--max-accuracy-drop {config.max_accuracy_drop:g}; nothing was written{hint}; "
                f"{recipe.alternatives}")
        assert original is not None
        original.latency_ms, quantized.latency_ms = batch1_latencies([src, candidate], x)
        result.requires = runtime_requirements(candidate, method,
                                               float_first_conv=bool(thin_nodes))
        for need in result.requires:
            log(f"{out.name} needs {need.phrase()}")
        _write_metadata(src, candidate, result)
        with atomic_open(out, "wb") as fh, open(candidate, "rb") as src_fh:
            shutil.copyfileobj(src_fh, fh)
    return result


# onnxruntime's quantizer logs, on the root logger, a protobuf dump of a dozen lines for every
# tensor it leaves alone because it is not float (a mask's booleans, token ids): the right thing
# to do, and nothing a user can act on
QUANTIZER_NOISE = {"": ("Inference failed or unsupported type to quantize",)}


def _opening_failure(path: Path) -> str | None:
    """None when onnxruntime opens the file; else how it failed. Tried in a child process: a
    crash in onnxruntime's graph optimizer (1.32 segfaults on an fp16 SimpleRNN between two
    transposes and a MatMul) would otherwise end this process, and with it the user's."""
    import subprocess
    import sys

    code = ("import sys, onnxruntime as ort; "
            "ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True)
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"crashed (signal {-done.returncode})"
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return f"failed ({lines[-1] if lines else f'exit status {done.returncode}'})"


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def _note_foreign_target(device: str, log: Log) -> None:
    import platform

    from edge_infer.devices.profiles import get

    target, here = get(device).arch, platform.machine().lower()
    here = "aarch64" if here == "arm64" else here
    if target != here:
        log(f"note: the figures are measured on this {here} machine, not on a {device}; INT8 "
            "arithmetic can differ there (x86 kernels may saturate int8 activations where "
            "arm64 ones do not), and latency is only indicative")


def _settings(config: QuantizeConfig) -> dict[str, Any]:
    """What produced the model: enough to redo it."""
    settings: dict[str, Any] = {"device": config.device}
    if config.exclude:
        settings["exclude"] = list(config.exclude)
    if config.method in ("static", "dynamic"):
        settings.update(per_channel=config.per_channel, reduce_range=config.reduce_range,
                        weight_type="int8")
    if config.method == "weight-only":
        settings.update(per_channel=config.per_channel, weight_type="int8")
    if config.method in ("dynamic", "weight-only"):
        settings["min_weights"] = config.min_weights
    if config.method == "static":
        settings.update(activation_type=config.activation_type, calibrate=config.calibrate,
                        calibration_size=config.calibration_size,
                        float_thin_conv=config.float_thin_conv)
    return settings


def _tidy_file(path: Path, int8_weights_of: Sequence[str] = ()) -> None:
    """Remove what the quantizer leaves that nothing reads (``tidy.py``), before evaluation, so
    the figures describe the file that is written.

    With ``int8_weights_of`` (layers the static recipe keeps in float32 for speed), their
    weights are stored in int8 all the same (``weight_only.py``): onnxruntime folds them back
    to float32 when the model loads, so the graph it runs is unchanged. The digits cnn's
    first convolution: 654 bytes less, 34.5% -> 33.8% of float32."""
    import onnx

    from .tidy import tidy

    model = onnx.load(str(path))
    if int8_weights_of:
        chosen = set(int8_weights_of)
        store_weights_int8(model, min_weights=MIN_WEIGHTS["weight-only"],
                           exclude=[n.name for n in model.graph.node if n.name not in chosen])
    tidy(model)
    onnx.save(model, str(path))


def runtime_requirements(path: Path, method: str,
                         float_first_conv: bool = False) -> list[Requirement]:
    """The onnxruntime releases the quantized file needs (``runtime/compat.py``): from its
    operators, and for a static model whose thin first convolution stays float32, the release
    from which onnxruntime keeps that convolution's pool in float (1.19: on 1.16-1.18 such
    files ran at 0.2x-0.4x float32's speed at batch 64, ``benchmarks/ort_versions.py``; with
    every convolution quantized, 1.18 and 1.19 ran the digits cnn alike), with the optimizers
    whose disabling gives the speed back on those releases (``runtime/compat.py``)."""
    from edge_infer.runtime.modelfile import read_model_info

    found = graph_requirements(read_model_info(path))
    if method == "static" and float_first_conv:
        found.append(Requirement("1.19", SPEED, "a float32 first convolution before INT8: "
                                 "0.2x-0.4x float32's speed at batch 64 on 1.16-1.18",
                                 disable=("ReluQuantRewrite",)))
    return found


def _write_metadata(src: Path, dst: Path, result: QuantizeResult) -> None:
    """The source's metadata (labels, preprocessing, provenance), what the quantizer kept, the
    report as ``edge_infer.quantization`` (with the onnxruntime release that measured it) and
    the releases the file needs as ``edge_infer.requires``: one load and one save of the
    quantized model.

    The report states the size of the file it is written into: the size is settled by
    serialising until it no longer changes, padding the report's JSON with spaces when a
    shorter number would otherwise make it oscillate."""
    import onnx

    from .convert import set_metadata

    source = onnx.load(str(src), load_external_data=False)
    model = onnx.load(str(dst))
    props = {p.key: p.value for p in source.metadata_props}
    props.update({p.key: p.value for p in model.metadata_props})
    if result.requires:
        props[KEY_REQUIRES] = to_prop(result.requires)
    size, pad = dst.stat().st_size, 0
    for _ in range(8):
        result.quantized.size_bytes = size
        report = result.report()
        report.pop("path")
        report.pop("layers", None)  # a diagnosis for the user, not something to ship
        report.pop("requires")  # edge_infer.requires, where the runtime reads it
        report["onnxruntime"] = _ort_version()
        props["edge_infer.quantization"] = json.dumps(report) + " " * pad
        set_metadata(model, props)
        data = model.SerializeToString()
        if len(data) == size:
            break
        if len(data) < size:
            pad += size - len(data)
        else:
            size, pad = len(data), 0
    with open(dst, "wb") as fh:
        fh.write(data)
