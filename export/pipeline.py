"""``pipeline()``: train, export with a parity proof, quantize for the device, evaluate and
benchmark both models, and write ``report.md`` + ``report.json``.

Each stage is the library function its own command runs (``train``, ``export``, ``quantize``,
``evaluate``, the runtime's ``benchmark``), so the pipeline never computes a figure differently
from the commands a user would type. The folder is built under a hidden temporary name and
renamed at the end: a failed or interrupted pipeline leaves nothing behind.

Benchmarks run in a fresh interpreter (:func:`edge_infer.runtime.bench.benchmark_subprocess`):
this process has TensorFlow loaded, whose thread pools distort onnxruntime timings.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_infer.runtime.atomic import atomic_folder, claim_folder
from edge_infer.runtime.errors import UsageError

Log = Callable[[str], None]
STAGES = ("train", "export", "quantize", "evaluate", "benchmark", "report")
BATCH_SIZES = (1, 64)
DISPLAY = {"static": "int8-static", "dynamic": "int8-dynamic", "weight-only": "int8-weight-only",
           "fp16": "fp16"}


@dataclass(frozen=True)
class PipelineConfig:
    architecture: str
    dataset: str | None = None  # None: the architecture's embedded dataset (digits, waves, sine)
    device: str = "host"
    out: Path | None = None
    epochs: int | None = None
    seed: int = 0
    method: str = "auto"
    max_accuracy_drop: float = 1.0
    exclude: tuple[str, ...] = ()  # layers kept in float by the quantizer
    auto_exclude: int = 0  # on a refusal, layers the quantizer may keep in float and retry
    bench_runs: int = 200
    verbose: int | str = "auto"

    def __post_init__(self) -> None:
        from edge_infer.devices.profiles import get as get_device
        from edge_infer.train.models import get as get_arch

        architecture = get_arch(self.architecture)
        if self.dataset is None:  # every architecture runs offline with no options
            object.__setattr__(self, "dataset", architecture.dataset)
        get_device(self.device)
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.auto_exclude < 0:
            raise UsageError(f"auto-exclude must be >= 0 layers, found {self.auto_exclude}")
        if self.bench_runs < 1:
            raise UsageError(f"benchmark runs must be >= 1, found {self.bench_runs}")


@dataclass
class PipelineResult:
    path: Path
    best: Path  # the model to deploy: quantized when the guard passed and it is smaller
    report: dict[str, Any] = field(default_factory=dict)

    def run_command(self, model: Path | None = None) -> str:
        inputs = self.report.get("files", {}).get("inputs", "INPUT")
        if not inputs.startswith("random:"):
            inputs = f"{self.path}{os.sep}{inputs}"
        return f"edge-infer run {model or self.best} {inputs}"

    def faster_line(self) -> str | None:
        """When a model the pipeline does not deploy runs faster here at batch 1 and no slower
        in batches (float32 beside an INT8 model on a CPU without VNNI), the command for it and
        the two batch-1 timings."""
        from .report import faster_than_best

        faster = faster_than_best(self.report)
        if faster is None:
            return None
        best = next(r for r in self.report["summary"] if r["name"] == self.report["best"])
        return (f"{self.run_command(self.path / faster['file'])}  ({faster['name']}: "
                f"{faster['latency_b1_ms']:.3f} against {best['latency_b1_ms']:.3f} ms at "
                "batch 1)")


class _Progress:
    """``[2/6] export: ...`` lines with each stage's elapsed time."""

    def __init__(self, log: Log) -> None:
        self.log, self.seconds, self._start = log, {}, 0.0
        self._stage: str | None = None

    def start(self, stage: str, what: str) -> None:
        self.finish()
        self._stage, self._start = stage, time.perf_counter()
        self.log(f"[{STAGES.index(stage) + 1}/{len(STAGES)}] {stage}: {what}")

    def finish(self) -> None:
        if self._stage is not None:
            self.seconds[self._stage] = round(time.perf_counter() - self._start, 2)
            self._stage = None


def _sample_inputs(run: Path, model_json: dict[str, Any], count: int = 4) -> str:
    """A few test inputs in the form ``edge-infer run`` takes best: PNGs for image models,
    a .txt of one text per line for text models, ``random:N`` for generators, an .npy batch
    otherwise. Returns the argument to pass, relative to the run folder (or ``random:N``)."""
    from edge_infer.runtime.inputs.text import Tokenizer
    from edge_infer.runtime.metadata import ImagePreprocess, ModelMetadata, TextPreprocess

    if model_json.get("task") == "generation":
        return f"random:{count}"
    with np.load(run / "samples.npz") as data:
        x = data["x"][:count]
        y = data["y"][:count] if "y" in data.files else None
    image = ModelMetadata.from_props(model_json.get("metadata") or {}).preprocess
    if isinstance(image, TextPreprocess):
        tokenizer = Tokenizer(image)
        lines = [tokenizer.decode(row) for row in x]
        (run / "inputs.txt").write_text("".join(f"{line}\n" for line in lines if line),
                                        encoding="utf-8")
        return "inputs.txt"
    plain = isinstance(image, ImagePreprocess) and image.mean is None and image.std is None \
        and not image.invert and x.ndim == 4 and x.shape[-1] in (1, 3)
    if plain:
        try:
            from PIL import Image
        except ImportError:
            plain = False
    if not plain:
        np.save(run / "inputs.npy", x)
        return "inputs.npy"
    folder = run / "inputs"
    folder.mkdir()
    labels = model_json.get("labels") or []
    for i, sample in enumerate(x):
        pixels = np.clip(np.round((sample - image.offset) / image.scale), 0, 255).astype(np.uint8)
        pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
        name = f"{i}"
        if y is not None and model_json.get("task") == "classification":
            k = int(y[i])
            name += f"-{labels[k] if k < len(labels) else k}"
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return "inputs" + os.sep


