"""A synchronous data-parallel training loop for ``MultiWorkerMirroredStrategy``.

Keras 3's ``fit`` does not run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
"Attempt to convert a value (PerReplica...)"), so this loop does what ``fit`` would: each worker
reads its shard of every global batch, gradients are all-reduced by the Keras optimizer inside
``strategy.run``, and every worker ends each epoch with the same weights. Validation runs
locally on each worker (identical weights give identical figures), early stopping restores the
best weights, and the per-epoch history is written as ``fit``'s CSVLogger writes it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np


def distributed_fit(model: Any, optimizer: Any, loss_fn: Any, strategy: Any,
                    x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
                    epochs: int, batch_size: int, patience: int, seed: int,
                    accuracy: Callable[[np.ndarray, np.ndarray], float] | None,
                    history_csv: Path, log: Callable[[str], None]) -> dict[str, list[float]]:
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batch = min(batch_size, len(x))
    data = (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch, drop_remainder=True).with_options(options))
    distributed = strategy.experimental_distribute_dataset(data)

    @tf.function
    def train_step(inputs):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                per_sample = loss_fn(yb, model(xb, training=True))
                loss = tf.nn.compute_average_loss(per_sample, global_batch_size=batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        per_replica = strategy.run(replica, args=inputs)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    if accuracy is not None:
        history.update({"accuracy": [], "val_accuracy": []})
    best, best_weights, waited = np.inf, None, 0
    for epoch in range(epochs):
        losses = [float(train_step(b)) for b in distributed]
        train_pred = np.asarray(model(x, training=False))
        val_pred = np.asarray(model(x_val, training=False))
        val_loss = float(np.mean(np.asarray(loss_fn(y_val, val_pred))))
        history["loss"].append(float(np.mean(losses)))
        history["val_loss"].append(val_loss)
        if accuracy is not None:
            history["accuracy"].append(accuracy(train_pred, y))
            history["val_accuracy"].append(accuracy(val_pred, y_val))
        log(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v[-1]:.4f}"
                                                       for k, v in sorted(history.items())))
        if val_loss < best:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited > patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    with open(history_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        keys = sorted(history)
        writer.writerow(["epoch", *keys])
        for i in range(len(history["loss"])):
            writer.writerow([i, *(history[k][i] for k in keys)])
    return history
