"""Latency and throughput of a model through the runtime, as a deployment sees them.

``benchmark()`` creates the session (timed), feeds inputs generated from the model's signature,
warms up, then times each ``Model.run`` call: min/p50/p90/p99/max latency, throughput, and the
process's peak resident memory. It depends on onnxruntime and numpy only.

Timings taken in a process that has imported TensorFlow are not trustworthy: its thread pools
competed with onnxruntime's and slowed it by up to 2x on this project's 2-core machines. Tools
that have TensorFlow loaded (the pipeline) call :func:`benchmark_subprocess`, which runs
``python -m edge_infer.runtime.bench`` in a clean interpreter and reads its JSON.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError, UsageError


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1,)
    runs: int = 200
    warmup: int = 20
    provider: str = "cpu"
    threads: int | None = None
    dims: tuple[tuple[str, int], ...] = ()  # symbolic dimension -> value (batch excepted)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise UsageError(f"batch sizes must be >= 1, found {list(self.batch_sizes)}")
        if self.runs < 1:
            raise UsageError(f"runs must be >= 1, found {self.runs}")
        if self.warmup < 0:
            raise UsageError(f"warmup must be >= 0, found {self.warmup}")


@dataclass
class BatchFigures:
    batch_size: int
    latency_ms: dict[str, float]  # min, p50, p90, p99, max, mean
    throughput_per_s: float
    samples_ms: list[float] = field(default_factory=list, repr=False)


@dataclass
class BenchResult:
    model: str
    size_bytes: int
    provider: str
    threads: int | None
    session_seconds: float
    batches: list[BatchFigures]
    peak_rss_mib: float | None

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not samples:
            for b in d["batches"]:
                b.pop("samples_ms")
        return d

    def figures(self, batch_size: int) -> BatchFigures:
        return next(b for b in self.batches if b.batch_size == batch_size)


def peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (kib / 1024 / 1024 if sys.platform == "darwin" else kib / 1024)


def make_inputs(signature: Any, batch_size: int, dims: dict[str, int],
                seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs shaped by the model's signature: the first dimension is the batch, other
    symbolic dimensions come from ``dims``; floats uniform in [0, 1), integers small ids."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.shape is None or spec.dtype is None:
            raise InputError(f"input {spec.name!r} has no static rank or type; give an input "
                             "file instead")
        shape = []
        for i, d in enumerate(spec.shape):
            if isinstance(d, int):
                shape.append(d)
            elif i == 0:
                shape.append(batch_size)
            elif d in dims:
                shape.append(dims[d])
            else:
                raise InputError(f"input {spec.name!r} has a symbolic dimension {d!r}; set it "
                                 f"with --dim {d}=N")
        if np.issubdtype(spec.dtype, np.floating):
            feed[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feed[spec.name] = rng.random(shape) < 0.5
        else:
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
    return feed


def _percentiles(times_ms: np.ndarray) -> dict[str, float]:
    return {"min": float(times_ms.min()), "p50": float(np.percentile(times_ms, 50)),
            "p90": float(np.percentile(times_ms, 90)), "p99": float(np.percentile(times_ms, 99)),
            "max": float(times_ms.max()), "mean": float(times_ms.mean())}


def benchmark(path: str | Path, config: BenchConfig = BenchConfig(),
              inputs: dict[str, np.ndarray] | None = None) -> BenchResult:
    """Time ``Model.run`` on ``path`` for each batch size in ``config``."""
    from .model import Model

    path = Path(path)
    start = time.perf_counter()
    model = Model(path, providers=[config.provider], threads=config.threads)
    session_seconds = time.perf_counter() - start
    batches = []
    for batch in config.batch_sizes:
        feed = inputs if inputs is not None else make_inputs(model.signature, batch,
                                                             dict(config.dims), config.seed)
        rows = len(next(iter(feed.values())))
        for _ in range(config.warmup):
            model.run(feed)
        times = np.empty(config.runs)
        for i in range(config.runs):
            t0 = time.perf_counter()
            model.run(feed)
            times[i] = time.perf_counter() - t0
        ms = times * 1000
        batches.append(BatchFigures(rows, _percentiles(ms), float(rows / times.mean()),
                                    [float(t) for t in ms]))
        if inputs is not None:
            break
    return BenchResult(str(path), path.stat().st_size, model.provider, config.threads,
                       session_seconds, batches, peak_rss_mib())


def benchmark_subprocess(paths: Sequence[str | Path], config: BenchConfig = BenchConfig()
                         ) -> list[dict[str, Any]]:
    """:func:`benchmark` for each model, in a fresh interpreter without TensorFlow loaded."""
    import subprocess

    args = [sys.executable, "-m", "edge_infer.runtime.bench", "--runs", str(config.runs),
            "--warmup", str(config.warmup), "--provider", config.provider]
    for b in config.batch_sizes:
        args += ["--batch-size", str(b)]
    if config.threads is not None:
        args += ["--threads", str(config.threads)]
    done = subprocess.run([*args, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"benchmark process failed: {tail[0]}")
    return json.loads(done.stdout)


def _main(argv: Sequence[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edge_infer.runtime.bench")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, action="append", dest="batch_sizes")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--provider", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args(argv)
    config = BenchConfig(tuple(a.batch_sizes or (1,)), a.runs, a.warmup, a.provider, a.threads)
    print(json.dumps([benchmark(m, config).to_dict() for m in a.models]))


if __name__ == "__main__":
    _main(sys.argv[1:])
