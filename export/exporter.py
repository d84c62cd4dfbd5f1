"""``export()``: a Keras model or run folder to an ONNX file that provably computes the same.

Order of work: load the Keras model, convert it, write the metadata contract and provenance,
apply onnxruntime's basic offline optimisation (constant folding and redundant-node removal
only: standard ONNX ops, so TensorRT, OpenVINO and every other provider can still take the
graph) and the simplifications in :mod:`.simplify` (static flatten shapes, tf2onnx's one-channel
layout reshapes turned back into transposes, zero initial states of recurrent layers left out,
upsampling as one ``Resize``, embedding lookups without index wrapping, layer norms as one
operator), trace ``TimeDistributed`` layers as one call (:mod:`.time_distributed`) and fuse
masked recurrent layers with sequence lengths (:mod:`.masking`) where proved, name nodes and
tensors after the Keras layers and variables (:mod:`.names`), run ``onnx.checker``, then prove
parity on real samples, on every output. Only a model that passes is written, under a temporary
name renamed into place; a failure writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_infer.runtime.atomic import atomic_open
from edge_infer.runtime.metadata import ModelMetadata

from .attention import matmul_attention
from .convert import DEFAULT_OPSET, check_opset, input_name, keras_to_onnx, set_metadata
from .custom_code import custom_objects
from .errors import ConversionError, ParityError, SourceError
from .grouped_conv import plain_grouped_convolutions
from .masking import (PADDED_STEPS, add_sequence_lengths, masked_input, padding_probe,
                      unmasked_recurrence)
from .names import readable_names
from .parity import ParityReport, check_all, differences
from .simplify import simplify
from .text_input import text_front
from .time_distributed import folded_time_distributed

Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportConfig:
    source: Path
    out: Path | None = None
    opset: int = DEFAULT_OPSET
    tolerance: float = 1e-4
    samples: int = 256
    optimize: bool = True
    imports: tuple[str, ...] = ()  # modules or .py files defining custom layers
    dataset: str | None = None  # real samples for the parity proof, instead of the run's
    labels: tuple[str, ...] = ()  # class names in output order, for the metadata
    safe_mode: bool = True  # Keras' safe_mode: False runs the Python a Lambda layer holds

    def __post_init__(self) -> None:
        from edge_infer.runtime.errors import UsageError

        object.__setattr__(self, "source", Path(self.source))  # str from Python callers
        object.__setattr__(self, "out", None if self.out is None else Path(self.out))
        object.__setattr__(self, "imports", tuple(self.imports))
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(set(self.labels)) != len(self.labels):
            raise UsageError(f"labels must differ, found {', '.join(self.labels)}")
        if not self.tolerance > 0:
            raise UsageError(f"tolerance must be > 0, found {self.tolerance}")
        if self.samples < 1:
            raise UsageError(f"samples must be >= 1, found {self.samples}")


@dataclass
class ExportResult:
    path: Path
    parity: ParityReport
    size_bytes: int
    opset: int
    operators: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")  # Keras 3 still loads Keras 2's HDF5 models


def resolve_source(source: Path) -> tuple[Path, Path | None]:
    """The Keras file and, when there is one, its run folder (with model.json)."""
    if not source.exists():
        raise SourceError(f"{source} does not exist; expected a run folder from `edge-infer "
                          "train` or a .keras file")
    if source.is_dir():
        keras_file = source / "model.keras"
        if not keras_file.is_file():
            raise SourceError(f"{source} has no model.keras; expected a run folder from "
                              "`edge-infer train`")
        return keras_file, source
    if source.suffix not in KERAS_SUFFIXES:
        raise SourceError(f"{source} is not a .keras file (or a legacy .h5 one) or a run "
                          "folder")
    return source, source.parent if (source.parent / "model.json").is_file() else None


def weights_sha256(model: Any) -> str:
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from edge_infer.runtime.versions import installed_versions

    return {"framework": "keras", **installed_versions(
        "keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "edge-infer")}


def _samples(model: Any, run_dir: Path | None, info: dict[str, Any], count: int,
             log: Log) -> list[np.ndarray]:
    """Real inputs, one array per model input: the run's samples.npz, else the dataset's test
    split, else noise (the only choice for a bare multi-input model)."""
    if len(model.inputs) == 1:
        if run_dir is not None and (run_dir / "samples.npz").is_file():
            with np.load(run_dir / "samples.npz") as data:
                return [data["x"][:count]]
        spec = info.get("dataset_spec")
        if spec:
            try:
                from edge_infer.train.datasets import load_dataset

                return [load_dataset(spec, seed=info.get("seed", 0)).x_test[:count]]
            except Exception as exc:  # offline Keras sets, moved files: fall back, but say so
                log(f"warning: cannot load dataset {spec} for the parity check ({exc})")
    log("warning: no real samples found; checking parity on random inputs")
    return _noise(model, min(count, 64))


NOISE_SIZE = 32  # a dimension the model leaves open: long enough for convolutions and pooling
# to have something left, and for a recurrent layer's steps to matter


def _noise(model: Any, count: int) -> list[np.ndarray]:
    """Random inputs, one array per model input, of its dtype: uniform [0, 1) floats, or
    integers in [0, 10); ``NOISE_SIZE`` where a dimension is open."""
    rng = np.random.default_rng(0)
    arrays = []
    for inp in model.inputs:
        shape = (count, *[d if d is not None else NOISE_SIZE for d in inp.shape[1:]])
        if "int" in str(inp.dtype):
            arrays.append(rng.integers(0, 10, size=shape).astype(np.dtype(str(inp.dtype))))
        else:
            arrays.append(rng.random(shape, dtype=np.float32))
    return arrays


def _metadata(model: Any, info: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    props = dict(info.get("metadata", {}))
    source = _versions()
    if info.get("architecture"):
        source["architecture"] = info["architecture"]
    props["edge_infer.source"] = json.dumps(source)
    if info.get("dataset"):
        props["edge_infer.dataset"] = str(info["dataset"])
    tests = {k: v for k, v in metrics.items() if k.startswith("test_") and isinstance(v, float)}
    if tests:
        props["edge_infer.metrics"] = json.dumps(tests)
    props["edge_infer.weights_sha256"] = weights_sha256(model)
    return props


def _optimize(proto: Any) -> Any:
    """onnxruntime's basic offline optimisation, which keeps to standard ONNX operators."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), sess_options=so,
                             providers=["CPUExecutionProvider"])
        return onnx.load(so.optimized_model_filepath)


