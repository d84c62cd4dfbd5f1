"""``edge-infer bench MODEL...``: latency, throughput and memory, several models side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from . import debug_option
from .columns import aligned
from .options import parse_provider_options, provider_options


def _parse_dims(items: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    dims = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = int(value)
        except ValueError:
            number = 0
        if not sep or not name.strip() or number < 1:
            raise UsageError(f"--dim expects NAME=N with N >= 1 (like sequence=50), found "
                             f"{item!r}")
        dims.append((name.strip(), number))
    return tuple(dims)


def _load_input(path: str, model: Any) -> dict[str, Any]:
    """The samples in ``path``, loaded and checked against the benchmarked model itself."""
    from ..inputs import LoadContext, load_inputs

    batch = load_inputs([path], LoadContext(model.signature, model.metadata))
    return model.signature.prepare(batch.arrays, cast=batch.cast)


def _percent(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def table(doc: dict[str, Any]) -> str:
    paced = bool(doc["config"].get("rate_hz"))  # then "late": calls longer than the period
    header = ["model", "provider", "session", "batch", "p50 ms", "p90 ms", "p99 ms", "min ms",
              "max ms", "samples/s", "CPU %", *(["late"] if paced else []), "peak MiB",
              "vs first"]
    rows = []
    for r in doc["results"]:
        for b in r["batches"]:
            lat = b["latency_ms"]
            speed = b["speedup_vs_first"]
            rows.append([Path(r["model"]).name, r["provider"],
                         f"{r['session_seconds'] * 1000:.0f} ms", str(b["batch_size"]),
                         f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                         f"{lat['min']:.3f}", f"{lat['max']:.3f}",
                         f"{b['throughput_per_s']:,.0f}", _percent(b["cpu_percent"]),
                         *([str(b["late"])] if paced else []),
                         "-" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}",
                         "" if speed is None else f"{speed:.2f}x"])
    m, c = doc["machine"], doc["config"]
    threads = "onnxruntime's default" if c["threads"] is None else c["threads"]
    how = "bound buffers (--io-binding)" if c.get("io_binding") else "Model.run"
    pace = f"one call every {1000 / c['rate_hz']:g} ms" if c.get("rate_hz") else "back to back"
    spin = {None: "", True: ", spinning on", False: ", spinning off"}[c.get("spinning")]
    given = [f"{p}.{k}={v}" for p, opts in (c.get("provider_options") or {}).items()
             for k, v in opts.items()]
    options = f"; options {' '.join(given)}" if given else ""
    lines = [f"{m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}{options}; threads "
             f"{threads}{spin}; {how}, {c['runs']} runs {pace} after {c['warmup']} warm-up "
             f"runs and at least {c.get('warmup_seconds', 0):g} s",
             *_tuned_lines(doc["results"]), *aligned([header, *rows], range(3, len(header)))]
    return "\n".join(lines)


def _tuned_lines(results: list[dict[str, Any]]) -> list[str]:
    """A line per model that ran with the setting `edge-infer tune` recorded for this
    machine, since the header's threads are then not what it got."""
    from ..tuned import setting_phrase

    return [f"{Path(r['model']).name}: {setting_phrase(r['threads'], r.get('spinning'))}, as "
            "tuned for this machine (edge-infer tune; -t and --spin/--no-spin override it)"
            for r in results if r.get("tuned")]


