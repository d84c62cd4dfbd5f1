"""``train()``: dataset, model, ``fit`` with callbacks, and the run folder.

The run folder is built under a hidden temporary name next to its destination and renamed into
place only when everything in it is written, so an interrupted or failed run leaves nothing
half-written behind.

Run folder::

    model.keras    the trained model (best validation weights)
    history.csv    per-epoch metrics (Keras CSVLogger)
    curves.png     loss and metrics per epoch, train against validation
    confusion.png  confusion matrix on the test split (classifiers)
    samples.png    generated images (gan) or reconstructions (autoencoders)
    samples.npz    up to 256 test inputs and labels (latent vectors for gan): parity checks
    metrics.json   test metrics, parameters, epochs, time, versions
    model.json     what export and the runtime need: task, labels, input/output, metadata
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_infer.runtime.atomic import atomic_folder, claim_folder, not_empty
from edge_infer.runtime.errors import UsageError
from edge_infer.runtime.metadata import ModelMetadata, OutputSpec
from edge_infer.runtime.predictions import predicted_classes

from .config import TrainConfig
from .datasets import Dataset, load_dataset
from .distribute import is_chief, make_strategy
from .models import Architecture, DataSpec, get

Log = Callable[[str], None]
OUTPUT_KINDS = {"probabilities": "probabilities", "probability": "sigmoid", "logits": "logits",
                "value": "values", "reconstruction": "image", "image": "image"}


@dataclass
class RunResult:
    """Where the run went and what it measured."""

    path: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    model: Any = None


def _versions() -> dict[str, str]:
    from edge_infer.runtime.versions import installed_versions

    return {"python": platform.python_version(),
            **installed_versions("edge-infer", "tensorflow", "keras", "numpy", "scikit-learn")}


def default_base(config: TrainConfig) -> Path:
    """``runs/ARCH-DATASET``: the run folder's name before numbering (``-2``, ``-3``...:
    :func:`~edge_infer.runtime.atomic.claim_folder` with ``number=True``)."""
    return Path("runs") / f"{config.architecture}-{Path(config.dataset).stem.replace(':', '-')}"


def _output_kind(model: Any) -> str:
    return OUTPUT_KINDS.get(model.layers[-1].name, "values")


def _loss(model: Any, arch: Architecture, dataset: Dataset, reduction: str = "sum_over_batch_size"):
    """The loss for this architecture and task, and the metrics ``fit`` reports."""
    import keras

    kind = _output_kind(model)
    if arch.mode == "autoencoder":
        return keras.losses.MeanSquaredError(reduction=reduction), []
    if dataset.task == "regression":
        return keras.losses.MeanSquaredError(reduction=reduction), ["mae"]
    if kind == "sigmoid":
        return keras.losses.BinaryCrossentropy(reduction=reduction), ["accuracy"]
    return keras.losses.SparseCategoricalCrossentropy(from_logits=kind == "logits",
                                                      reduction=reduction), ["accuracy"]


def _compile(model: Any, arch: Architecture, dataset: Dataset, lr: float) -> None:
    import keras

    loss, metrics = _loss(model, arch, dataset)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss, metrics=metrics)


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predicted_classes(pred) == y.reshape(-1).astype(np.int64)))


def _targets(arch: Architecture, dataset: Dataset, part: str, model: Any) -> np.ndarray:
    """What the model is fitted to: the inputs for autoencoders, float labels for a sigmoid."""
    x, y = getattr(dataset, f"x_{part}"), getattr(dataset, f"y_{part}")
    if arch.mode == "autoencoder":
        return x
    if _output_kind(model) == "sigmoid":
        return y.astype(np.float32)
    return y


def _metadata(arch: Architecture, dataset: Dataset, kind: str) -> ModelMetadata:
    task = {"autoencoder": "reconstruction", "gan": "generation"}.get(arch.mode, dataset.task)
    labels = dataset.labels if task == "classification" else None
    preprocess = None if arch.mode == "gan" else dataset.preprocess
    if kind == "image" and dataset.kind != "image":
        kind = "values"
    output = OutputSpec(kind=kind, scale=1 / 255, offset=0.0,
                        layout="NHWC" if kind == "image" else None)
    return ModelMetadata(task=task, labels=labels, preprocess=preprocess, output=output)


def _model_json(config: TrainConfig, arch: Architecture, dataset: Dataset, model: Any,
                meta: ModelMetadata) -> dict[str, Any]:
    inp, out = model.inputs[0], model.outputs[0]
    return {
        "format": 1,
        "architecture": arch.name,
        "dataset": dataset.name,
        "dataset_spec": config.dataset,
        "task": meta.task,
        "labels": list(dataset.labels) if meta.labels else None,
        "input": {"name": inp.name, "shape": list(inp.shape), "dtype": str(inp.dtype)},
        "output": {"name": model.layers[-1].name, "shape": list(out.shape),
                   "kind": meta.output.kind if meta.output else "values"},
        "preprocessing": arch.preprocessing,
        "metadata": meta.to_props(),
        "seed": config.seed,
    }


def _evaluate(arch: Architecture, dataset: Dataset, model: Any
              ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Test metrics, and the predicted classes for classifiers (for the confusion matrix)."""
    x, y = dataset.x_test, dataset.y_test
    if arch.mode == "gan" or not len(x):
        return {}, None
    pred = np.asarray(model.predict(x, verbose=0))
    if arch.mode == "autoencoder":
        return {"test_mse": float(np.mean((pred - x) ** 2))}, None
    if dataset.task == "regression":
        err = pred.reshape(len(y), -1) - y.reshape(len(y), -1)
        return {"test_mse": float(np.mean(err ** 2)),
                "test_mae": float(np.mean(np.abs(err)))}, None
    predicted = predicted_classes(pred)
    accuracy = float(np.mean(predicted == y.reshape(-1).astype(np.int64)))
    return {"test_accuracy": accuracy, "test_samples": int(len(y))}, predicted


