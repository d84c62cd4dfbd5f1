"""``edge-infer export MODEL_OR_RUN_DIR``: Keras to ONNX with a parity proof."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edge_infer.runtime.cli import debug_option


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
@debug_option
def export(source: Path, out: Path | None, opset: int, tolerance: float, samples: int,
           no_optimize: bool) -> None:
    """Convert a trained Keras model (a run folder from `edge-infer train`, or a .keras
    file) to ONNX, prove it computes the same on real samples, and write it with the
    metadata the runtime reads. Nothing is written when parity fails.

    \b
    Examples:
      edge-infer export runs/cnn-digits
      edge-infer export model.keras --out cnn.onnx --opset 13
    """
    from edge_infer.train.trainer import require_training_stack

    from .exporter import ExportConfig

    config = ExportConfig(source=source, out=out, opset=opset, tolerance=tolerance,
                          samples=samples, optimize=not no_optimize)
    require_training_stack()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .exporter import export as run_export

    result = run_export(config, log=lambda m: click.echo(m, err=True))
    click.echo(f"{result.path}: {result.size_bytes / 1024:.1f} KiB, opset {result.opset}, "
               f"{sum(result.operators.values())} nodes; parity {result.parity.summary()}")
    click.echo(f"run it: edge-infer run {result.path} INPUT")
