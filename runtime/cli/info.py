"""``edge-infer info MODEL``: what is inside a model file, read without onnxruntime or onnx."""

from __future__ import annotations

import json
from typing import Any

import click

from . import debug_option


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def info_dict(info: Any) -> dict[str, Any]:
    from ..compat import requirements
    from ..tuned import KEY, parse, this_host

    entries = parse(info.metadata.get(KEY))
    here = this_host() if entries else None  # reads /proc/cpuinfo: only when there is a need
    tuned = [e.to_dict() | {"this_machine": e.host == here} for e in entries]
    return {
        "path": info.path,
        "size_bytes": info.size_bytes,
        "ir_version": info.ir_version,
        "producer": {"name": info.producer_name, "version": info.producer_version},
        "domain": info.domain,
        "model_version": info.model_version,
        "graph_name": info.graph_name,
        "opsets": info.opsets,
        "inputs": [s.to_dict() for s in info.inputs],
        "outputs": [s.to_dict() for s in info.outputs],
        "parameters": info.parameters,
        "weights_bytes": info.weights_bytes,
        "weight_types": info.weight_types(),
        "external_data": info.external_data,
        "quantization": info.quantization(),
        "requires": [r.to_dict() for r in requirements(info)],
        "tuned": tuned,
        "nodes": len(info.nodes),
        "operators": info.op_counts(),
        "layers": [layer.to_dict() for layer in info.layers()],
        "metadata": info.metadata,
    }


def _quant_line(q: dict[str, Any]) -> str:
    fmt = q["format"]
    if fmt == "none":
        return "no (float32)"
    if fmt in ("fp16", "bf16"):
        return f"{fmt.upper()} weights"
    parts = []
    if q.get("weight_types"):
        parts.append(f"{'/'.join(q['weight_types'])} weights")
    if q.get("activation_types"):
        parts.append(f"{'/'.join(q['activation_types'])} activations")
    parts.append("per-channel" if q.get("per_channel") else "per-tensor")
    return f"{fmt} ({', '.join(parts)})" if parts else fmt


def info_table(d: dict[str, Any]) -> str:
    from ..compat import Requirement
    from ..signature import format_shape
    from ..tuned import Tuned

    producer = " ".join(p for p in (d["producer"]["name"], d["producer"]["version"]) if p)
    opsets = ", ".join(f"{k} {v}" for k, v in d["opsets"].items())
    weight_types = ", ".join(f"{t} {n:,}" for t, n in d["weight_types"].items())
    rows = [
        ("model", f"{d['path']} ({_size(d['size_bytes'])})"),
        ("producer", producer or "-"),
        ("format", f"IR {d['ir_version']}, opset {opsets or '-'}"),
        ("parameters", f"{d['parameters']:,} ({_size(d['weights_bytes'])}"
                       f"{': ' + weight_types if weight_types else ''})"
                       + (", external data" if d["external_data"] else "")),
        ("quantized", _quant_line(d["quantization"])),
        *(("needs", Requirement.from_dict(r).phrase()) for r in d["requires"]),
        *(("tuned", Tuned.from_dict(t).phrase() + ("; this machine" if t["this_machine"]
                                                   else "; not this machine"))
          for t in d.get("tuned", [])),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]

    def tensors(title: str, specs: list[dict[str, Any]]) -> None:
        lines.append(f"{title}:")
        nw = max([len(s["name"]) for s in specs] + [1])
        for s in specs:
            lines.append(f"  {s['name'].ljust(nw)}  {s['type']:<8} {format_shape(s['shape'])}")

    tensors("inputs", d["inputs"])
    tensors("outputs", d["outputs"])
    if d["metadata"]:
        lines.append("metadata:")
        kw = max(len(k) for k in d["metadata"])
        for key, value in d["metadata"].items():
            shown = value if len(value) <= 80 else value[:77] + "..."
            lines.append(f"  {key.ljust(kw)}  {shown}")
    lines.append(f"operators ({d['nodes']} nodes):")
    ops = [f"{op} {n}" for op, n in d["operators"].items()]
    for i in range(0, len(ops), 6):
        lines.append("  " + ", ".join(ops[i:i + 6]))
    if d["layers"]:
        lines.append(f"layers ({len(d['layers'])}, from node names; `quantize --exclude` "
                     "takes them):")
        nw = max(len(layer["name"]) for layer in d["layers"])
        for layer in d["layers"]:
            n = layer["operators"]
            lines.append(f"  {layer['name'].ljust(nw)}  {n:>3} operator{'s' if n != 1 else ' '}"
                         f"  {layer['parameters']:>10,} parameters")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_path", metavar="MODEL")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@debug_option
def info(model_path: str, fmt: str) -> None:
    """Show what MODEL holds: inputs, outputs, opsets, producer, size, parameters,
    metadata, quantization (QDQ, QOperator, dynamic, weight-only, FP16), operator counts and
    layers."""
    from ..modelfile import read_model_info

    d = info_dict(read_model_info(model_path))
    click.echo(json.dumps(d, indent=2) if fmt == "json" else info_table(d))
