"""``edge-infer train ARCH --dataset SPEC``: train a zoo model and write a run folder.

This module imports only click; TensorFlow loads inside the command, after the arguments are
checked, with its start-up chatter turned down (``TF_CPP_MIN_LOG_LEVEL``) for this process only.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge_infer.runtime.cli import debug_option
from edge_infer.train.tf_logging import quiet_tensorflow
from edge_infer.runtime.errors import UsageError


def _listing() -> str:
    from .datasets import DATASETS, KERAS_DATASETS
    from .models import ARCHITECTURES

    lines = ["architectures:"]
    width = max(len(n) for n in ARCHITECTURES)
    lines += [f"  {a.name.ljust(width)}  {a.description} [{', '.join(a.kinds)}; "
              f"default data: {a.dataset}]" for a in ARCHITECTURES.values()]
    lines.append("datasets:")
    names = [*DATASETS, *(f"keras:{k}" for k in KERAS_DATASETS)]
    width = max(len(n) for n in names)
    lines += [f"  {d.name.ljust(width)}  {d.description}" for d in DATASETS.values()]
    lines += [f"  {('keras:' + k).ljust(width)}  {v} (download)" for k, v in KERAS_DATASETS.items()]
    lines.append("  PATH.npz / PATH.csv / FOLDER/  your own data: arrays x_train, y_train; "
                 "label,text rows; or one sub-folder of images per class")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("architecture", required=False, metavar="ARCH")
@click.option("-d", "--dataset", default=None, metavar="SPEC",
              help="A dataset name, keras:NAME, or a path (.npz, .csv/.tsv, image folder). "
                   "Default: the architecture's embedded set, which needs no download: "
                   "digits; waves for lstm/gru; sine for regressor.")
@click.option("-e", "--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (default: the architecture's: 60; lstm/gru 150; gan 300). "
                   "Early stopping usually ends sooner.")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the weights and TensorFlow (runs are reproducible).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/ARCH-DATASET, numbered if it exists).")
@click.option("--patience", type=click.IntRange(min=0), default=10, show_default=True,
              help="Epochs without a better validation loss before stopping.")
@click.option("--learning-rate", type=float, default=None,
              help="Adam's learning rate (default: the architecture's: 1e-3; lstm/gru 3e-3; "
                   "gan 2e-4).")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multi-worker"]),
              default="default", show_default=True,
              help="tf.distribute strategy; multi-worker reads the cluster from TF_CONFIG.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--list", "show_list", is_flag=True, help="List architectures and datasets.")
@debug_option
def train(architecture: str | None, dataset: str | None, epochs: int | None, batch_size: int,
          seed: int, out: Path | None, patience: int, learning_rate: float | None, strategy: str,
          quiet: bool, show_list: bool) -> None:
    """Train ARCH on a dataset and write a run folder: model.keras, history.csv,
    curves.png, confusion.png, metrics.json, model.json.

    \b
    Examples:
      edge-infer train cnn                          # digits, offline
      edge-infer train mlp --dataset moons
      edge-infer train lstm --dataset messages.csv  # label,text rows
      edge-infer train cnn --dataset keras:mnist    # downloads when online
      edge-infer train --list
    """
    if show_list:
        click.echo(_listing())
        return
    if architecture is None:
        raise UsageError("missing ARCH; see `edge-infer train --list` for the architectures")
    from .config import TrainConfig, progress_verbosity
    from .models import get

    get(architecture)  # unknown names are refused before TensorFlow loads
    config = TrainConfig(architecture=architecture, dataset=dataset, epochs=epochs,
                         batch_size=batch_size, seed=seed, out=out, patience=patience,
                         learning_rate=learning_rate, strategy=strategy,
                         verbose=progress_verbosity(quiet))
    from .trainer import require_training_stack

    require_training_stack()
    quiet_tensorflow(load=True)
    from .trainer import train as run_training

    def log(message: str) -> None:
        click.echo(message, err=True)

    log(f"training {architecture} on {config.dataset} (seed {seed})")
    import contextlib
    import sys

    # Keras writes its progress to stdout; it goes to stderr so stdout carries the result line.
    with contextlib.redirect_stdout(sys.stderr):
        result = run_training(config, log=log)
    m = result.metrics
    figures = ", ".join(f"{k.removeprefix('test_')} {v:.4f}" for k, v in m.items()
                        if k.startswith("test_") and isinstance(v, float))
    click.echo(f"{result.path}: {m['epochs_run']} epochs in {m['train_seconds']:.1f} s"
               + (f", test {figures}" if figures else ""))