def _write_plots(arch: Architecture, dataset: Dataset, model: Any, history: dict, metrics: dict,
                 predicted: np.ndarray | None, folder: Path, seed: int) -> None:
    from . import plots

    title = f"{arch.name} on {dataset.name}"
    if history:
        plots.training_curves(history, folder / "curves.png", title)
    if predicted is not None and dataset.labels:
        matrix = plots.confusion_matrix(dataset.y_test, predicted, len(dataset.labels))
        metrics["confusion_matrix"] = matrix.tolist()
        plots.confusion_plot(matrix, dataset.labels, folder / "confusion.png",
                             f"{title}: test accuracy {metrics['test_accuracy']:.4f}")
    if arch.mode == "gan":
        from .models.gan import LATENT

        z = np.random.default_rng(seed).normal(size=(32, LATENT)).astype(np.float32)
        plots.image_grid(np.asarray(model.predict(z, verbose=0)), folder / "samples.png",
                         f"{title}: generated samples")
    elif arch.mode == "autoencoder" and dataset.kind == "image":
        x = dataset.x_test[:16]
        rec = np.asarray(model.predict(x, verbose=0))
        plots.image_grid(np.concatenate([x, rec]), folder / "samples.png",
                         f"{title}: test images (top) and reconstructions (bottom)")


SAMPLES = 256


def _save_samples(arch: Architecture, dataset: Dataset, path: Path, seed: int) -> None:
    """Real test inputs (and labels) kept with the run: export proves parity on them."""
    if arch.mode == "gan":
        from .models.gan import LATENT

        x = np.random.default_rng(seed).normal(size=(64, LATENT)).astype(np.float32)
        np.savez(path, x=x)
        return
    np.savez(path, x=dataset.x_test[:SAMPLES], y=dataset.y_test[:SAMPLES])


