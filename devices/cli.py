"""``edge-infer devices``: the device profiles and which one this machine is."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from edge_infer.runtime.cli import debug_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@debug_option
def devices(fmt: str) -> None:
    """List the device profiles that `quantize --device` and `pipeline --device` take, with
    the recipe each implies; `host` is this machine's."""
    from .profiles import PROFILES, detect

    host = detect()
    if fmt == "json":
        click.echo(json.dumps({"host": host,
                               "profiles": [asdict(p) for p in PROFILES.values()]}, indent=2))
        return
    width = max(len(name) for name in PROFILES) + 2
    lines = []
    for p in PROFILES.values():
        mark = "*" if p.name == host else " "
        lines.append(f"{mark} {p.name.ljust(width)}{p.description}")
        lines.append(f"  {''.ljust(width)}{p.summary()}")
    lines.append(f"* host: this machine ({host})")
    click.echo("\n".join(lines))
