"""Where a call's time goes, node by node: onnxruntime's profiler, summarised.

A latency figure says how long a call takes; this says which nodes take it and on which
provider they ran, the two questions a slow model raises on a device:

- which operators dominate. The digits ``cnn``'s static INT8 model spends most of a call in
  its two ``QLinearConv`` nodes, and the first (one input channel) costs several times its
  float32 ``Conv`` (BENCHMARKS.md, "INT8 on this CPU");
- which nodes a GPU provider left to the CPU. Every node of the trace names its provider, and
  each ``MemcpyToHost``/``MemcpyFromHost`` node is a copy between the devices.

The names are those of the graph onnxruntime runs after its optimisations (fused nodes such as
``conv2d_1/BiasAdd_token_4``), not of the file. "Outside operators" is the part of a call that
no node's kernel accounts for: onnxruntime's scheduling, allocation and input/output handling.

The profiler adds its own cost to every node, inside the span it times: on the digits ``cnn``
here (2 threads, onnxruntime 1.32) a ``Reshape`` that copies 1 KiB read 10 us, and a profiled
batch-1 call of the INT8 model took 170 us against 69 us unprofiled. So the figures are shares
of a profiled call, not latencies, and on nodes of a few microseconds they are mostly the
profiler's; ``bench --profile`` prints the cost per node next to them. :func:`profile` runs
its calls in a session of its own, after the timed ones, so no latency figure includes it.

Reads the trace with ``json`` only: no dependency beyond onnxruntime and numpy.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from .errors import ModelRunError

KERNEL = "_kernel_time"  # onnxruntime's event for a node's own work (besides its fences)


@dataclass(frozen=True)
class NodeTime:
    name: str
    op: str
    provider: str  # short name: cpu, cuda, tensorrt, ...
    us: float  # median microseconds per call


@dataclass(frozen=True)
class OperatorProfile:
    calls: int
    run_us: float  # median microseconds of a whole profiled call
    nodes: tuple[NodeTime, ...]  # slowest first

    @property
    def operator_us(self) -> float:
        return sum(n.us for n in self.nodes)

    @property
    def outside_us(self) -> float:
        """What no node's kernel accounts for (never below 0: clocks differ slightly)."""
        return max(0.0, self.run_us - self.operator_us)

    def by_op(self) -> list[tuple[str, float, int]]:
        """(operator type, microseconds per call, nodes), slowest first."""
        totals: dict[str, list[float]] = {}
        for n in self.nodes:
            entry = totals.setdefault(n.op, [0.0, 0])
            entry[0] += n.us
            entry[1] += 1
        return sorted(((op, us, int(k)) for op, (us, k) in totals.items()),
                      key=lambda t: -t[1])

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "run_us": self.run_us, "operator_us": self.operator_us,
                "outside_us": self.outside_us,
                "nodes": [{"name": n.name, "op": n.op, "provider": n.provider, "us": n.us}
                          for n in self.nodes],
                "by_op": {op: us for op, us, _ in self.by_op()}}


