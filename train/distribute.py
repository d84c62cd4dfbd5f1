"""``tf.distribute`` strategies for users who outgrow one process.

``mirrored`` replicates over this machine's devices; ``multi-worker`` reads the cluster from
``TF_CONFIG`` (the standard ``{"cluster": {"worker": [...]}, "task": {...}}``). Only the chief
(worker 0, or the task of type ``chief``) writes the run folder; other workers write to a
temporary folder that is thrown away, as Keras' multi-worker guide does.
"""

from __future__ import annotations

import json
import os
from typing import Any

from edge_infer.runtime.errors import UsageError


def tf_config() -> dict[str, Any] | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON ({exc})") from None
    if "cluster" not in config or "task" not in config:
        raise UsageError("TF_CONFIG needs 'cluster' and 'task' keys, found "
                         f"{', '.join(config) or 'none'}")
    return config


def is_chief(strategy_name: str) -> bool:
    if strategy_name != "multi-worker":
        return True
    config = tf_config() or {}
    task = config.get("task", {})
    if task.get("type") == "chief":
        return True
    has_chief = "chief" in config.get("cluster", {})
    return not has_chief and task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if tf_config() is None:
        raise UsageError("--strategy multi-worker reads the cluster from TF_CONFIG, which is not "
                         'set; e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
                         '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\'')
    return tf.distribute.MultiWorkerMirroredStrategy()