def plot(results: list[Any], path: Path) -> None:
    """Latency distributions: one box per model and batch size."""
    from ..figures import figure_format

    fmt = figure_format(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_open

    sizes = sorted({b.batch_size for r in results for b in r.batches})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        data, names = [], []
        for r in results:
            b = r.figures(size)
            if b is not None:
                data.append(b.samples_ms)
                names.append(Path(r.model).name)
        ax.boxplot(data, showfliers=True, whis=(1, 99))
        ax.set_xticks(range(1, len(names) + 1), names, rotation=15, fontsize=8)
        ax.set_title(f"batch {size}", fontsize=10)
        ax.set_ylabel("latency (ms)")
    fig.suptitle("latency per run (whiskers: p1-p99)", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=110)
    plt.close(fig)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("-b", "--batch-size", "batch_sizes", type=click.IntRange(min=1), multiple=True,
              help="Batch size, repeatable (default: 1).")
@click.option("-n", "--runs", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed runs per model and batch size.")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True,
              help="Untimed runs first (the first runs of a session are slower).")
@click.option("--warmup-seconds", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="Go on warming up until this much time has passed: with too short a "
                   "warm-up the first model of several reads slower.")
@provider_options
@click.option("--dim", "dims", multiple=True, metavar="NAME=N",
              help="Value of a symbolic input dimension other than the batch, repeatable.")
@click.option("-i", "--input", "input_file", default=None, metavar="FILE",
              help="Feed these samples (any `run` input) instead of generated ones; repeated "
                   "or cut to each batch size.")
@click.option("--io-binding", is_flag=True,
              help="Time Model.bind() runners: inputs copied into buffers bound once to the "
                   "session, no per-call conversion (what a camera loop should use). "
                   "On the GPU with -O cuda.graph=1 (CUDA graphs), the only way to run.")
@click.option("--rate", "rate_hz", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="HZ",
              help="Pace the timed calls at HZ per second, as a camera or sensor loop makes "
                   "them (default: back to back). CPU % then says what the loop costs.")
@click.option("--spin/--no-spin", "spinning", default=None,
              help="Let onnxruntime's idle threads spin-wait for work (its default: the "
                   "lowest latency back to back) or sleep (--no-spin: far less CPU in a "
                   "paced loop).")
@click.option("--profile", is_flag=True,
              help="Also profile each model and batch size node by node (onnxruntime's "
                   "profiler, in a session of its own after the timed runs): its slowest "
                   "nodes, time per operator type, and the provider each node ran on.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the latency distributions as a PNG, or as the format the name's "
                   "suffix gives (.svg, .pdf; needs matplotlib).")
@debug_option
def bench(models: tuple[str, ...], batch_sizes: tuple[int, ...], runs: int, warmup: int,
          warmup_seconds: float,
          providers: tuple[str, ...], provider_option: tuple[str, ...], strict: bool,
          threads: int | None, dims: tuple[str, ...], input_file: str | None,
          io_binding: bool, rate_hz: float | None, spinning: bool | None, profile: bool,
          fmt: str,
          output: Path | None, plot_path: Path | None) -> None:
    """Benchmark one or more models: session creation, latency percentiles, throughput,
    peak memory and the provider that ran, each model against the first.

    \b
    Examples:
      edge-infer bench model.onnx
      edge-infer bench model.onnx model.int8.onnx model.fp16.onnx -b 1 -b 64
      edge-infer bench lstm.onnx --dim sequence=50 --format json -o bench.json
      edge-infer bench model.onnx -p cuda --plot latency.png
      edge-infer bench model.onnx --rate 30 --no-spin     # a 30 fps camera loop
      edge-infer bench model.int8.onnx --profile          # which nodes take the time
    """
    from ..bench import BenchConfig, benchmark, compare, report

    options = parse_provider_options(provider_option)
    config = BenchConfig(tuple(batch_sizes) or (1,), runs, warmup,
                         tuple(providers) or ("auto",),
                         tuple((k, tuple(v.items())) for k, v in options.items()), strict,
                         threads, _parse_dims(dims), io_binding=io_binding, spinning=spinning,
                         rate_hz=rate_hz, warmup_seconds=warmup_seconds, profile=profile)
    for m in models:
        if Path(m).is_dir():
            from ..not_onnx import describe_folder

            raise UsageError(describe_folder(m))
        if not Path(m).is_file():
            raise UsageError(f"model file {m} does not exist")
    if plot_path is not None:
        from ..figures import figure_format

        figure_format(plot_path)  # a name matplotlib cannot write fails before any timing
    total = len(models) * len(config.batch_sizes) * runs
    show = sys.stderr.isatty() and fmt == "table"
    results = []
    with click.progressbar(length=total, label="benchmarking", file=sys.stderr,
                           hidden=not show) as bar:
        for m in models:
            inputs = (lambda model: _load_input(input_file, model)) if input_file else None
            results.append(benchmark(m, config, inputs=inputs, progress=bar.update))
    compare(results)
    doc = report(results, config, input_file)
    if output is not None:
        from ..atomic import write_text

        write_text(output, json.dumps(doc, indent=2) + "\n")
    if plot_path is not None:
        plot(results, plot_path)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(table(doc))
        if profile:
            from .profile_table import operators_table

            click.echo("\n" + operators_table(doc))
