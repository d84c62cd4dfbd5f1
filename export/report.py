"""The pipeline's ``report.json`` (every figure, machine-readable) and ``report.md`` (the same
figures as tables, with the training curves, confusion matrix and accuracy/size/latency plot).

Paths inside the report are relative to the run folder, so the folder can be moved or shared.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edge_infer.runtime.atomic import atomic_open
from edge_infer.runtime.compat import Requirement


def kib(n: int) -> str:
    """A byte count as ``12.3 KiB``, as the report and the quantize table print sizes."""
    return f"{n / 1024:.1f} KiB"


# Why a quantized file can be no smaller than its float32 source; said by quantize and pipeline.
NOT_SMALLER = ("quantization saved nothing here: on small layers the scales, zero points and "
               "quantize operators cost more than INT8 saves, and onnxruntime's INT8 recipes "
               "leave some operators (GRU among them) in float32")


# How much lower a model's batch-1 p50 must be to call it faster than the one the pipeline
# deploys: the pipeline's 200-call timings move by a few percent from one run to the next.
FASTER_MARGIN = 0.05


def foreign_target(report: dict[str, Any]) -> str | None:
    """The device profile the models were made for, when it is not this machine's: then the
    timings here say nothing about the target (a Raspberry Pi's, say)."""
    mach = report.get("machine", {})
    device, host = mach.get("device_profile"), mach.get("host_profile")
    return device if device and host and device != host else None


def faster_than_best(report: dict[str, Any]) -> dict[str, Any] | None:
    """The summary row of the model fastest at batch 1 when it beats the deployed one there by
    :data:`FASTER_MARGIN` and is not slower at the larger batch (float32, where INT8 kernels
    gain nothing on this CPU), else None.

    Batch 1 alone is not enough: on the digits ``cnn`` with VNNI, INT8 and float32 are level
    at batch 1 (a call there is mostly onnxruntime's fixed cost, and runs differ by 10%),
    while INT8 has 1.5x the throughput at batch 64; a hint to deploy float32 would cost that.
    Nor is there a hint for a weight-only model: once loaded it runs the float32 graph, so any
    difference is the timing's noise."""
    rows = report.get("summary") or []
    best = next((r for r in rows if r["name"] == report.get("best")), None)
    if best is None or foreign_target(report) or _runs_float32_graph(report, best):
        return None
    limit = best["latency_b1_ms"] * (1 - FASTER_MARGIN)

    def not_slower_in_batches(row: dict[str, Any]) -> bool:
        mine, theirs = row.get("throughput_n"), best.get("throughput_n")
        if mine is None or theirs is None or row.get("batch_n") != best.get("batch_n"):
            return True
        return mine >= theirs * (1 - FASTER_MARGIN)

    return min((r for r in rows if r is not best and r["latency_b1_ms"] < limit
                and not_slower_in_batches(r)),
               key=lambda r: r["latency_b1_ms"], default=None)


def _runs_float32_graph(report: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether ``row`` is the quantized model of a recipe whose graph, once onnxruntime has
    loaded it, is float32's (weight-only)."""
    from .quantize import computes_in_float32

    q = report.get("quantization") or {}
    return computes_in_float32(q.get("method")) and row.get("file") == q.get("path")


def accuracy_change(drop_points: float) -> str:
    """An accuracy drop in points as words: ``drop 0.42 points``, ``gain 0.28 points`` (a
    quantized model can score higher, and "drop -0.28" reads as a loss), or ``no change``."""
    if abs(drop_points) < 0.005:
        return "no change"
    return f"{'drop' if drop_points > 0 else 'gain'} {abs(drop_points):.2f} points"


def _metric(ev: dict[str, Any]) -> tuple[str, float | None]:
    for key in ("accuracy", "mse"):
        if key in ev:
            return key, ev[key]
    return "metric", None


def tradeoff_plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Three bar panels: quality metric, file size and batch-1 latency, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    metric = rows[0]["metric"]
    panels = [(metric, [r["metric_value"] or 0 for r in rows], "{:.4f}"),
              ("file size (KiB)", [r["size_bytes"] / 1024 for r in rows], "{:.1f}"),
              ("latency, batch 1, p50 (ms)", [r["latency_b1_ms"] for r in rows], "{:.3f}")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    colors = ["#4c72b0", "#dd8452", "#55a868"][:len(rows)]
    for ax, (label, values, fmt) in zip(axes, panels):
        bars = ax.bar(names, values, color=colors)
        ax.set_title(label, fontsize=10)
        for bar, value in zip(bars, values):
            ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.margins(y=0.15)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _settings_text(settings: dict[str, Any]) -> str:
    """``device rpi5, per-channel, S8S8, reduce_range, minmax calibration on 256 samples``."""
    code = {"uint8": "U8", "int8": "S8"}
    parts = [f"device {settings['device']}"]
    if "per_channel" in settings:
        parts.append("per-channel" if settings["per_channel"] else "per-tensor")
    if "activation_type" in settings:
        parts.append(code[settings["activation_type"]] + code[settings["weight_type"]])
    elif "weight_type" in settings:
        parts.append(f"{settings['weight_type']} weights")
    if settings.get("reduce_range"):
        parts.append("reduce_range")
    if settings.get("exclude"):
        parts.append("float layers " + ", ".join(settings["exclude"]))
    if "calibrate" in settings:
        parts.append(f"{settings['calibrate']} calibration on {settings['calibration_size']} "
                     "samples")
    return ", ".join(parts)


def _layer_lines(layers: list[dict[str, Any]]) -> list[str]:
    """The per-layer output error (export/sensitivity.py) as a markdown table."""
    lines = ["Output error per layer, accumulated along the graph (where it jumps is the layer "
             "to keep in float with `--exclude`):", "", "| layer | relative error | SQNR |",
             "|---|---:|---:|"]
    for e in layers:
        sqnr = "exact" if e["sqnr_db"] is None else f"{e['sqnr_db']:.1f} dB"
        lines.append(f"| {e['layer']} | {e['relative_error']:.2%} | {sqnr} |")
    return lines + [""]


def _time_lines(report: dict[str, Any]) -> list[str]:
    """Each model's time per layer at the largest batch, side by side (``bench --profile``'s
    figures from the benchmark stage), and the layer where the quantized model gained or lost
    the most: where INT8 pays off on this machine and where it does not."""
    from edge_infer.runtime.profile import LayerComparison, profiler_cost_us, profiler_decides

    rows = report["summary"]
    batches = [report["benchmark"][r["name"]]["batches"][-1] for r in rows]
    if not all(b.get("operators") for b in batches):
        return []  # not profiled (a report from before the benchmark stage profiled)
    files = " ".join(r["file"] for r in rows)
    share = profiler_decides(batches)
    if share is not None:
        return ["## Time per layer", "",
                f"Not compared: at batch {batches[0]['batch_size']} the profiler's own cost "
                f"is {share:.0%} of a profiled call on this machine, and its figures would "
                f"decide the comparison (`edge-infer bench {files} -b 256 --profile` from "
                "this folder profiles a larger batch).", ""]
    costs = [profiler_cost_us(b) for b in batches]
    cost = sum(c for c in costs if c is not None) / len(costs)
    table = LayerComparison.of([b["operators"]["nodes"] for b in batches])
    size = batches[0]["batch_size"]
    pair = len(rows) == 2
    header = ("| layer | " + " | ".join(r["name"] for r in rows)
              + (f" | {rows[1]['name']} speed-up |" if pair else " |"))
    lines = ["## Time per layer", "",
             f"Batch {size}, onnxruntime's profiler, medians of "
             f"{batches[0]['operators']['calls']} calls (`edge-infer bench {files} -b {size} "
             "--profile` from this folder). "
             f"Every node's figure includes the profiler's own cost, about {cost:.0f} us a "
             "node here, so small layers read high.",
             "", header, "|---|" + "---:|" * (len(rows) + pair)]
    for layer in table.layers:
        cells = [f"{t[layer]:.1f} us" if layer in t else "-" for t in table.times]
        if pair:
            a, b = (t.get(layer) for t in table.times)
            cells.append(f"{a / b:.2f}x" if a and b else "")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines.append("")
    change = table.biggest_change() if pair else None
    if change is not None:
        layer, before, after = change
        how = "lost" if after > before else "gained"
        lines += [f"{rows[1]['name']} {how} the most in `{layer}`: {before:.1f} us as "
                  f"{rows[0]['name']}, {after:.1f} us as {rows[1]['name']}.", ""]
    outside = table.outside_change() if pair else None
    if outside is not None:
        before, after, ops = outside
        lines += [f"More changed outside any layer, in nodes onnxruntime added "
                  f"({', '.join(f'`{op}`' for op in ops) or 'none'}): {before:.1f} us as "
                  f"{rows[0]['name']}, {after:.1f} us as {rows[1]['name']}.", ""]
    return lines


def _machine(device: Any) -> dict[str, Any]:
    from edge_infer.devices.profiles import detect
    from edge_infer.runtime.bench import machine

    return machine() | {"device_profile": device.name, "host_profile": detect()}


def _commands(config: Any, out: Path, method: str, device: str) -> list[str]:
    return [f"edge-infer train {config.architecture} --dataset {config.dataset} "
            f"--seed {config.seed} --out {out}"
            + (f" --epochs {config.epochs}" if config.epochs else ""),
            f"edge-infer export {out}",
            f"edge-infer quantize {out / 'model.onnx'} --method {method} --device {device} "
            f"--max-accuracy-drop {config.max_accuracy_drop:g}"
            + "".join(f" --exclude {layer}" for layer in config.exclude)
            + (f" --auto-exclude {config.auto_exclude}" if config.auto_exclude else ""),
            f"edge-infer evaluate {out / 'model.onnx'}"]


def write_report(work: Path, out: Path, *, config: Any, device: Any, trained: Any,
                 exported: Any, quantized: Any, refused: str | None,
                 evaluation: dict[str, dict[str, Any]], bench: dict[str, dict[str, Any]],
                 stage_seconds: dict[str, float], inputs: str, best: str) -> dict[str, Any]:
    from edge_infer.runtime.versions import installed_versions

    rows = []
    for name, ev in evaluation.items():
        metric, value = _metric(ev)
        b = bench[name]
        b1, bn = b["batches"][0], b["batches"][-1]
        rows.append({"name": name, "file": Path(b["model"]).name, "size_bytes": b["size_bytes"],
                     "metric": metric, "metric_value": value,
                     "latency_b1_ms": b1["latency_ms"]["p50"],
                     "latency_b1_p90_ms": b1["latency_ms"]["p90"],
                     "batch_n": bn["batch_size"], "throughput_n": bn["throughput_per_s"]})
    title = f"{config.architecture} on {config.dataset}, {device.name}"
    tradeoff_plot(rows, work / "tradeoff.png", title)
    m = trained.metrics
    report: dict[str, Any] = {
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in vars(config).items()},
        "machine": _machine(device),
        "versions": installed_versions("edge-infer", "onnxruntime", "onnx", "tensorflow",
                                       "keras", "tf2onnx", "numpy"),
        "stage_seconds": stage_seconds,
        "train": {k: m.get(k) for k in ("architecture", "dataset", "parameters", "epochs_run",
                                        "best_epoch", "train_seconds", "samples")}
        | {k: v for k, v in m.items() if k.startswith("test_")},
        "export": {"file": exported.path.name, "size_bytes": exported.size_bytes,
                   "opset": exported.opset, "operators": exported.operators,
                   "parity": exported.parity.to_dict()},
        "quantization": (quantized.report() | {"path": quantized.path.name}) if quantized
        else {"refused": refused},
        "evaluation": evaluation,
        "benchmark": bench,
        "summary": rows,
        "best": best,
        "files": {"inputs": inputs, "curves": "curves.png", "tradeoff": "tradeoff.png",
                  **({"confusion": "confusion.png"} if (work / "confusion.png").exists()
                     else {}),
                  **({"samples": "samples.png"} if (work / "samples.png").exists() else {})},
        "commands": _commands(config, out, quantized.method if quantized else "auto",
                              device.name),
    }
    for ev in report["evaluation"].values():
        ev["model"] = Path(ev["model"]).name
    for b in report["benchmark"].values():
        b["model"] = Path(b["model"]).name
    with atomic_open(work / "report.json", "w") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    with atomic_open(work / "report.md", "w") as fh:
        fh.write(markdown(report, title))
    return report


def markdown(report: dict[str, Any], title: str) -> str:
    rows = report["summary"]
    base = rows[0]
    lines = [f"# {title}", ""]
    mach = report["machine"]
    lines += [f"{mach['cpu']}, {mach['cores']} cores, {mach['platform']}; device profile "
              f"`{mach['device_profile']}`; onnxruntime {report['versions'].get('onnxruntime')}"
              f", tensorflow {report['versions'].get('tensorflow')}.", ""]
    lines += ["| model | file | size | " + base["metric"] + " | latency b1 p50 | latency b1 p90"
              f" | throughput b{base['batch_n']} |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        size = kib(r["size_bytes"]) + (f" ({r['size_bytes'] / base['size_bytes']:.0%})"
                                         if r is not base else "")
        value = "n/a" if r["metric_value"] is None else f"{r['metric_value']:.4f}"
        speed = "" if r is base else f" ({base['latency_b1_ms'] / r['latency_b1_ms']:.2f}x)"
        lines.append(f"| {r['name']} | `{r['file']}` | {size} | {value} | "
                     f"{r['latency_b1_ms']:.3f} ms{speed} | {r['latency_b1_p90_ms']:.3f} ms | "
                     f"{r['throughput_n']:,.0f}/s |")
    lines.append("")
    q = report["quantization"]
    if "refused" in q:
        # The accuracy guard, a model onnxruntime cannot open, or a recipe that found nothing
        # to quantize: the reason says which.
        lines += [f"Quantization was refused, so `{base['file']}` is the result: "
                  f"{q['refused']}.", ""]
    else:
        drop = q.get("accuracy_drop_points")
        parts = [f"{q['method']} ({_settings_text(q['settings'])})"]
        if drop is not None:
            parts.append(f"accuracy {accuracy_change(drop)}")
        if q.get("top1_agreement") is not None:
            parts.append(f"top-1 agreement {q['top1_agreement']:.2%}")
        parts.append(f"max |diff| {q['max_abs_diff']:.3g}")
        parts += [f"needs {Requirement.from_dict(r).phrase()}" for r in q.get("requires", [])]
        lines += ["Quantization: " + "; ".join(parts) + ".", ""]
        if q.get("layers"):
            lines += _layer_lines(q["layers"])
        slower = faster_than_best(report) is base
        target = foreign_target(report)
        if target is not None:
            files = " ".join(r["file"] for r in rows)
            lines += [f"Latency and throughput were measured on this machine "
                      f"(`{mach['host_profile']}`), not on the `{target}` the models were made "
                      f"for, and say little about it; time them there with `edge-infer bench "
                      f"{files} -b 1 -b 64`.", ""]
        if rows[-1]["size_bytes"] >= base["size_bytes"]:
            lines += [f"The quantized model is not smaller than float32 "
                      f"({rows[-1]['size_bytes'] / base['size_bytes']:.0%} of its size): "
                      f"{NOT_SMALLER}. `{base['file']}` is the result.", ""]
        elif slower:
            why = ("this CPU has no VNNI, so onnxruntime's INT8 kernels gain little over "
                   "float32, and a small model's call is mostly onnxruntime's fixed cost per "
                   "call, which quantization does not reduce"
                   if mach["host_profile"] == "x86-avx2" else
                   "a small model's call is mostly onnxruntime's fixed cost per call, which "
                   "quantization does not reduce, and quantize/dequantize steps add operators")
            lines += [f"The quantized model is slower than float32 on this machine "
                      f"({base['latency_b1_ms'] / rows[-1]['latency_b1_ms']:.2f}x at batch 1): "
                      f"{why}. It is still the smaller file; for speed here, deploy "
                      f"`{base['file']}`.", ""]
    lines += _time_lines(report)
    parity = report["export"]["parity"]
    t = report["train"]
    lines += ["## Training", "",
              f"{t['architecture']}, {t['parameters']:,} parameters, {t['epochs_run']} epochs "
              f"(best {t['best_epoch']}) in {t['train_seconds']:.1f} s; test "
              + ", ".join(f"{k.removeprefix('test_')} {v:.4f}" for k, v in t.items()
                          if k.startswith("test_") and isinstance(v, float)) + ".", "",
              "![training curves](curves.png)", ""]
    files = report["files"]
    if "confusion" in files:
        lines += ["![confusion matrix](confusion.png)", ""]
    if "samples" in files:
        lines += ["![samples](samples.png)", ""]
    lines += ["## Export", "",
              f"`{report['export']['file']}`, opset {report['export']['opset']}, "
              f"{sum(report['export']['operators'].values())} operators; parity with Keras on "
              f"{parity.get('samples')} samples: max |diff| {parity['max_abs_diff']:.3g}"
              + (f", top-1 agreement {parity['top1_agreement']:.2%}"
                 if parity.get("top1_agreement") is not None else "") + ".", "",
              "## Accuracy, size and latency", "", "![tradeoff](tradeoff.png)", ""]
    best = next(r for r in rows if r["name"] == report["best"])
    inputs = files["inputs"]
    lines += ["## Run it", "", "From this folder:", "", "```",
              f"edge-infer run {best['file']} {inputs}", "```", ""]
    faster = faster_than_best(report)
    if faster is not None:
        lines += [f"`{faster['file']}` ({faster['name']}) is faster on this machine at batch 1 "
                  f"({faster['latency_b1_ms']:.3f} against {best['latency_b1_ms']:.3f} ms):",
                  "", "```", f"edge-infer run {faster['file']} {inputs}", "```", ""]
    lines += ["On the device that will run it, `edge-infer tune "
              f"{best['file']}` times onnxruntime's thread settings there at batch 1 (`-b N` "
              "for another batch size) and records the fastest in the file, which `edge-infer "
              "run` and the Python `Model` then use on that kind of machine.", ""]
    lines += ["## Reproduce", "", "The same steps as separate commands:", "", "```",
              *report["commands"], "```", "",
              "Stage times: " + ", ".join(f"{k} {v:.1f} s"
                                          for k, v in report["stage_seconds"].items()) + ".", ""]
    return "\n".join(lines)
