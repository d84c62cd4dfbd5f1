"""``edge-infer export MODEL_OR_RUN_DIR``: Keras to ONNX with a parity proof."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edge_infer.runtime.cli import debug_option
from edge_infer.train.tf_logging import quiet_tensorflow

from .quantize import METHODS


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(path_type=Path), metavar="MODEL_OR_RUN_DIR")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The .onnx file (default: model.onnx beside model.keras).")
@click.option("--opset", type=int, default=17, show_default=True,
              help="ONNX opset, 13 to the newest tf2onnx supports.")
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Largest absolute difference from Keras allowed on the parity samples.")
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Real samples (the run's samples.npz) to prove parity on.")
@click.option("--no-optimize", is_flag=True,
              help="Skip onnxruntime's basic offline graph optimisation.")
@click.option("-d", "--dataset", default=None, metavar="SPEC",
              help="Real samples to prove parity on (default: the run's): a dataset name, "
                   "an .npz or a folder of images; an .npz with one array per input for "
                   "several.")
@click.option("--labels", default=None, metavar="NAMES",
              help="Class names in output order, comma-separated, for the metadata (what "
                   "`edge-infer run` prints).")
@click.option("--unsafe", is_flag=True,
              help="Load Lambda layers' Python code (Keras' safe_mode off): only for files "
                   "you trust.")
@click.option("--import", "imports", multiple=True, metavar="MODULE_OR_FILE",
              help="A module or .py file that defines the model's custom layers or model "
                   "class, imported before loading; repeatable.")
@debug_option
def export(source: Path, out: Path | None, opset: int, tolerance: float, samples: int,
           no_optimize: bool, dataset: str | None, labels: str | None, unsafe: bool,
           imports: tuple[str, ...]) -> None:
    """Convert a trained Keras model (a run folder from `edge-infer train`, a .keras
    file, or a legacy Keras 2 .h5 file) to ONNX, prove it computes the same on real samples,
    and write it with the metadata the runtime reads. Nothing is written when parity fails.

    \b
    Examples:
      edge-infer export runs/cnn-digits
      edge-infer export model.keras --out cnn.onnx --opset 13
      edge-infer export model.keras --import my_layers.py
      edge-infer export model.keras --dataset data.npz --labels cat,dog,bird
    """
    from edge_infer.train.trainer import require_training_stack

    from .exporter import ExportConfig

    config = ExportConfig(source=source, out=out, opset=opset, tolerance=tolerance,
                          samples=samples, optimize=not no_optimize, imports=imports,
                          dataset=dataset, safe_mode=not unsafe,
                          labels=tuple(n.strip() for n in labels.split(",")) if labels else ())
    require_training_stack("edge-infer export")
    quiet_tensorflow(load=True)
    from .exporter import export as run_export
    from .report import kib

    result = run_export(config, log=lambda m: click.echo(m, err=True))
    click.echo(f"{result.path}: {kib(result.size_bytes)}, opset {result.opset}, "
               f"{sum(result.operators.values())} nodes; parity {result.parity.summary()}")
    click.echo(f"run it: edge-infer run {result.path} INPUT")


def quantize_table(r) -> str:  # noqa: ANN001 - a QuantizeResult
    from .report import accuracy_change, kib

    o, q = r.original, r.quantized
    rows = [("", "float32", f"{r.method}")]
    if o.value is not None:
        drop = r.drop_points
        rows.append((o.metric, f"{o.value:.4f}", f"{q.value:.4f}"
                     + (f"  ({accuracy_change(drop)})" if drop is not None else "")))
    if r.agreement is not None:
        rows.append(("top-1 agreement", "", f"{r.agreement:.2%}"))
    rows.append(("max |diff|", "", f"{r.max_abs_diff:.3g}"))
    rows.append(("size", kib(o.size_bytes),
                 f"{kib(q.size_bytes)}  ({q.size_bytes / o.size_bytes:.0%})"))
    rows.append(("latency, batch 1", f"{o.latency_ms:.3f} ms",
                 f"{q.latency_ms:.3f} ms  ({o.latency_ms / q.latency_ms:.2f}x)"))
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    table = "\n".join(f"{a.ljust(w0)}  {b.ljust(w1)}  {c}".rstrip() for a, b, c in rows)
    if r.layers:
        from .sensitivity import worst_jump

        worst = worst_jump(r.layers)
        width = max(len(e.layer) for e in r.layers)
        lines = ["", "", "output error per layer (accumulated; relative to float32, and as SQNR):"]
        for e in r.layers:
            mark = "  <- largest jump" if worst is not None and e.layer == worst.layer else ""
            sqnr = "inf" if e.relative_error == 0 else f"{e.sqnr_db:.1f}"
            lines.append(f"  {e.layer.ljust(width)}  {e.relative_error:7.2%}  {sqnr:>6} dB{mark}")
        table += "\n".join(lines)
    return table


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path), metavar="MODEL")
@click.option("-m", "--method", type=click.Choice(METHODS),
              default="auto", show_default=True,
              help="auto: the device's recipe: static INT8 (CPUs) or fp16 (GPUs) for "
                   "convolutional models, weight-only INT8 (CPUs) otherwise. weight-only: "
                   "int8 weights dequantized when the model loads, float32 compute.")
@click.option("-d", "--dataset", default=None, metavar="SPEC",
              help="Calibration and evaluation data (default: the run's dataset); for a "
                   "model with several inputs an .npz with one array per input, and y.")
@click.option("--calibration-size", type=click.IntRange(min=1), default=256,
              show_default=True)
@click.option("--per-channel/--per-tensor", default=None,
              help="Weight scales per output channel or one per tensor (default: per-channel "
                   "for static and weight-only, per-tensor for dynamic).")
@click.option("--calibrate", type=click.Choice(["minmax", "entropy", "percentile"]),
              default="minmax", show_default=True)
@click.option("--device", default="host", show_default=True, metavar="PROFILE",
              help="Target device profile (see `edge-infer devices`): sets the INT8 types "
                   "and what auto picks.")
@click.option("--activation-type", type=click.Choice(["uint8", "int8"]), default=None,
              help="Static INT8 activations (default: the device's).")
@click.option("--reduce-range/--full-range", default=None,
              help="7-bit weights, for x86 CPUs without VNNI (default: the device's).")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              metavar="POINTS", help="Refuse (write nothing) past this accuracy loss.")
@click.option("-x", "--exclude", multiple=True, metavar="LAYER",
              help="Keep this Keras layer (or node) in float; repeatable.")
@click.option("--per-layer", is_flag=True,
              help="Also report each layer's output error against float32.")
@click.option("--auto-exclude", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="When the accuracy guard refuses, keep the layer where the "
                                "error jumps in float and retry, up to N layers.")
@click.option("--min-weights", type=click.IntRange(min=0), default=None, metavar="N",
              help="Keep layers with fewer weights in float (0: none). dynamic: 1024, as "
                   "TFLite does: INT8 saves less there than its operators cost; weight-only: "
                   "128, where int8 saves what its two constant operators weigh.")
@click.option("--float-thin-conv", type=click.IntRange(min=0), default=4, show_default=True,
              metavar="N", help="static: keep convolutions reading at most N channels (an "
                                "image model's first) on images of at most 32x32 pixels out "
                                "in float32, where onnxruntime's INT8 convolution is several "
                                "times slower (0: quantize them).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Default: MODEL.int8.onnx or MODEL.fp16.onnx.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@debug_option
def quantize(model: Path, method: str, dataset: str | None, calibration_size: int,
             per_channel: bool | None, calibrate: str, device: str, activation_type: str | None,
             reduce_range: bool | None, max_accuracy_drop: float, exclude: tuple[str, ...],
             per_layer: bool, auto_exclude: int, min_weights: int | None, float_thin_conv: int,
             out: Path | None, fmt: str) -> None:
    """Quantize MODEL to INT8 or FP16, evaluate both side by side, and write the result
    only if accuracy holds.

    \b
    Examples:
      edge-infer quantize runs/cnn/model.onnx
      edge-infer quantize runs/lstm/model.onnx --method dynamic --format json
      edge-infer quantize runs/gan/model.onnx --method weight-only
      edge-infer quantize runs/cnn/model.onnx --device rpi5
      edge-infer quantize runs/cnn/model.onnx --method static --exclude conv2d
    """
    from .quantize import QuantizeConfig

    config = QuantizeConfig(model=model, method=method, dataset=dataset,
                            calibration_size=calibration_size, per_channel=per_channel,
                            calibrate=calibrate, device=device,
                            activation_type=activation_type, reduce_range=reduce_range,
                            max_accuracy_drop=max_accuracy_drop, out=out, exclude=exclude,
                            per_layer=per_layer, auto_exclude=auto_exclude,
                            min_weights=min_weights, float_thin_conv=float_thin_conv)
    from edge_infer.runtime.errors import ExtraMissingError

    ExtraMissingError.require("edge-infer quantize", "train", "onnx", "sympy")
    quiet_tensorflow()
    from .quantize import quantize as run_quantize

    result = run_quantize(config, log=lambda m: click.echo(m, err=True))
    if result.not_smaller:
        from .report import NOT_SMALLER

        click.echo(f"note: {result.path.name} is {result.report()['size_ratio']:.0%} of "
                   f"{model.name}'s size: {NOT_SMALLER}; keep the float32 model unless the "
                   "target needs INT8", err=True)
    if fmt == "json":
        import json

        click.echo(json.dumps(result.report(), indent=2))
        return
    click.echo(quantize_table(result))
    click.echo(f"wrote {result.path}\nrun it: edge-infer run {result.path} INPUT")
    _note_slower(model, result)


def _note_slower(model: Path, result: Any) -> None:
    """When the quantized model ran slower than float32 here, the command that shows where
    (INT8 on a CPU without VNNI, or a float island with layout changes around it)."""
    from .quantize import computes_in_float32
    from .report import FASTER_MARGIN

    o, q = result.original.latency_ms, result.quantized.latency_ms
    if computes_in_float32(result.method):
        return  # it runs the float32 graph once loaded: a difference is the timing's noise
    if o and q and o < q * (1 - FASTER_MARGIN):
        click.echo(f"note: {result.path.name} ran slower than {model.name} at batch 1 here "
                   f"({o / q:.2f}x); `edge-infer bench {model} {result.path} -b 1 -b 64 "
                   "--profile` shows where the time goes", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(path_type=Path), metavar="MODEL")
@click.option("-d", "--dataset", default=None, metavar="SPEC",
              help="Evaluation data (default: the run's dataset, or its samples.npz).")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the confusion matrix (classifiers) as a PNG, or as the "
                   "format the name's suffix gives (.pdf, .svg).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@debug_option
def evaluate(model: Path, dataset: str | None, batch_size: int, plot: Path | None,
             fmt: str) -> None:
    """Run MODEL over a dataset through the runtime: accuracy, per-class precision and
    recall, confusion matrix (or MSE for regressors and autoencoders), throughput."""
    quiet_tensorflow()
    from edge_infer.runtime.figures import figure_format
    from edge_infer.train.plots import confusion_plot

    from .evaluate import evaluate as run_evaluate, table

    if plot is not None:
        figure_format(plot)  # a name matplotlib cannot write fails before the evaluation
    result = run_evaluate(model, dataset, batch_size, log=lambda m: click.echo(m, err=True))
    if plot is not None and "confusion_matrix" in result:
        import numpy as np

        confusion_plot(np.array(result["confusion_matrix"]),
                       [c["label"] for c in result["per_class"]], plot,
                       f"{model.name}: accuracy {result['accuracy']:.4f}")
    elif plot is not None:
        click.echo(f"note: --plot draws a confusion matrix, and {model.name} is not a "
                   f"classifier ({result['task']}); {plot} was not written", err=True)
    if fmt == "json":
        import json

        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(table(result))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("architecture", metavar="ARCH")
@click.option("-d", "--dataset", default=None, metavar="SPEC",
              help="A dataset name, keras:NAME, or a path (.npz, .csv/.tsv, image folder). "
                   "Default: the architecture's embedded set, which needs no download: "
                   "digits; waves for lstm/gru; sine for regressor.")
@click.option("--device", default="host", show_default=True, metavar="PROFILE",
              help="Target device profile (see `edge-infer devices`): picks the recipe.")
@click.option("-m", "--method", type=click.Choice(METHODS),
              default="auto", show_default=True, help="Quantization recipe.")
@click.option("-e", "--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (default: the architecture's; early stopping ends sooner).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              metavar="POINTS", help="Past this loss the quantized model is refused and the "
                                     "float32 one is the result.")
@click.option("-x", "--exclude", multiple=True, metavar="LAYER",
              help="Keep this Keras layer in float when quantizing; repeatable.")
@click.option("--auto-exclude", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N", help="When the accuracy guard refuses, keep the layer where the "
                                "error jumps in float and retry, up to N layers.")
@click.option("--bench-runs", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed runs per model and batch size.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder (default: runs/ARCH-DATASET, numbered if it exists).")
@click.option("-q", "--quiet", is_flag=True, help="No training progress bar.")
@debug_option
def pipeline(architecture: str, dataset: str | None, device: str, method: str, epochs: int | None,
             seed: int, max_accuracy_drop: float, exclude: tuple[str, ...], auto_exclude: int,
             bench_runs: int, out: Path | None, quiet: bool) -> None:
    """Train ARCH, export it to ONNX with a parity proof, quantize it for the device,
    evaluate and benchmark both models, and write report.md and report.json.

    \b
    Examples:
      edge-infer pipeline cnn                      # digits, offline, a few minutes
      edge-infer pipeline lstm                     # waves, offline
      edge-infer pipeline cnn --device rpi5 --out runs/cnn-pi
    """
    from edge_infer.train.config import progress_verbosity

    from .pipeline import PipelineConfig

    config = PipelineConfig(architecture=architecture, dataset=dataset, device=device, out=out,
                            epochs=epochs, seed=seed, method=method,
                            max_accuracy_drop=max_accuracy_drop, exclude=exclude,
                            auto_exclude=auto_exclude, bench_runs=bench_runs,
                            verbose=progress_verbosity(quiet))
    from edge_infer.runtime.errors import ExtraMissingError

    ExtraMissingError.require("edge-infer pipeline", "train", "tensorflow", "tf2onnx", "onnx",
                              "sympy", "matplotlib")
    quiet_tensorflow(load=True)
    from .pipeline import pipeline as run_pipeline

    import contextlib
    import sys

    # Progress (Keras writes its epoch lines to stdout) goes to stderr; stdout keeps the result.
    with contextlib.redirect_stdout(sys.stderr):
        result = run_pipeline(config, log=lambda m: click.echo(m, err=True))
    click.echo(f"report: {result.path / 'report.md'} (and report.json)")
    click.echo(f"run it: {result.run_command()}")
    faster = result.faster_line()
    if faster is not None:
        click.echo(f"faster on this machine: {faster}")