def _fit(config: TrainConfig, arch: Architecture, dataset: Dataset, spec: DataSpec,
         folder: Path, log: Log) -> tuple[Any, dict[str, list[float]]]:
    import keras

    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model = arch.build(spec)
        if arch.mode == "gan":
            from .gan_training import make_gan
            from .models.gan import LATENT, discriminator

            trainer = make_gan(model, discriminator(spec), LATENT, config.seed)
            trainer.compile(
                d_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5))
        else:
            _compile(model, arch, dataset, config.learning_rate)
            trainer = model
    log(f"model: {arch.name}, {model.count_params():,} parameters; {dataset.summary()}")
    if config.strategy == "multi-worker":
        return model, _fit_multi_worker(config, arch, dataset, model, strategy, folder, log)
    callbacks: list[Any] = [keras.callbacks.CSVLogger(str(folder / "history.csv"))]
    fit_args: dict[str, Any] = {}
    if arch.mode == "gan":
        x = np.concatenate([dataset.x_train, dataset.x_val])
        y = None
    else:
        x, y = dataset.x_train, _targets(arch, dataset, "train", model)
        fit_args["validation_data"] = (dataset.x_val, _targets(arch, dataset, "val", model))
        callbacks += [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                          restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(str(folder / "checkpoint.keras"),
                                            monitor="val_loss", save_best_only=True),
        ]
    history = trainer.fit(x, y, epochs=config.epochs, batch_size=config.batch_size,
                          callbacks=callbacks, verbose=config.verbose, shuffle=True, **fit_args)
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _fit_multi_worker(config: TrainConfig, arch: Architecture, dataset: Dataset, model: Any,
                      strategy: Any, folder: Path, log: Log) -> dict[str, list[float]]:
    import keras

    from .distributed_loop import distributed_fit

    loss, metrics = _loss(model, arch, dataset, reduction="none")
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        optimizer.build(model.trainable_variables)
    log(f"multi-worker: {strategy.num_replicas_in_sync} replicas in sync")
    return distributed_fit(
        model, optimizer, loss, strategy, dataset.x_train, _targets(arch, dataset, "train", model),
        dataset.x_val, _targets(arch, dataset, "val", model), epochs=config.epochs,
        batch_size=config.batch_size, patience=config.patience, seed=config.seed,
        accuracy=_accuracy if "accuracy" in metrics else None,
        history_csv=folder / "history.csv", log=log)


def train(config: TrainConfig, log: Log | None = None) -> RunResult:
    """Train ``config.architecture`` on ``config.dataset`` and write the run folder."""
    log = log or (lambda _msg: None)
    arch = get(config.architecture)  # unknown names fail before anything heavy
    config = replace(config, epochs=config.epochs or arch.epochs,
                     learning_rate=config.learning_rate or arch.learning_rate)
    if arch.mode == "gan" and config.strategy == "multi-worker":
        raise UsageError("gan trains with its own adversarial loop and does not support "
                         "--strategy multi-worker; use default or mirrored")
    if config.out is not None and not_empty(config.out):  # before the data loads; the
        raise UsageError(f"output folder {config.out} exists and is not empty; choose another "
                         "--out")  # claim_folder below checks again when it holds the name
    dataset = load_dataset(config.dataset, seed=config.seed)
    spec = DataSpec(dataset.input_shape, dataset.num_classes, dataset.kind, dataset.task,
                    dataset.vocab_size)
    arch.check(spec, dataset.name)

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    chief = is_chief(config.strategy)
    # The chief holds the run folder's name while it builds it; workers other than the chief
    # build their copy in the temp folder and never publish it.
    base = Path(config.out) if config.out is not None else default_base(config)
    hold = claim_folder(base, number=config.out is None) if chief else nullcontext(base)
    with hold as out, atomic_folder(out, publish=chief,
                                    parent=None if chief else tempfile.gettempdir()) as folder:
        started = time.perf_counter()
        model, history = _fit(config, arch, dataset, spec, folder, log)
        elapsed = time.perf_counter() - started
        metrics, predicted = _evaluate(arch, dataset, model)
        _write_plots(arch, dataset, model, history, metrics, predicted, folder, config.seed)
        kind = _output_kind(model)
        meta = _metadata(arch, dataset, kind)
        val_losses = history.get("val_loss", [])
        metrics.update({
            "architecture": arch.name, "dataset": dataset.name, "task": meta.task,
            "parameters": int(model.count_params()),
            "epochs_run": len(next(iter(history.values()), [])),
            "best_epoch": int(np.argmin(val_losses)) + 1 if val_losses else None,
            "train_seconds": round(elapsed, 2), "batch_size": config.batch_size,
            "max_epochs": config.epochs, "learning_rate": config.learning_rate,
            "seed": config.seed, "strategy": config.strategy,
            "samples": {"train": len(dataset.x_train), "val": len(dataset.x_val),
                        "test": len(dataset.x_test)},
            "versions": _versions(),
        })
        model.save(str(folder / "model.keras"))
        _save_samples(arch, dataset, folder / "samples.npz", config.seed)
        (folder / "checkpoint.keras").unlink(missing_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (folder / "model.json").write_text(
            json.dumps(_model_json(config, arch, dataset, model, meta), indent=2) + "\n")
    return RunResult(out, metrics, history, model)


def require_training_stack(what: str = "edge-infer train") -> None:
    """Fail with the extra to install when TensorFlow is missing."""
    from edge_infer.runtime.errors import ExtraMissingError

    ExtraMissingError.require(what, "train", "tensorflow", "keras", "sklearn")


__all__ = ["RunResult", "TrainConfig", "require_training_stack", "train"]
