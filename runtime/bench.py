"""Latency, throughput and memory of models through the runtime, as a deployment sees them.

``benchmark()`` times the session creation, feeds inputs generated from the model's signature
(or given), warms up, then times each ``Model.run`` call. Depends on onnxruntime and numpy only.

JSON schema (``edge-infer bench --format json``; ``format`` changes when a field changes
meaning or goes away; new fields may be added)::

    {"format": 1,
     "machine": {"platform", "machine", "cpu", "cores", "python", "onnxruntime"},
     "config": {"batch_sizes": [int], "runs", "warmup", "warmup_seconds",
                "threads": int|null,
                "providers": [str], "provider_options": {provider: {key: str}},
                "dims": {name: int}, "io_binding": bool,
                "spinning": bool|null, "rate_hz": float|null, "input": str|null},
     "results": [{"model": path, "size_bytes", "provider": str (what ran),
                  "threads": int|null (what the session was given), "spinning": bool|null,
                  "tuned": null|{"host", "threads", "spinning", "batch_size", "rate_hz",
                                 "speedup", "onnxruntime"},
                  "session_seconds", "peak_rss_mib": float|null,
                  "batches": [{"batch_size", "latency_ms": {"min", "p50", "p90", "p99", "max",
                               "mean"}, "throughput_per_s", "cpu_percent",
                               "late": int|null, "speedup_vs_first": float|null,
                               "operators": null|{"calls", "run_us", "operator_us",
                                   "outside_us", "nodes": [{"name", "op", "provider", "us"}],
                                   "by_op": {op: us}}}]}]}

With ``io_binding`` each timed call is ``runner(inputs)`` on a ``Model.bind()`` runner: the
inputs are copied into buffers bound once to the session (as TFLite's ``set_tensor`` + ``invoke``
do) instead of passing through ``Model.run``'s per-call conversion. A session that captures a
CUDA graph (``cuda.graph=1``) can only run this way; its runner's buffers are on the GPU.

``rate_hz`` paces the timed calls as a sensor or camera loop makes them: each call starts on
its tick (``1 / rate_hz`` apart) and the process sleeps in between. Latency is still the call's
own; ``throughput_per_s`` is then what the calls would sustain back to back (batch over the
mean latency), not the paced rate. ``cpu_percent`` is the CPU time the whole process used
during the timed runs (every thread, sleeps included) over their wall time, in percent of one
core: back to back it says how many cores a call keeps busy; paced, what the loop costs.
``late`` (paced only) counts the calls that took longer than the period, the frames a camera
loop at that rate would drop or queue.
``spinning`` (null: onnxruntime's default, on) is whether onnxruntime's idle threads spin-wait
for work: they go on spinning for a while after each call, which a paced loop pays for.
A model file that ``edge-infer tune`` tuned for this kind of machine is timed with its recorded
setting wherever ``threads``/``spinning`` are not given, as a deployment would run it: the
result's ``threads`` and ``spinning`` are what the session got, and ``tuned`` the entry used
(``runtime/tuned.py``). ``tuned: false`` in the config ignores such entries.

Warm-up before each model and batch size is ``warmup`` untimed calls, and more until
``warmup_seconds`` have passed: 20 calls of a small model take about 1 ms, less than CPU clocks
take to settle. On the Xeon of BENCHMARKS.md the first model timed in a process read 0.090 ms
after 30 warm-up calls and 0.031 ms when timed again; here, three copies of the digits cnn in
one ``bench`` read 0.065, 0.052 and 0.052 ms once after 20 calls. Other runs showed no such
gap, with or without the extra time: it is a guard, and costs 0.2 s per model and batch size.

``operators`` (with ``profile``) is onnxruntime's profiler summarised (``runtime/profile.py``):
microseconds per call for each node of the optimised graph, slowest first, with its provider,
the totals per operator type, and ``outside_us``, the part of a call no node accounts for. The
profiled calls (as many as ``runs``, at most 100, after the same warm-up calls) run in a
session of their own after the timed ones, so profiling changes no latency figure; being
profiled, they are slower, and their figures are to be read as shares. They run back to back
through ``Model.run`` whatever ``rate_hz`` and ``io_binding`` say, so beside paced timings the
profiler's cost per node that ``bench`` estimates from the two reads low. Null without
``profile``.

``speedup_vs_first`` is the first model's p50 latency at the same batch size divided by this
one's (above 1: faster); null for the first model.

Peak memory is the process's resident high-water mark while the model was loaded and run; on
Linux the mark is reset before each model (``/proc/self/clear_refs``) so several models in one
run each get their own figure, elsewhere it is the process's peak so far.

Timings taken in a process that has imported TensorFlow are not trustworthy: its thread pools
competed with onnxruntime's and slowed it by up to 2x on this project's 2-core machines. Tools
that have TensorFlow loaded (the pipeline) call :func:`benchmark_subprocess`, which runs
``python -m edge_infer.runtime.bench`` in a clean interpreter and reads its JSON.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import InputError, UsageError

FORMAT = 1
PROFILE_CALLS = 100  # at most this many profiled calls per batch size: the trace grows per node
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1,)
    runs: int = 200
    warmup: int = 20
    providers: tuple[str, ...] = ("cpu",)
    provider_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    strict: bool = False
    threads: int | None = None
    dims: tuple[tuple[str, int], ...] = ()  # symbolic dimension -> value (the batch excepted)
    seed: int = 0
    io_binding: bool = False  # time Model.bind() runners (inputs copied into bound buffers)
    spinning: bool | None = None  # onnxruntime's idle threads spin-wait (None: its default)
    rate_hz: float | None = None  # pace the timed calls at this rate (None: back to back)
    warmup_seconds: float = 0.2  # after the warmup calls, go on until this much time has passed
    profile: bool = False  # also profile each batch size's calls node by node (profile.py)
    tuned: bool = True  # apply the setting `edge-infer tune` recorded for this machine

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise UsageError(f"batch sizes must be >= 1, found {list(self.batch_sizes)}")
        if self.runs < 1:
            raise UsageError(f"runs must be >= 1, found {self.runs}")
        if self.warmup < 0:
            raise UsageError(f"warmup must be >= 0, found {self.warmup}")
        if not self.warmup_seconds >= 0:
            raise UsageError(f"warmup seconds must be >= 0, found {self.warmup_seconds}")
        if self.threads is not None and self.threads < 0:
            raise UsageError(f"threads must be >= 0, found {self.threads}")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise UsageError(f"rate must be > 0 calls per second, found {self.rate_hz}")

    def options(self) -> dict[str, dict[str, str]]:
        return {name: dict(items) for name, items in self.provider_options}

    def to_dict(self) -> dict[str, Any]:
        return {"batch_sizes": list(self.batch_sizes), "runs": self.runs,
                "warmup": self.warmup, "warmup_seconds": self.warmup_seconds,
                "threads": self.threads,
                "providers": list(self.providers), "provider_options": self.options(),
                "dims": dict(self.dims),
                "io_binding": self.io_binding, "spinning": self.spinning,
                "rate_hz": self.rate_hz, "profile": self.profile, "tuned": self.tuned}


@dataclass
class BatchFigures:
    batch_size: int
    latency_ms: dict[str, float]  # min, p50, p90, p99, max, mean
    throughput_per_s: float
    cpu_percent: float  # process CPU time over wall time during the timed runs; 100 = 1 core
    late: int | None = None  # paced runs only: calls longer than the period
    speedup_vs_first: float | None = None
    operators: dict[str, Any] | None = None  # with BenchConfig.profile: OperatorProfile.to_dict
    samples_ms: list[float] = field(default_factory=list, repr=False)


@dataclass
class BenchResult:
    model: str
    size_bytes: int
    provider: str
    threads: int | None
    session_seconds: float
    peak_rss_mib: float | None
    batches: list[BatchFigures]
    spinning: bool | None = None
    tuned: dict[str, Any] | None = None  # the `edge-infer tune` entry applied (tuned.py)

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not samples:
            for b in d["batches"]:
                b.pop("samples_ms")
        return d

    def figures(self, batch_size: int) -> BatchFigures | None:
        return next((b for b in self.batches if b.batch_size == batch_size), None)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def make_inputs(signature: Any, batch_size: int, dims: Mapping[str, int],
                seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs shaped by the model's signature: the first dimension is the batch, other
    symbolic dimensions come from ``dims``; floats uniform in [0, 1), integers 0 or 1."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        if spec.shape is None or spec.dtype is None:
            raise InputError(f"input {spec.name!r} has no static rank or type; give an input "
                             "file with --input")
        shape = []
        for i, d in enumerate(spec.shape):
            if isinstance(d, int):
                shape.append(d)
            elif d is not None and d in dims:
                shape.append(dims[d])
            elif i == 0:
                shape.append(batch_size)
            else:
                raise InputError(f"input {spec.name!r} has the symbolic dimension "
                                 f"{d or '?'} at axis {i}; set it with --dim "
                                 f"{d or 'NAME'}=N, or give an input file with --input")
        if np.issubdtype(spec.dtype, np.floating):
            feed[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feed[spec.name] = rng.random(shape) < 0.5
        else:
            feed[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
    return feed


def resize_batch(arrays: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Given samples repeated or cut to ``batch_size`` rows."""
    out = {}
    for name, a in arrays.items():
        reps = -(-batch_size // len(a))
        out[name] = np.ascontiguousarray(np.concatenate([a] * reps)[:batch_size])
    return out


def _percentiles(times_ms: np.ndarray) -> dict[str, float]:
    return {"min": float(times_ms.min()), "p50": float(np.percentile(times_ms, 50)),
            "p90": float(np.percentile(times_ms, 90)), "p99": float(np.percentile(times_ms, 99)),
            "max": float(times_ms.max()), "mean": float(times_ms.mean())}


def _warm(call: Callable[[], Any], runs: int, seconds: float) -> None:
    """At least ``runs`` untimed calls, and more until ``seconds`` have passed."""
    start, done = time.perf_counter(), 0
    while done < runs or time.perf_counter() - start < seconds:
        call()
        done += 1


def _sleep_until(due: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``due`` (at once when it has)."""
    wait = due - time.perf_counter()
    if wait > 0:
        time.sleep(wait)


def _timed(call: Callable[[], Any], runs: int, rate_hz: float | None,
           progress: Progress | None) -> tuple[np.ndarray, float]:
    """Seconds per call, and the process's CPU use over the loop in percent of one core.
    With ``rate_hz`` each call starts on its tick; a call that overruns its period delays
    the next one rather than being followed by a burst."""
    period = 1.0 / rate_hz if rate_hz else 0.0
    times = np.empty(runs)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    due = wall0
    for i in range(runs):
        if period:
            _sleep_until(due)
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        times[i] = t1 - t0
        if period:
            due = max(due + period, t1)
        if progress is not None:
            progress(1)
    if period:  # a paced loop's last period counts too: threads may spin through it
        _sleep_until(due)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return times, 100.0 * cpu / wall if wall > 0 else 0.0


def benchmark(path: str | Path, config: BenchConfig = BenchConfig(),
              inputs: Mapping[str, np.ndarray] | Callable[[Any], Mapping[str, np.ndarray]]
              | None = None, progress: Progress | None = None) -> BenchResult:
    """Time ``Model.run`` on ``path`` for each batch size in ``config``; ``inputs`` (arrays
    keyed by input name, or a function of the loaded ``Model`` returning them) replace the
    generated ones, repeated or cut to each batch size."""
    from .model import Model

    path = Path(path)
    _reset_peak_rss()
    start = time.perf_counter()
    model = Model(path, providers=list(config.providers), threads=config.threads,
                  spinning=config.spinning, provider_options=config.options(),
                  strict=config.strict, tuned=config.tuned)
    session_seconds = time.perf_counter() - start
    if callable(inputs):
        inputs = inputs(model)
    batches, feeds = [], []
    for batch in config.batch_sizes:
        feed = resize_batch(inputs, batch) if inputs is not None else \
            make_inputs(model.signature, batch, dict(config.dims), config.seed)
        feeds.append(feed)
        call: Callable[[], Any] = lambda feed=feed: model.run(feed)  # noqa: E731
        if config.io_binding:
            runner = model.bind(batch, dict(config.dims))
            call = lambda feed=feed, runner=runner: runner(feed)  # noqa: E731
        _warm(call, config.warmup, config.warmup_seconds)
        times, cpu_percent = _timed(call, config.runs, config.rate_hz, progress)
        ms = times * 1000
        late = int((times > 1.0 / config.rate_hz).sum()) if config.rate_hz else None
        batches.append(BatchFigures(batch, _percentiles(ms), float(batch / times.mean()),
                                    cpu_percent, late, samples_ms=[float(t) for t in ms]))
    result = BenchResult(str(path), path.stat().st_size, model.provider, model.config.threads,
                         session_seconds, peak_rss_mib(), batches, model.config.spinning,
                         None if model.tuned is None else model.tuned.to_dict())
    if config.profile:
        del model  # the profiled session is the only one open while it runs
        as_timed = replace(config, threads=result.threads, spinning=result.spinning)
        for figures, found in zip(batches, _profile(path, as_timed, feeds)):
            figures.operators = found.to_dict()
    return result


def _profile(path: Path, config: BenchConfig, feeds: Sequence[Mapping[str, np.ndarray]]
             ) -> list[Any]:
    """onnxruntime's profile of each feed's calls, in a session opened as the timed one."""
    from .model import Model, SessionConfig
    from .profile import profile
    from .providers import without_graph_capture

    def open_profiled(prefix: str) -> Model:
        import warnings

        from .errors import ProviderFallbackWarning

        session = SessionConfig(threads=config.threads, spinning=config.spinning,
                                profile_prefix=prefix)
        with warnings.catch_warnings():  # the timed session has said it already
            warnings.simplefilter("ignore", ProviderFallbackWarning)
            # Without CUDA graph capture: the profiler sees a replayed graph as one launch.
            return Model(path, providers=list(config.providers),
                         provider_options=without_graph_capture(config.options()),
                         strict=config.strict, config=session)

    return profile(open_profiled, feeds, min(config.runs, PROFILE_CALLS), config.warmup)


def compare(results: Sequence[BenchResult]) -> None:
    """Fill ``speedup_vs_first``: the first model's p50 over each one's, per batch size."""
    if not results:
        return
    first = results[0]
    for result in results[1:]:
        for b in result.batches:
            base = first.figures(b.batch_size)
            if base is not None and b.latency_ms["p50"] > 0:
                b.speedup_vs_first = base.latency_ms["p50"] / b.latency_ms["p50"]


def machine() -> dict[str, Any]:
    import platform

    import onnxruntime

    from .tuned import this_host

    host = this_host()  # what a tuned setting is recorded for (tuned.py)
    return {"platform": platform.platform(), "machine": host.machine, "cpu": host.cpu,
            "cores": host.cores, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__}


def report(results: Sequence[BenchResult], config: BenchConfig,
           input_file: str | None = None) -> dict[str, Any]:
    """The documented JSON document (see the module docstring)."""
    return {"format": FORMAT, "machine": machine(),
            "config": config.to_dict() | {"input": input_file},
            "results": [r.to_dict() for r in results]}


def benchmark_subprocess(paths: Sequence[str | Path], config: BenchConfig = BenchConfig()
                         ) -> list[dict[str, Any]]:
    """:func:`benchmark` for each model, in a fresh interpreter without TensorFlow loaded."""
    import subprocess

    args = [sys.executable, "-m", "edge_infer.runtime.bench", "--runs", str(config.runs),
            "--warmup", str(config.warmup), "--warmup-seconds", repr(config.warmup_seconds)]
    for p in config.providers:
        args += ["--provider", p]
    for b in config.batch_sizes:
        args += ["--batch-size", str(b)]
    if config.threads is not None:
        args += ["--threads", str(config.threads)]
    if config.spinning is not None:
        args += ["--spin" if config.spinning else "--no-spin"]
    if config.rate_hz is not None:
        args += ["--rate", repr(config.rate_hz)]
    if config.io_binding:
        args += ["--io-binding"]
    if config.profile:
        args += ["--profile"]
    done = subprocess.run([*args, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"benchmark process failed: {tail[0]}")
    return json.loads(done.stdout)["results"]


def _main(argv: Sequence[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edge_infer.runtime.bench")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, action="append", dest="batch_sizes")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=0.2)
    parser.add_argument("--provider", action="append", dest="providers")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--io-binding", action="store_true")
    parser.add_argument("--spin", action=argparse.BooleanOptionalAction, default=None,
                        dest="spinning")
    parser.add_argument("--rate", type=float, default=None, dest="rate_hz")
    parser.add_argument("--profile", action="store_true")
    a = parser.parse_args(argv)
    config = BenchConfig(tuple(a.batch_sizes or (1,)), a.runs, a.warmup,
                         tuple(a.providers or ("cpu",)), threads=a.threads,
                         io_binding=a.io_binding, spinning=a.spinning, rate_hz=a.rate_hz,
                         warmup_seconds=a.warmup_seconds, profile=a.profile)
    results = [benchmark(m, config) for m in a.models]
    compare(results)
    print(json.dumps(report(results, config)))


if __name__ == "__main__":
    _main(sys.argv[1:])
