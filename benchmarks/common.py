"""Helpers the benchmark scripts share: training a zoo model, TensorFlow Lite conversion, and
timing Keras, edge-infer and LiteRT the same way.

Functions marked "TensorFlow process" import TensorFlow; the others must stay importable and
runnable in a child process that never does (its thread pools distort onnxruntime timings).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

BATCHES = (1, 64)


def median_ms(fn: Callable[[], Any], runs: int, warmup: int | None = None,
              budget_s: float | None = None, warmup_s: float = 0.2) -> float:
    """Median wall time of ``fn`` in ms over ``runs`` calls (fewer, but at least 5, when
    ``budget_s`` runs out: slow paths such as Keras' eager call get a time budget).

    The warm-up lasts ``warmup`` calls and at least ``warmup_s`` seconds: a count alone is a
    millisecond for a 30 us model. With 30 warm-up calls, the first model timed in a process
    on a 2-core pin of a 16-core Xeon read 0.090 ms, and the same model 0.031 ms when timed
    again later in that process.
    """
    started = time.perf_counter()
    for _ in range(max(5, runs // 10) if warmup is None else warmup):
        fn()
    while time.perf_counter() - started < warmup_s:
        fn()
    t = []
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    for i in range(runs):
        start = time.perf_counter()
        fn()
        t.append(time.perf_counter() - start)
        if deadline is not None and i >= 4 and start > deadline:
            break
    return float(np.median(t) * 1000)


def quality(out: np.ndarray, x: np.ndarray, y: np.ndarray | None, task: str) -> dict[str, float]:
    """Accuracy for classifiers, reconstruction MSE for autoencoders."""
    from edge_infer.runtime.predictions import predicted_classes

    if task == "classification" and y is not None:
        return {"accuracy": float(np.mean(predicted_classes(out) == y.reshape(-1)))}
    return {"mse": float(np.mean((out.reshape(x.shape).astype(np.float64) - x) ** 2))}


# -- a benchmark in two halves: prepared here, measured on a target -------------------------------

def add_split_arguments(parser: Any) -> None:
    """``--prepare DIR`` (the TensorFlow side, here) and ``--measure DIR`` (the timing, on a
    machine that needs only the runtime): two halves, so argparse refuses both at once."""
    halves = parser.add_mutually_exclusive_group()
    halves.add_argument("--prepare", type=Path, metavar="DIR",
                        help="only the TensorFlow side: write the models to DIR")
    halves.add_argument("--measure", type=Path, metavar="DIR",
                        help="only time a --prepare folder, here (no TensorFlow needed)")


def read_prepared(root: Path, name: str) -> dict[str, Any]:
    """The description ``--prepare`` wrote into ``root``; exits saying what was expected."""
    if not (root / name).is_file():
        raise SystemExit(f"{root}: expected a folder made by --prepare (with {name}), "
                         "found none")
    return json.loads((root / name).read_text())


# -- TensorFlow process -------------------------------------------------------------------------

def load_tensorflow() -> None:
    """Import TensorFlow without the start-up lines absl prints before any log level applies
    (what ``edge-infer train`` does); a no-op once it is loaded.

    Also drops TensorFlow's "triggered tf.function retracing" warning: a benchmark trains and
    evaluates several models in one process, each with functions of its own, which is what
    the warning counts (the CLI trains one model per process and never sees it)."""
    from edge_infer.train.tf_logging import quiet_tensorflow

    quiet_tensorflow(load=True)
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NotRetracing) for f in tf_logger.filters):
        tf_logger.addFilter(_NotRetracing())


class _NotRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def train_run(arch: str, dataset: str | None, out: Path, epochs: int | None) -> Path:
    load_tensorflow()
    from edge_infer.train.config import TrainConfig
    from edge_infer.train.trainer import train

    return train(TrainConfig(arch, dataset, epochs=epochs, out=out, verbose=0)).path


def tflite_models(run: Path, x_cal: np.ndarray) -> tuple[dict[str, str], dict[str, str]]:
    """FP32, dynamic-range INT8 and full INT8 (representative dataset) TFLite files from a
    SavedModel export (``from_concrete_functions`` dropped Keras 3 weights here). Returns the
    files and, per variant that failed, the converter's reason."""
    load_tensorflow()
    import keras
    import tensorflow as tf

    model = keras.models.load_model(run / "model.keras")
    saved = run / "saved_model"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    variants: dict[str, Callable[[Any], None]] = {
        "tflite-fp32": lambda c: None,
        "tflite-dynamic": lambda c: setattr(c, "optimizations", [tf.lite.Optimize.DEFAULT]),
    }

    def full_int8(c: Any) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([x_cal[i:i + 1]] for i in range(len(x_cal)))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    variants["tflite-int8"] = full_int8
    files, errors = {}, {}
    for name, configure in variants.items():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        configure(converter)
        try:
            data = converter.convert()
        except Exception as exc:  # the converter raises many types; its reason is the finding
            errors[name] = _reason(str(exc))
            continue
        path = run / f"model.{name}.tflite"
        path.write_bytes(data)
        files[name] = str(path)
    return files, errors


def _reason(message: str) -> str:
    """The line of a converter failure that says what to do, else its last error line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if "Select TF ops" in ln or "SELECT_TF_OPS" in ln:
            return ln.removeprefix("error: ")[:240]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines or [message]
    return errors[-1][:240]


def keras_timings(run: Path, x: np.ndarray, y: np.ndarray | None, task: str,
                  runs: int) -> dict[str, Any]:
    load_tensorflow()
    import keras

    model = keras.models.load_model(run / "model.keras")
    out: dict[str, Any] = quality(np.asarray(model.predict(x, verbose=0)), x, y, task)
    for name, call in (("keras model(x)", lambda b: model(b, training=False)),
                       ("keras predict", lambda b: model.predict(b, verbose=0))):
        out[name] = {str(b): median_ms(lambda b=b, call=call: call(x[:b]), runs, warmup=3,
                                       budget_s=5.0)
                     for b in BATCHES}
    return out


# -- child process (no TensorFlow) --------------------------------------------------------------

def onnx_figures(path: str, x: np.ndarray, y: np.ndarray | None, task: str, runs: int,
                 threads: int | None) -> dict[str, Any]:
    from edge_infer.runtime import Model

    model = Model(path, providers=["cpu"], threads=threads)
    out = model.run(x, batch_size=256)[model.signature.output_names[0]]
    row: dict[str, Any] = quality(out, x, y, task) | {"size_bytes": os.path.getsize(path)}
    for b in BATCHES:
        xb = np.ascontiguousarray(x[:b])
        row[str(b)] = median_ms(lambda xb=xb: model.run(xb), runs)
        runner = model.bind(b)  # IO binding: inputs copied into buffers bound once
        row[f"{b}-bound"] = median_ms(lambda xb=xb, runner=runner: runner(xb), runs)
    return row


def litert_figures(path: str, x: np.ndarray, y: np.ndarray | None, task: str, runs: int,
                   threads: int | None) -> dict[str, Any]:
    assert "tensorflow" not in sys.modules
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return {"error": "ai-edge-litert is not installed (pip install 'edge-infer[bench]')"}
    row: dict[str, Any] = {"size_bytes": os.path.getsize(path)}
    for batch in (*BATCHES, len(x)):
        interp = Interpreter(model_path=path, num_threads=threads)
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], [batch, *x.shape[1:]])
        interp.allocate_tensors()
        xb = np.ascontiguousarray(x[:batch]).astype(inp["dtype"])
        output = interp.get_output_details()[0]["index"]

        def call(xb: np.ndarray = xb, interp: Any = interp, index: int = inp["index"],
                 output: int = output) -> np.ndarray:
            """In, run, out: as ``Model.run`` returns its outputs (0.3 us at batch 1)."""
            interp.set_tensor(index, xb)
            interp.invoke()
            return interp.get_tensor(output)

        if batch == len(x):
            row.update(quality(call(), x, y, task))
        else:
            row[str(batch)] = median_ms(call, runs)
    return row