def _tidy(proto: Any) -> None:
    """Name the batch dimension ``batch`` and declare only the opsets the graph uses
    (onnxruntime's optimiser declares every domain it knows)."""
    from .tidy import declare_used_opsets

    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    declare_used_opsets(proto)


def _run_onnx(data: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed = {spec.name: x for spec, x in zip(session.get_inputs(), xs)}
    return session.run(None, feed)


def _keras_outputs(model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = model(xs[0] if len(xs) == 1 else xs, training=False)
    if isinstance(out, dict):  # a dict of outputs comes back in model.outputs order by name
        out = [out[name] for name in getattr(model, "output_names", sorted(out))]
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


# layers traced differently for export (each a context manager over the model that yields
# how many layers it rewrote), all undone when the converted graph differs from Keras
TRACE_REWRITES = {"TimeDistributed": folded_time_distributed,
                  "MultiHeadAttention": matmul_attention,
                  "grouped convolution": plain_grouped_convolutions}


def _convert(model: Any, config: ExportConfig, log: Log | None = None,
             rewrite_layers: bool = True) -> Any:
    """tf2onnx's graph, optimised and simplified unless ``config.optimize`` is off.
    ``TimeDistributed`` layers are traced as one call on batch x time
    (:mod:`.time_distributed`), attention as matmuls (:mod:`.attention`) and grouped
    convolutions without XLA (:mod:`.grouped_conv`) when the graph then matches Keras on random
    inputs, and ``rewrite_layers`` is on."""
    say = log or (lambda _msg: None)
    with contextlib.ExitStack() as stack:
        rewritten = {name: stack.enter_context(rewrite(model))
                     for name, rewrite in TRACE_REWRITES.items()} if rewrite_layers else {}
        proto = keras_to_onnx(model, opset=config.opset)
    if config.optimize:
        converted = len(proto.graph.node)
        proto = _optimize(proto)
        optimised = len(proto.graph.node)
        done = {name: n for name, n in simplify(proto).items() if n}
        say(f"graph: {converted} operators from tf2onnx, {optimised} after onnxruntime's basic "
            f"optimisation, {len(proto.graph.node)} after edge-infer's simplifications"
            + (f" ({', '.join(f'{name} {n}' for name, n in done.items())})" if done else ""))
    if any(rewritten.values()):
        noise = _noise(model, 8)
        diff = _largest_difference(_keras_outputs(model, noise),
                                   _run_onnx(proto.SerializeToString(), noise))
        if diff <= config.tolerance:
            return proto
        names = " and ".join(name for name, n in rewritten.items() if n)
        say(f"{names} layers are traced as Keras writes them: rewritten for export they differ "
            f"from Keras by {diff:.3g}")
        return _convert(model, config, log, rewrite_layers=False)
    return proto


def _symbolic(model: Any, source: Path) -> Any:
    """The model itself, or for a subclassed model (which has no symbolic inputs to trace) a
    functional model over it, on the input shape it was built with."""
    import keras

    try:
        if model.inputs:
            return model
    except AttributeError:
        pass
    shape = (model.get_build_config() or {}).get("input_shape")
    if not isinstance(shape, (list, tuple)) or not shape or \
            not all(d is None or isinstance(d, int) for d in shape):
        raise SourceError(f"{source} holds a subclassed model whose input shape Keras did not "
                          f"record (found {shape!r}): call it on one batch before saving, or "
                          "build it as a functional model; several inputs need a functional "
                          "model")
    inputs = keras.Input(tuple(shape[1:]), name="input")
    return keras.Model(inputs, model(inputs), name=model.name)


def _rename_input(proto: Any, old: str, new: str) -> None:
    from .names import rename_tensors

    for value in proto.graph.input:
        if value.name == old:
            value.name = new
    rename_tensors(proto.graph, {old: new})


def _name(proto: Any, model: Any) -> None:
    readable_names(proto, model.name, [layer.name for layer in model.layers],
                   {v.path: np.asarray(v.numpy()) for v in model.weights})


def _largest_difference(want: list[Any], got: list[Any]) -> float:
    """The largest absolute difference over every output; NaN where they do not line up."""
    if len(want) != len(got) or any(np.size(w) != np.size(g) for w, g in zip(want, got)):
        return float("nan")
    return max((float(np.max(differences(w, g), initial=0.0)) for w, g in zip(want, got)),
               default=0.0)


def _fused_masked(model: Any, config: ExportConfig, log: Log) -> Any | None:
    """For a model whose embedding masks its recurrent layers: the graph with fused
    ``LSTM``/``GRU`` and sequence lengths (:mod:`.masking`), once it matches the masked Keras
    model on rows padded every way; None otherwise (tf2onnx's loops are then kept). Per-step
    outputs are tried with both things Keras puts at a padded step."""
    import onnx

    masked = masked_input(model)
    if masked is None or not config.optimize:
        return None
    with unmasked_recurrence(model):
        traced = _convert(model, config, log)
    _name(traced, model)
    probe = padding_probe(masked)
    want = _keras_outputs(model, [probe])
    diff = float("nan")
    for padded_steps in PADDED_STEPS:
        proto = onnx.ModelProto()
        proto.CopyFrom(traced)
        fused, per_step = add_sequence_lengths(proto, masked, padded_steps)
        if not fused:
            log("masked recurrent layers stay tf2onnx loops (correct, slower): the graph is "
                "not one edge-infer can give sequence lengths")
            return None
        diff = _largest_difference(want, _run_onnx(proto.SerializeToString(), [probe]))
        if diff <= config.tolerance:
            log(f"masked recurrent layers: {fused} fused with sequence lengths (max |diff| "
                f"{diff:.3g} on {len(probe)} rows padded every way)")
            return proto
        if not per_step:
            break
    log(f"masked recurrent layers stay tf2onnx loops (correct, slower): with sequence "
        f"lengths they differ from Keras by {diff:.3g} on padded rows")
    return None


def export(config: ExportConfig, log: Log | None = None) -> ExportResult:
    log = log or (lambda _msg: None)
    check_opset(config.opset)
    keras_file, run_dir = resolve_source(Path(config.source))
    info: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    if run_dir is not None:
        info = json.loads((run_dir / "model.json").read_text()) \
            if (run_dir / "model.json").is_file() else {}
        metrics = json.loads((run_dir / "metrics.json").read_text()) \
            if (run_dir / "metrics.json").is_file() else {}
    out = Path(config.out) if config.out else keras_file.with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise SourceError(f"--out must end in .onnx, found {out.name}")

    import keras

    custom = custom_objects(config.imports)
    try:
        model = keras.models.load_model(keras_file, custom_objects=custom,
                                        safe_mode=config.safe_mode)
    except Exception as exc:
        hint = ("; if the model has custom layers, name the module or .py file that defines "
                "them with --import" if "Could not locate" in str(exc) and not custom else
                "; if you trust this file, --unsafe loads its Lambda layers' code"
                if "safe_mode=False" in str(exc) else "")
        raise SourceError(f"{keras_file} is not a loadable Keras model ({exc}){hint}") from None
    model = _symbolic(model, keras_file)
    log(f"converting {keras_file} with tf2onnx (opset {config.opset})")
    if config.labels and info.get("metadata", {}).get("edge_infer.labels"):
        log(f"labels: {', '.join(config.labels)} replace the run's")
    return _export_loaded(model, out, config, _with_labels(info, config.labels), metrics, log,
                          lambda: (_dataset_samples(model, config.dataset, config.samples)
                                   if config.dataset
                                   else _samples(model, run_dir, info, config.samples, log)))


def _with_labels(info: dict[str, Any], labels: Sequence[str], task: str | None = None
                 ) -> dict[str, Any]:
    """A run's model.json facts with the class names (and task) given for the export; as they
    were when none are (with none, parity guesses classifiers from the outputs' shape)."""
    if not labels and not task:
        return info
    task = task or "classification"
    meta = ModelMetadata(task=task, labels=tuple(labels) if labels else None).to_props()
    return {**info, "task": task, "metadata": {**info.get("metadata", {}), **meta}}


def _dataset_samples(model: Any, spec: str, count: int) -> list[np.ndarray]:
    """The first ``count`` test inputs of a dataset the user named: one array per input (an
    .npz of arrays named after the inputs, for several), read as the model's input says."""
    from edge_infer.runtime.errors import UsageError

    from .samples import dataset_for_input, named_arrays

    names = [input_name(inp) for inp in model.inputs]
    if len(names) > 1:
        if not spec.endswith(".npz"):
            raise UsageError(f"the model has {len(names)} inputs ({', '.join(names)}): "
                             "--dataset takes an .npz with one array per input, named after it")
        arrays = named_arrays(spec, names)
        return [arrays[n][:count] for n in names]
    inp = model.inputs[0]
    return [dataset_for_input(spec, tuple(inp.shape), np.dtype(str(inp.dtype))).x_test[:count]]


def export_keras(model: Any, out: Path | str, samples: Any = None, *,
                 labels: Sequence[str] | None = None, task: str | None = None,
                 opset: int = DEFAULT_OPSET, tolerance: float = 1e-4, optimize: bool = True,
                 log: Log | None = None) -> ExportResult:
    """Export a Keras model held in memory, as ``edge-infer export`` does a file: the same
    conversion, metadata and parity proof, nothing written when parity fails.

    ``samples``: real inputs to prove parity on (an array, a list in ``model.inputs`` order,
    or a dict by input name); random inputs when None, which proves less. ``labels`` (class
    names, in output order) and ``task`` go into the metadata the runtime reads.
    """
    log = log or (lambda _msg: None)
    check_opset(opset)
    out = Path(out)
    if out.suffix != ".onnx":
        raise SourceError(f"out must end in .onnx, found {out.name}")
    model = _symbolic(model, out)
    xs = None if samples is None else _as_inputs(model, samples)
    config = ExportConfig(source=out, out=out, opset=opset, tolerance=tolerance,
                          samples=max(1, len(xs[0])) if xs else 256, optimize=optimize,
                          labels=tuple(labels or ()))
    log(f"converting {model.name} with tf2onnx (opset {opset})")
    return _export_loaded(model, out, config, _with_labels({}, labels or (), task), {}, log,
                          lambda: xs or _noise_samples(model, config.samples, log))


def _as_inputs(model: Any, samples: Any) -> list[np.ndarray]:
    """One array per model input, from an array, a list or a dict by input name."""
    names = [input_name(inp) for inp in model.inputs]
    if isinstance(samples, dict):
        missing = [n for n in names if n not in samples]
        if missing:
            raise SourceError(f"samples have no array for input {', '.join(missing)}; "
                              f"expected {', '.join(names)}")
        arrays = [samples[n] for n in names]
    elif isinstance(samples, (list, tuple)):
        arrays = list(samples)
    else:
        arrays = [samples]
    if len(arrays) != len(names):
        raise SourceError(f"the model has {len(names)} inputs ({', '.join(names)}), "
                          f"samples give {len(arrays)} arrays")
    return [np.asarray(a) for a in arrays]


def _check_labels(labels: Sequence[str], first_output: np.ndarray) -> None:
    from edge_infer.runtime.errors import UsageError

    width = first_output.shape[-1] if first_output.ndim > 1 else 1
    classes = 2 if width == 1 else width  # one sigmoid unit: two classes
    if labels and len(labels) != classes:
        raise UsageError(f"{len(labels)} labels ({', '.join(labels)}) for a model whose first "
                         f"output has {classes} classes")


def _noise_samples(model: Any, count: int, log: Log) -> list[np.ndarray]:
    log("warning: no samples given; checking parity on random inputs")
    return _noise(model, min(count, 64))


def _export_loaded(model: Any, out: Path, config: ExportConfig, info: dict[str, Any],
                   metrics: dict[str, Any], log: Log,
                   samples: Callable[[], list[np.ndarray]]) -> ExportResult:
    """Convert, name, check and prove a loaded model, then write it atomically."""
    import onnx

    front = text_front(model)
    network = front.network if front is not None else model
    if front is not None:
        log(f"the model reads text with {len(front.preprocess.vocabulary)} words of vocabulary: "
            "exporting it from the token ids on, its tokenizer into the metadata")
    proto = _fused_masked(network, config, log)
    if proto is None:
        proto = _convert(network, config, log)
        _name(proto, network)
    _tidy(proto)
    props = _metadata(model, info, metrics)
    if front is not None:
        _rename_input(proto, input_name(network.inputs[0]), front.input_name)
        props = {**ModelMetadata(preprocess=front.preprocess).to_props(), **props}
    set_metadata(proto, props)
    proto.producer_name, proto.producer_version = "edge-infer", _versions().get("edge-infer", "")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the converted model fails onnx.checker: {exc}") from None

    if front is not None:  # the whole model on sentences, ONNX on the runtime's token ids
        strings, ids = front.probe()
        keras_outs, onnx_outs = (_keras_outputs(model, [strings]),
                                 _run_onnx(proto.SerializeToString(), [ids]))
    else:
        xs = samples()
        keras_outs = _keras_outputs(model, xs)
        onnx_outs = _run_onnx(proto.SerializeToString(), xs)
    if len(onnx_outs) != len(keras_outs):
        raise ConversionError(f"the ONNX model has {len(onnx_outs)} outputs, the Keras model "
                              f"{len(keras_outs)}")
    _check_labels(config.labels, keras_outs[0])
    classifiers = [info.get("task") == "classification" or (
        not info and out.ndim == 2 and out.shape[1] > 1) for out in keras_outs]
    parity = check_all(keras_outs, onnx_outs, tolerance=config.tolerance,
                       classifiers=classifiers)
    if not parity.passed:
        raise ParityError(f"ONNX and Keras disagree: {parity.summary()}; nothing was written")
    props["edge_infer.parity"] = json.dumps(parity.to_dict())
    set_metadata(proto, props)
    data = proto.SerializeToString()
    with atomic_open(out, "wb") as fh:
        fh.write(data)
    operators: dict[str, int] = {}
    for node in proto.graph.node:
        operators[node.op_type] = operators.get(node.op_type, 0) + 1
    return ExportResult(path=out, parity=parity, size_bytes=len(data), opset=config.opset,
                        operators=operators, metadata=props)
