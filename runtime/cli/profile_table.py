"""``edge-infer bench --profile``'s text: where each model's time goes, and several models'
time per layer side by side (the figures are ``runtime/profile.py``'s, from the JSON document
``bench`` writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..profile import (NO_LAYER, LayerComparison, layer_times, nodes_by_provider,
                       profiler_cost_us, profiler_decides)
from .columns import aligned


def _us(value: float) -> str:
    return f"{value / 1000:.3f} ms" if value >= 1000 else f"{value:.1f} us"


def operators_table(doc: dict[str, Any], top: int = 8) -> str:
    """``--profile``: for each model and batch size, its slowest nodes, the time per operator
    type and per layer, what no node accounts for, and the providers when the nodes ran on
    more than one."""
    blocks = []
    for r in doc["results"]:
        for b in r["batches"]:
            prof = b.get("operators")
            if not prof:
                continue
            run = prof["run_us"]

            def share(us: float, run: float = run) -> str:
                return f"{100 * us / run:.0f}%" if run > 0 else "-"

            nodes = prof["nodes"]
            rows = [[n["op"], n["name"], n["provider"], _us(n["us"]), share(n["us"])]
                    for n in nodes[:top]]
            lines = [f"where the time goes: {Path(r['model']).name}, batch {b['batch_size']} "
                     f"(onnxruntime's profiler; medians of {prof['calls']} calls, shares of "
                     "a profiled call)"]
            cost = profiler_cost_us(b)
            if cost:
                timed = b["latency_ms"]["p50"] * 1000
                lines.append(f"  a profiled call took {_us(run)} against {_us(timed)} timed: "
                             f"the profiler adds about {_us(cost)} to each of the {len(nodes)} "
                             "nodes (in their figures)")
            lines += ["  " + line for line in aligned(rows, range(3, 5))]
            if len(nodes) > top:
                rest = sum(n["us"] for n in nodes[top:])
                lines.append(f"  ... {len(nodes) - top} more nodes: {_us(rest)} "
                             f"({share(rest)})")
            lines.append("  by operator: " + ", ".join(
                f"{op} {_us(us)} ({share(us)})" for op, us in prof["by_op"].items()))
            layers = layer_times(nodes)
            if len(layers) > 1:  # names scoped by layer, as edge-infer's exports are
                lines.append("  by layer: " + ", ".join(
                    f"{layer} {_us(us)} ({share(us)})" for layer, us in layers.items()))
            lines.append(f"  outside operators: {_us(prof['outside_us'])} "
                         f"({share(prof['outside_us'])}): onnxruntime's own work per call")
            providers = nodes_by_provider(nodes)
            if len(providers) > 1:
                lines.append("  providers: " + "; ".join(
                    f"{p} {len(ops)} nodes ({', '.join(sorted(set(ops)))})"
                    for p, ops in providers.items()))
            blocks.append("\n".join(lines))
    blocks += _layer_comparisons(doc)
    return "\n\n".join(blocks)


def _layer_comparisons(doc: dict[str, Any]) -> list[str]:
    """With several models, their time per layer side by side for each batch size, each
    against the first (the same network as float32, INT8 and fp16 shares its layer names)."""
    blocks = []
    for size in sorted({b["batch_size"] for r in doc["results"] for b in r["batches"]}):
        named, profiled = [], []
        for r in doc["results"]:
            b = next((b for b in r["batches"] if b["batch_size"] == size), None)
            if b is not None and b.get("operators"):
                named.append(Path(r["model"]).name)
                profiled.append(b)
        table = LayerComparison.of([b["operators"]["nodes"] for b in profiled])
        if len(named) < 2 or len([k for k in table.layers if k != NO_LAYER]) < 2:
            continue
        share = profiler_decides(profiled)
        if share is not None:
            blocks.append(f"time per layer, batch {size}: not compared, the profiler's own "
                          f"cost is {share:.0%} of a profiled call at this size (try a "
                          "larger batch)")
            continue
        rows = [["layer", *named]]
        for layer in table.layers:
            first = table.times[0].get(layer)
            cells = [layer]
            for i, t in enumerate(table.times):
                us = t.get(layer)
                ratio = f" ({first / us:.2f}x)" if i and us and first else ""
                cells.append("-" if us is None else f"{us:.1f}{ratio}")
            rows.append(cells)
        lines = [f"time per layer, batch {size} (us per call, the profiler's cost included; "
                 "in brackets: the first model's time over this one's)"]
        lines += ["  " + line for line in aligned(rows, range(1, len(rows[0])))]
        change = table.biggest_change()
        if change is not None:
            layer, before, after = change
            lines.append(f"  {named[1]} {'lost' if after > before else 'gained'} the most in "
                         f"{layer}: {before:.1f} against {after:.1f} us")
        outside = table.outside_change()
        if outside is not None:
            before, after, ops = outside
            lines.append(f"  and more outside any layer, in nodes onnxruntime added "
                         f"({', '.join(ops) or 'none'}): {before:.1f} against {after:.1f} us")
        blocks.append("\n".join(lines))
    return blocks