def summarise(events: Sequence[Mapping[str, Any]], windows: Sequence[tuple[int, int]]
              ) -> list[OperatorProfile]:
    """One profile per window of calls: ``(first, end)`` index the trace's calls
    (``model_run`` events) in the order they were made, ``end`` excluded. A node event belongs
    to the call whose span holds it. Figures are medians over the calls, so one call that the
    system interrupted (a 4 ms stall among 0.05 ms calls happens here) does not move them."""
    from bisect import bisect_right

    from .providers import short_name

    runs = sorted((e for e in events if e.get("cat") == "Session"
                   and e.get("name") == "model_run"), key=lambda e: e["ts"])
    starts = [e["ts"] for e in runs]
    # node -> [op, provider, {call index: microseconds}]
    per_node: dict[str, list[Any]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith(KERNEL):
            continue
        call = bisect_right(starts, e["ts"]) - 1
        if call < 0 or e["ts"] > starts[call] + runs[call]["dur"]:
            continue
        args = e.get("args") or {}
        entry = per_node.setdefault(e["name"][:-len(KERNEL)], [
            args.get("op_name", "?"), short_name(args.get("provider", "?")), {}])
        entry[2][call] = entry[2].get(call, 0) + e["dur"]  # a node in a loop runs repeatedly
    profiles = []
    for first, end in windows:
        calls = range(first, min(end, len(runs)))
        if len(calls) < end - first or not calls:
            raise ModelRunError(f"onnxruntime's profile holds {len(runs)} calls; expected "
                                f"calls {first} to {end - 1}")
        found = []
        for name, (op, provider, times) in per_node.items():
            if any(c in times for c in calls):
                found.append(NodeTime(name, op, provider,
                                      float(median([times.get(c, 0) for c in calls]))))
        found.sort(key=lambda t: -t.us)
        profiles.append(OperatorProfile(len(calls), float(median([runs[c]["dur"] for c in calls])),
                                        tuple(found)))
    return profiles


NO_LAYER = "(no layer)"  # nodes onnxruntime or the converter added outside any layer scope


def layer_times(nodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Microseconds per call for each layer (the first scope of a node's name, as ``info`` and
    ``quantize --exclude`` read it: ``conv2d_1`` for ``conv2d_1/BiasAdd_token_4``), slowest
    first; nodes without a scope (a ``ReorderOutput`` onnxruntime inserts, say) go under
    :data:`NO_LAYER`. Takes the ``nodes`` of :meth:`OperatorProfile.to_dict`."""
    from .modelfile import layer_of

    totals: dict[str, float] = {}
    for node in nodes:
        layer = layer_of(node["name"]) or NO_LAYER
        totals[layer] = totals.get(layer, 0.0) + node["us"]
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def nodes_by_provider(nodes: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The operator types each provider ran, in node order (the ``nodes`` of
    :meth:`OperatorProfile.to_dict`): where a GPU provider left nodes to the CPU."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        found.setdefault(node["provider"], []).append(node["op"])
    return found


def profiler_cost_us(batch: Mapping[str, Any]) -> float | None:
    """The profiler's own cost per node, estimated from a ``bench`` batch row: how much longer
    a profiled call took than the timed p50, spread over the nodes (None without a profile)."""
    prof = batch.get("operators")
    if not prof or not prof["nodes"]:
        return None
    return max(0.0, (prof["run_us"] - batch["latency_ms"]["p50"] * 1000) / len(prof["nodes"]))


# Past this share of a profiled call spent in the profiler itself, per-layer figures say more
# about the profiler than about the layers (the digits cnn at batch 1: about 70%; at batch 64:
# about 20%), and models are not compared layer by layer.
MAX_PROFILER_SHARE = 1 / 3
# Layer times closer than this share are the same time: medians of profiled calls move by a
# few percent between runs.
SAME_TIME = 0.05


def _same_time(a: float, b: float) -> bool:
    """Whether two layer times differ by less than ``SAME_TIME`` of the larger."""
    return abs(a - b) < SAME_TIME * max(a, b)


def profiler_share(batch: Mapping[str, Any]) -> float | None:
    """The part of a profiled call that is the profiler's own cost (see
    :func:`profiler_cost_us`); None without a profile."""
    cost = profiler_cost_us(batch)
    if cost is None:
        return None
    prof = batch["operators"]
    return cost * len(prof["nodes"]) / prof["run_us"] if prof["run_us"] > 0 else 1.0


def profiler_decides(batches: Sequence[Mapping[str, Any]]) -> float | None:
    """The largest profiler share among these ``bench`` batch rows when it is over
    :data:`MAX_PROFILER_SHARE` (the models are then not compared layer by layer), else None.
    A row without a profile counts as deciding (share 1)."""
    worst = max((1.0 if (share := profiler_share(b)) is None else share for b in batches),
                default=0.0)
    return worst if worst > MAX_PROFILER_SHARE else None


@dataclass(frozen=True)
class LayerComparison:
    """Several models' time per layer (same network: float32, INT8, fp16), for a side-by-side
    table: ``layers`` in the first model's order (slowest first), then layers only the others
    have; ``times[i]`` is model i's :func:`layer_times`."""

    layers: tuple[str, ...]
    times: tuple[dict[str, float], ...]
    outside_ops: tuple[tuple[str, ...], ...] = ()  # per model: operator types under NO_LAYER

    @classmethod
    def of(cls, node_lists: Sequence[Sequence[Mapping[str, Any]]]) -> LayerComparison:
        from .modelfile import layer_of

        times = tuple(layer_times(nodes) for nodes in node_lists)
        layers = list(times[0]) if times else []
        layers += [k for t in times[1:] for k in t if k not in layers]
        outside = tuple(tuple(dict.fromkeys(n["op"] for n in nodes if not layer_of(n["name"])))
                        for nodes in node_lists)
        return cls(tuple(layers), times, outside)

    def outside_change(self, other: int = 1) -> tuple[float, float, tuple[str, ...]] | None:
        """When the time outside any layer (nodes onnxruntime or the converter added: a
        ``Transpose`` between layouts, say) changed more between the first model and model
        ``other`` than any layer's did, and by ``SAME_TIME`` or more: (first's us, other's
        us, other's operator types there). Else None: :meth:`biggest_change` tells the
        story."""
        first = self.times[0].get(NO_LAYER, 0.0)
        second = self.times[other].get(NO_LAYER, 0.0)
        layer = self._largest_change(other)
        if layer is not None and abs(layer[2] - layer[1]) >= abs(second - first):
            return None
        if second == first or _same_time(first, second):
            return None
        return first, second, self.outside_ops[other] if self.outside_ops else ()

    def biggest_change(self, other: int = 1) -> tuple[str, float, float] | None:
        """The layer whose time differs most between the first model and model ``other``:
        (layer, first's us, other's us); None when they share no layer, or when no layer's
        time changed by ``SAME_TIME`` or more (a weight-only model runs the float32 graph, and
        "lost the most in lstm_1: 614.5 against 617.0 us" would only report noise)."""
        change = self._largest_change(other)
        if change is None:
            return None
        return None if _same_time(change[1], change[2]) else change

    def _largest_change(self, other: int) -> tuple[str, float, float] | None:
        """The shared layer whose time differs most, however little."""
        first, second = self.times[0], self.times[other]
        shared = [k for k in first if k in second and k != NO_LAYER]
        if not shared:
            return None
        layer = max(shared, key=lambda k: abs(second[k] - first[k]))
        return layer, first[layer], second[layer]


def profile(make_model: Callable[[str], Any], feeds: Sequence[Mapping[str, Any]], calls: int,
            warmup: int) -> list[OperatorProfile]:
    """Profile ``calls`` calls on each feed after ``warmup`` untimed ones, all in one session
    (a TensorRT engine is built once). ``make_model(prefix)`` returns a ``Model`` whose session
    has onnxruntime's profiler on and writes its trace under ``prefix``
    (``SessionConfig(profile_prefix=prefix)``)."""
    with tempfile.TemporaryDirectory(prefix="edge-infer-profile-") as folder:
        model = make_model(os.path.join(folder, "trace"))
        windows = []
        done = 0
        for feed in feeds:
            for _ in range(warmup + calls):
                model.run(feed)
            windows.append((done + warmup, done + warmup + calls))
            done += warmup + calls
        trace = model.session.end_profiling()
        with open(trace) as fh:
            events = json.load(fh)
    return summarise(events, windows)
