"""Find the fastest session setting for a model on this machine (``edge-infer tune``).

Each candidate (onnxruntime's default; one thread; each larger thread count up to the cores,
with idle threads spinning and sleeping) is timed through :func:`.bench.benchmark` at the batch
size and pace the deployment uses, in a session of its own. Rounds go through the candidates in
turn, in a rotated order, so a drift of the machine (clocks, a neighbour's load) spreads over all
of them rather than landing on one; each candidate's figure is the median of its rounds' p50.

The choice: the lowest median p50, except that any candidate within ``margin`` of it (5%, about
what repeated runs of one setting differ by on a 2-core machine) counts as a tie, and a tie goes
to the setting that uses the least CPU, then to onnxruntime's default, then to fewer threads.
So a setting is only recorded over onnxruntime's default for a difference larger than the
noise, and between equals the cheaper one wins, which on a battery-powered board matters as
much as the time.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import UsageError
from .tuned import Host, Tuned, setting_phrase, this_host

MARGIN = 0.05
CPU_MARGIN = 10.0  # percentage points of one core: back to back, 2 threads read 196 to 202%
Candidate = tuple[int | None, bool | None]  # (threads, spinning); None: onnxruntime's default


@dataclass(frozen=True)
class TuneConfig:
    batch_size: int = 1
    rate_hz: float | None = None  # pace the calls as a sensor loop does (None: back to back)
    threads: tuple[int, ...] = ()  # thread counts to try (empty: 1, 2, 4, ... and the cores)
    seconds: float = 0.5  # timed calls per candidate and round, in seconds (at least 50 calls)
    rounds: int = 3
    providers: tuple[str, ...] = ("auto",)
    provider_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    dims: tuple[tuple[str, int], ...] = ()
    io_binding: bool = False
    margin: float = MARGIN

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, found {self.batch_size}")
        if not self.rounds >= 1:
            raise UsageError(f"rounds must be >= 1, found {self.rounds}")
        if not self.seconds > 0:
            raise UsageError(f"seconds must be > 0, found {self.seconds}")
        if any(t < 1 for t in self.threads):
            raise UsageError(f"thread counts to try must be >= 1, found {list(self.threads)}")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise UsageError(f"rate must be > 0 calls per second, found {self.rate_hz}")
        if not 0 <= self.margin < 1:
            raise UsageError(f"margin must be in [0, 1), found {self.margin}")


@dataclass
class Trial:
    """One candidate's figures, one per round."""

    threads: int | None
    spinning: bool | None
    p50_ms: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return setting_phrase(self.threads, self.spinning)

    @property
    def default(self) -> bool:
        return self.threads is None and self.spinning is None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.p50_ms)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_percent)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "spinning": self.spinning,
                "p50_ms": self.p50_ms, "cpu_percent": self.cpu_percent,
                "median_p50_ms": self.median_ms, "median_cpu_percent": self.median_cpu}


@dataclass
class TuneResult:
    model: str
    config: TuneConfig
    host: Host
    onnxruntime: str
    provider: str
    runs: int  # timed calls per candidate and round
    trials: list[Trial]
    chosen: Trial

    @property
    def baseline(self) -> Trial:
        return next(t for t in self.trials if t.default)

    @property
    def speedup(self) -> float:
        return self.baseline.median_ms / self.chosen.median_ms

    def entry(self) -> Tuned:
        """What goes into the file (runtime/tuned.py)."""
        return Tuned(self.host, self.chosen.threads, self.chosen.spinning,
                     self.config.batch_size, self.config.rate_hz, round(self.speedup, 3),
                     self.onnxruntime)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {"model": self.model, "host": self.host.to_dict(),
                "onnxruntime": self.onnxruntime, "provider": self.provider,
                "batch_size": c.batch_size, "rate_hz": c.rate_hz, "rounds": c.rounds,
                "runs": self.runs, "margin": c.margin,
                "trials": [t.to_dict() for t in self.trials],
                "chosen": {"threads": self.chosen.threads, "spinning": self.chosen.spinning},
                "speedup_vs_default": self.speedup}


def thread_counts(cores: int, given: tuple[int, ...] = ()) -> list[int]:
    """1, 2, 4, ... up to ``cores``, and ``cores`` itself (6 on a 6-core board)."""
    if given:
        return sorted(set(given))
    counts, n = {cores}, 1
    while n < cores:
        counts.add(n)
        n *= 2
    return sorted(counts)


def candidates(cores: int, given: tuple[int, ...] = ()) -> list[Candidate]:
    """onnxruntime's default first, then each thread count; with more than one thread, idle
    threads spinning and sleeping (one thread has no pool to spin)."""
    out: list[Candidate] = [(None, None)]
    for n in thread_counts(cores, given):
        out.extend([(1, None)] if n == 1 else [(n, True), (n, False)])
    return out


def choose(trials: list[Trial], margin: float = MARGIN, cpu_margin: float = CPU_MARGIN
           ) -> Trial:
    """The fastest trial; the trials within ``margin`` of it tie, and a tie goes to the least
    CPU (within ``cpu_margin`` percentage points of a core, also noise), then to onnxruntime's
    default (a recorded setting that changes nothing would only claim a difference that is
    not there), then to fewer threads, then to the faster."""
    fastest = min(t.median_ms for t in trials)
    near = [t for t in trials if t.median_ms <= fastest * (1 + margin)]
    least_cpu = min(t.median_cpu for t in near)
    cheap = [t for t in near if t.median_cpu <= least_cpu + cpu_margin]
    return min(cheap, key=lambda t: (not t.default, t.threads or 0,
                                     t.spinning is not False, t.median_ms))


def tune(path: str | Path, config: TuneConfig = TuneConfig(),
         inputs: Mapping[str, np.ndarray] | Callable[[Any], Mapping[str, np.ndarray]]
         | None = None, progress: Callable[[int], None] | None = None) -> TuneResult:
    """Time every candidate on ``path`` (see the module docstring) and choose one."""
    import onnxruntime

    from .bench import BenchConfig, benchmark

    host = this_host()
    base = BenchConfig(batch_sizes=(config.batch_size,), providers=config.providers,
                       provider_options=config.provider_options, dims=config.dims,
                       io_binding=config.io_binding, rate_hz=config.rate_hz, tuned=False,
                       runs=20, warmup=5, warmup_seconds=0.05)
    # how long a call takes, back to back, to size the rounds
    probe = benchmark(path, replace(base, rate_hz=None), inputs)
    call_s = probe.batches[0].latency_ms["p50"] / 1000
    per_call = max(call_s, 1.0 / config.rate_hz) if config.rate_hz else call_s
    runs = int(min(max(config.seconds / max(per_call, 1e-7), 50), 100_000))
    trials = [Trial(t, s) for t, s in candidates(host.cores, config.threads)]
    timed = replace(base, runs=runs, warmup=20, warmup_seconds=0.2)
    for r in range(config.rounds):
        shift = r % len(trials)
        for trial in trials[shift:] + trials[:shift]:
            result = benchmark(path, replace(timed, threads=trial.threads,
                                             spinning=trial.spinning), inputs)
            figures = result.batches[0]
            trial.p50_ms.append(figures.latency_ms["p50"])
            trial.cpu_percent.append(figures.cpu_percent)
            if progress is not None:
                progress(1)
    return TuneResult(str(path), config, host, onnxruntime.__version__, probe.provider, runs,
                      trials, choose(trials, config.margin))
