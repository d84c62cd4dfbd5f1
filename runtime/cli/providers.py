"""``edge-infer providers``: what this onnxruntime build offers and what ``auto`` picks."""

from __future__ import annotations

import json
from typing import Any

import click

from . import debug_option


def providers_dict() -> dict[str, Any]:
    import onnxruntime

    from ..providers import PROVIDERS, auto_order, available, load_failure, short_name

    have = available()  # onnxruntime's list and the plugin packages installed beside it
    rows = []
    for s in PROVIDERS.values():
        why = load_failure(s) if s.ort_name in have else None
        rows.append({"name": s.short, "onnxruntime_name": s.ort_name,
                     "available": s.ort_name in have and why is None,
                     "cannot_load": why, "description": s.description,
                     "options": dict(s.aliases)})
    failed = {r["onnxruntime_name"] for r in rows if r["cannot_load"]}
    return {
        "onnxruntime": onnxruntime.__version__,
        "device": onnxruntime.get_device(),
        "available": [short_name(p) for p in have if p not in failed],
        "auto": [s.short for s in auto_order(have, load_failure)],
        "providers": rows,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@debug_option
def providers(fmt: str) -> None:
    """List the execution providers edge-infer knows, which this onnxruntime build has, and
    the order 'auto' uses."""
    d = providers_dict()
    if fmt == "json":
        click.echo(json.dumps(d, indent=2))
        return
    rows = d["providers"]
    nw = max(len(r["name"]) for r in rows)
    ow = max(len(r["onnxruntime_name"]) for r in rows)
    lines = [f"onnxruntime {d['onnxruntime']} ({d['device']})",
             f"{'name'.ljust(nw)}  {'available':<9}  {'onnxruntime name'.ljust(ow)}  description"]
    for r in rows:
        mark = "yes" if r["available"] else "no *" if r["cannot_load"] else "-"
        lines.append(f"{r['name'].ljust(nw)}  {mark:<9}  {r['onnxruntime_name'].ljust(ow)}  "
                     f"{r['description']}")
    lines.append(f"auto picks: {', '.join(d['auto'])}")
    lines += [f"* {r['name']} is installed but cannot load: {r['cannot_load']}"
              for r in rows if r["cannot_load"]]
    click.echo("\n".join(lines))
