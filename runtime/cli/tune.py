"""``edge-infer tune MODEL``: time session settings here and record the fastest in the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from . import debug_option
from .columns import aligned
from .bench import _load_input, _parse_dims
from .options import parse_provider_options


def table(doc: dict[str, Any]) -> str:
    """The trials side by side, the chosen one marked."""
    from ..tuned import setting_phrase

    chosen = doc["chosen"]
    base = next(t for t in doc["trials"] if t["threads"] is None and t["spinning"] is None)
    header = ["setting", "p50 ms", "rounds' p50 ms", "CPU %", "vs default", ""]
    rows = []
    for t in doc["trials"]:
        mark = ("<- chosen" if (t["threads"], t["spinning"]) ==
                (chosen["threads"], chosen["spinning"]) else "")
        rows.append([setting_phrase(t["threads"], t["spinning"]),
                     f"{t['median_p50_ms']:.3f}",
                     " ".join(f"{v:.3f}" for v in t["p50_ms"]),
                     f"{t['median_cpu_percent']:.0f}",
                     f"{base['median_p50_ms'] / t['median_p50_ms']:.2f}x", mark])
    h = doc["host"]
    pace = f"one call every {1000 / doc['rate_hz']:g} ms" if doc["rate_hz"] else "back to back"
    return "\n".join([
        f"{Path(doc['model']).name} on {h['cpu']}, {h['cores']} cores; onnxruntime "
        f"{doc['onnxruntime']}, {doc['provider']}; batch {doc['batch_size']}, {pace}; "
        f"{doc['rounds']} round{'s' if doc['rounds'] != 1 else ''} of {doc['runs']:,} calls "
        "per setting",
        *aligned([header, *rows], range(1, 5))])


def summary(doc: dict[str, Any]) -> str:
    from ..tuned import setting_phrase

    c = doc["chosen"]
    setting = setting_phrase(c["threads"], c["spinning"])
    if c["threads"] is None and c["spinning"] is None:
        return ("onnxruntime's default is the fastest here (no other setting was more than "
                f"{doc['margin']:.0%} faster)")
    return (f"fastest: {setting}, {doc['speedup_vs_default']:.2f}x onnxruntime's default "
            f"(ties within {doc['margin']:.0%} go to the setting using less CPU)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_path", metavar="MODEL")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="The batch size the deployment calls the model with.")
@click.option("--rate", "rate_hz", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="HZ",
              help="Pace the calls at HZ per second, as a camera or sensor loop makes them "
                   "(default: back to back).")
@click.option("-t", "--threads", "thread_counts", type=click.IntRange(min=1), multiple=True,
              help="A thread count to try, repeatable (default: 1, 2, 4, ... up to the "
                   "cores, and the cores).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=0.5,
              show_default=True, help="Timed calls per setting and round, in seconds.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Passes over the settings, in rotated order; each setting's figure is the "
                   "median of its rounds.")
@click.option("-p", "--provider", "providers", multiple=True, metavar="NAME",
              help="Execution provider, repeatable (default: auto).")
@click.option("-O", "--provider-option", "provider_option", multiple=True,
              metavar="NAME.KEY=VALUE", help="Pass an option to a provider.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N",
              help="Value of a symbolic input dimension other than the batch, repeatable.")
@click.option("-i", "--input", "input_file", default=None, metavar="FILE",
              help="Feed these samples (any `run` input) instead of generated ones.")
@click.option("--io-binding", is_flag=True,
              help="Time Model.bind() runners, as a camera loop calls the model.")
@click.option("--dry-run", is_flag=True, help="Measure and show; write nothing.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the tuned model here instead of into MODEL.")
@click.option("--clear", is_flag=True,
              help="Measure nothing; remove the setting recorded for this machine.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@debug_option
def tune(model_path: str, batch_size: int, rate_hz: float | None,
         thread_counts: tuple[int, ...], seconds: float, rounds: int,
         providers: tuple[str, ...], provider_option: tuple[str, ...], dims: tuple[str, ...],
         input_file: str | None, io_binding: bool, dry_run: bool, out: Path | None,
         clear: bool, fmt: str) -> None:
    """Time onnxruntime's thread and spinning settings for MODEL on this machine, at the
    batch size and pace it will be called with, and record the fastest in the file. Model,
    `edge-infer run` and `edge-infer bench` then use it on this kind of machine (same CPU and
    core count) wherever --threads and --spin are not given; elsewhere the file runs with
    onnxruntime's defaults. Run it on the device itself: a setting measured on a workstation
    says nothing about a Raspberry Pi.

    \b
    Examples:
      edge-infer tune model.int8.onnx                  # batch 1, back to back
      edge-infer tune model.onnx -b 32 --dry-run       # show, write nothing
      edge-infer tune model.onnx --rate 30 --io-binding   # a 30 fps camera loop
      edge-infer tune model.onnx --clear               # forget this machine's setting
    """
    from .. import tuned as recorded
    from ..modelfile import read_model_info

    path = Path(model_path)
    read_model_info(path)  # one clear line for a missing, truncated or non-ONNX file
    if out is not None and out.resolve() == path.resolve():
        out = None
    if clear:
        if dry_run:
            raise UsageError("--clear and --dry-run: nothing to do")
        host = recorded.this_host()
        left = recorded.record(str(path), None, str(out) if out else None, host=host)
        click.echo(f"removed the setting for {host.phrase()} from {out or path}; "
                   f"{len(left)} other machine{'s' if len(left) != 1 else ''} left")
        return
    from ..tune import TuneConfig, candidates
    from ..tune import tune as run_tune

    options = parse_provider_options(provider_option)
    config = TuneConfig(batch_size, rate_hz, tuple(thread_counts), seconds, rounds,
                        tuple(providers) or ("auto",),
                        tuple((k, tuple(v.items())) for k, v in options.items()),
                        _parse_dims(dims), io_binding)
    inputs = (lambda model: _load_input(input_file, model)) if input_file else None
    total = len(candidates(recorded.this_host().cores, config.threads)) * rounds
    show = sys.stderr.isatty() and fmt == "table"
    with click.progressbar(length=total, label="tuning", file=sys.stderr,
                           hidden=not show) as bar:
        result = run_tune(path, config, inputs, progress=bar.update)
    doc = result.to_dict()
    written = None
    if not dry_run:
        target = out or path
        recorded.record(str(path), result.entry(), str(out) if out else None)
        written = str(target)
    doc["written"] = written
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(table(doc))
    click.echo(summary(doc))
    if written:
        click.echo(f"recorded in {written} ({recorded.KEY}): Model, `edge-infer run` and "
                   f"`edge-infer bench` use it on {result.host.phrase()}; --threads (and bench's "
                   "--spin/--no-spin) override it")
    else:
        click.echo("--dry-run: nothing written")