def pipeline(config: PipelineConfig, log: Log | None = None) -> PipelineResult:
    from edge_infer.devices.profiles import get as get_device
    from edge_infer.runtime.bench import BenchConfig, benchmark_subprocess
    from edge_infer.train.config import TrainConfig
    from edge_infer.train.trainer import default_base, train

    from .evaluate import evaluate
    from .exporter import ExportConfig, export
    from .quantize import QuantizeConfig, RefusedError, quantize
    from .report import accuracy_change, kib, write_report

    log = log or (lambda _m: None)
    device = get_device(config.device)
    train_config = TrainConfig(architecture=config.architecture, dataset=config.dataset,
                               epochs=config.epochs, seed=config.seed, verbose=config.verbose)
    progress = _Progress(log)
    with claim_folder(config.out or default_base(train_config), number=not config.out) as out, \
            atomic_folder(out) as work:
        progress.start("train", f"{config.architecture} on {config.dataset} "
                                f"(seed {config.seed})")
        trained = train(replace(train_config, out=work),
                        log=lambda m: log(f"  {m}"))
        progress.start("export", "Keras -> ONNX with tf2onnx, parity on real samples")
        exported = export(ExportConfig(work))
        log(f"  {exported.path.name}: {kib(exported.size_bytes)}, parity "
            f"{exported.parity.summary()}")
        progress.start("quantize", f"{config.method} for {device.name} ({device.summary()})")
        quantized, refused, larger = None, None, False
        try:
            quantized = quantize(QuantizeConfig(exported.path, method=config.method,
                                                device=device.name,
                                                max_accuracy_drop=config.max_accuracy_drop,
                                                exclude=config.exclude, per_layer=True,
                                                auto_exclude=config.auto_exclude),
                                 log=lambda m: log(f"  {m}"))
            r = quantized.report()
            ratio = r["size_ratio"]  # of the written files: the report states their sizes
            log(f"  {quantized.path.name}: {ratio:.0%} of the float32 size"
                + (f", accuracy {accuracy_change(r['accuracy_drop_points'])}"
                   if r["accuracy_drop_points"] is not None else "")
                + (f", top-1 agreement {r['top1_agreement']:.2%}"
                   if r["top1_agreement"] is not None else ""))
            # A quantized file can be no smaller (report.NOT_SMALLER says why). Such a file has
            # no reason to be deployed, so the float32 model is the result (the report says so).
            larger = quantized.not_smaller
            if larger:
                log(f"  {quantized.path.name} is not smaller than float32; the float32 model "
                    "is the result")
        except RefusedError as exc:  # the accuracy guard, or a model onnxruntime cannot open
            refused = str(exc)
            log(f"  refused: {refused}; the float32 model is the result")
        models = {"float32": exported.path}
        if quantized is not None:
            models[DISPLAY[quantized.method]] = quantized.path
        progress.start("evaluate", f"{', '.join(models)} on the held-out test split")
        evaluation = {name: evaluate(path, log=lambda m: log(f"  {m}"))
                      for name, path in models.items()}
        for name, ev in evaluation.items():
            figure = (f"accuracy {ev['accuracy']:.4f}" if "accuracy" in ev
                      else f"mse {ev['mse']:.6f}" if "mse" in ev else "no metric")
            log(f"  {name}: {figure} on {ev['samples']} samples")
        progress.start("benchmark", f"batch {' and '.join(map(str, BATCH_SIZES))}, "
                                    f"{config.bench_runs} runs each, in a fresh process")
        figures = benchmark_subprocess(list(models.values()),
                                       BenchConfig(BATCH_SIZES, runs=config.bench_runs,
                                                   profile=True))
        bench = dict(zip(models, figures))
        for name, b in bench.items():
            one = b["batches"][0]
            log(f"  {name}: batch 1 p50 {one['latency_ms']['p50']:.3f} ms, batch "
                f"{b['batches'][-1]['batch_size']} {b['batches'][-1]['throughput_per_s']:,.0f}"
                " samples/s")
        progress.start("report", "report.md, report.json, tradeoff.png")
        model_json = json.loads((work / "model.json").read_text())
        inputs = _sample_inputs(work, model_json)
        progress.finish()
        best_name = DISPLAY[quantized.method] if quantized is not None and not larger \
            else "float32"
        report = write_report(work, out, config=config, device=device, trained=trained,
                              exported=exported, quantized=quantized, refused=refused,
                              evaluation=evaluation, bench=bench, stage_seconds=progress.seconds,
                              inputs=inputs, best=best_name)
    best = out / Path(models[best_name]).name
    return PipelineResult(out, best, report)
