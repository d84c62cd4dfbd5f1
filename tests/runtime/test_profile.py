"""``edge-infer bench --profile``: onnxruntime's trace summarised per node, per call window."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime.cli import cli
from edge_infer.runtime.cli.profile_table import operators_table
from edge_infer.runtime.errors import ModelRunError
from edge_infer.runtime.profile import (NO_LAYER, LayerComparison, layer_times,
                                        nodes_by_provider, profiler_cost_us, profiler_share,
                                        summarise)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from .conftest import _vi, save  # noqa: E402


def _run(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur, "ph": "X"}


def _node(name: str, op: str, ts: int, dur: int, provider="CPUExecutionProvider") -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "ph": "X",
            "args": {"op_name": op, "provider": provider}}


def test_summary_takes_each_windows_calls_and_their_medians():
    events = [_node("before", "Abs", 5, 999)]  # outside every call: ignored
    # call 0 is a warm-up; calls 1-3 are the window; the last call stalls on node "a"
    for call, (a, loop, run) in enumerate([(900, (9, 9), 2000), (5, (2, 3), 30),
                                           (7, (4,), 31), (4000, (5,), 4100)]):
        start = 10_000 * (call + 1)
        events.append(_run(start, run))
        events.append(_node("a", "Conv", start + 1, a))
        events += [_node("loop/body", "Add", start + 2 + i, d, "CUDAExecutionProvider")
                   for i, d in enumerate(loop)]  # a node inside a loop runs several times
        events.append(_node("b", "Conv", start + 3, 1, "CUDAExecutionProvider"))
        events.append({"cat": "Node", "name": "a_fence_before", "ts": start, "dur": 50})
    warm, window = summarise(events, [(0, 1), (1, 4)])
    assert warm.calls == 1 and warm.run_us == 2000
    assert window.calls == 3 and window.run_us == 31  # median of 30, 31, 4100
    by_name = {n.name: n for n in window.nodes}
    assert set(by_name) == {"a", "loop/body", "b"}
    assert by_name["a"].us == 7  # median of 5, 7, 4000: the stall does not move it
    assert by_name["loop/body"].us == 5  # per call 2+3, 4, 5
    assert (by_name["a"].op, by_name["a"].provider) == ("Conv", "cpu")
    assert by_name["b"].provider == "cuda"
    assert [n.name for n in window.nodes] == ["a", "loop/body", "b"]  # slowest first
    assert window.operator_us == 13 and window.outside_us == 18
    assert window.by_op() == [("Conv", 8, 2), ("Add", 5, 1)]
    assert nodes_by_provider(window.to_dict()["nodes"]) == {"cpu": ["Conv"],
                                                            "cuda": ["Add", "Conv"]}
    doc = window.to_dict()
    assert doc["by_op"] == {"Conv": 8, "Add": 5} and doc["outside_us"] == 18
    assert doc["nodes"][0] == {"name": "a", "op": "Conv", "provider": "cpu", "us": 7}


def test_a_window_past_the_trace_is_an_error():
    with pytest.raises(ModelRunError, match="holds 1 calls; expected calls 1 to 2"):
        summarise([_run(0, 5)], [(1, 3)])


def _heavy_and_light(path):
    """x [N, 512] -> MatMul 512x512 (``heavy``) -> Abs (``light``): the MatMul dominates."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(512, 512)).astype(np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="heavy"),
             helper.make_node("Abs", ["h"], ["y"], name="light")]
    graph = helper.make_graph(nodes, "hl", [_vi("x", TensorProto.FLOAT, ["N", 512])],
                              [_vi("y", TensorProto.FLOAT, ["N", 512])], [w])
    return save(graph, path)


def test_bench_profile_finds_the_heavy_node(tmp_path, monkeypatch):
    model = _heavy_and_light(tmp_path / "hl.onnx")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["bench", str(model), "-b", "1", "-b", "64", "-n", "7",
                                      "--warmup", "1", "--profile", "-p", "cpu", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["config"]["profile"] is True
    for batch in doc["results"][0]["batches"]:
        prof = batch["operators"]
        assert prof["calls"] == 7
        assert {n["name"] for n in prof["nodes"]} == {"heavy", "light"}
        assert all(n["provider"] == "cpu" for n in prof["nodes"])
        assert prof["by_op"] == {n["op"]: n["us"] for n in prof["nodes"]}
        assert prof["operator_us"] == pytest.approx(sum(n["us"] for n in prof["nodes"]))
        assert prof["outside_us"] >= 0 and prof["run_us"] > 0
    big = doc["results"][0]["batches"][1]["operators"]
    assert big["nodes"][0]["name"] == "heavy" and big["nodes"][0]["op"] == "MatMul"
    assert big["nodes"][0]["us"] > 0.5 * big["run_us"]
    # the trace went to a temporary folder that is gone, not to the working directory
    # (onnxruntime itself leaves a .ses file in TMPDIR when it is imported)
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []
    assert list(tmp_path.glob("*.json")) == []


def test_without_profile_there_is_no_operators_figure(models):
    result = CliRunner().invoke(cli, ["bench", str(models.classifier()), "-n", "3", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["config"]["profile"] is False
    assert doc["results"][0]["batches"][0]["operators"] is None


def test_table_shows_the_profile_after_the_timings(tmp_path):
    model = _heavy_and_light(tmp_path / "hl.onnx")
    result = CliRunner().invoke(cli, ["bench", str(model), "-n", "5", "--warmup", "1",
                                      "--profile"])
    assert result.exit_code == 0, result.output
    timings, profile = result.output.split("\n\n", 1)
    assert timings.splitlines()[2].startswith("hl.onnx")
    lines = profile.splitlines()
    assert lines[0].startswith("where the time goes: hl.onnx, batch 1 (onnxruntime's "
                               "profiler; medians of 5 calls")
    assert {line.split()[1] for line in lines[1:] if line.split()[0] in ("MatMul", "Abs")} \
        == {"heavy", "light"}
    assert any(line.startswith("  by operator: ") for line in lines)
    assert any(line.startswith("  outside operators: ") for line in lines)
    assert not any(line.startswith("  providers:") for line in lines)  # one provider


def _doc(nodes, run_us=100.0, p50_ms=0.05):
    prof = {"calls": 10, "run_us": run_us, "operator_us": sum(n["us"] for n in nodes),
            "outside_us": max(0.0, run_us - sum(n["us"] for n in nodes)), "nodes": nodes,
            "by_op": {}}
    for n in nodes:
        prof["by_op"][n["op"]] = prof["by_op"].get(n["op"], 0) + n["us"]
    return {"results": [{"model": "m.onnx", "batches": [
        {"batch_size": 1, "latency_ms": {"p50": p50_ms}, "operators": prof}]}]}


def test_operators_table_names_providers_cuts_long_lists_and_states_the_profiler_cost():
    nodes = [{"name": f"n{i}", "op": "Conv", "provider": "tensorrt", "us": 10.0 - i}
             for i in range(5)]
    nodes += [{"name": "copy", "op": "MemcpyToHost", "provider": "cpu", "us": 2.0},
              {"name": "shape", "op": "Shape", "provider": "cpu", "us": 1.0}]
    text = operators_table(_doc(nodes), top=3)
    assert "  ... 4 more nodes: 16.0 us (16%)" in text  # 7 + 6 + 2 + 1 of a 100 us call
    assert ("  providers: tensorrt 5 nodes (Conv); cpu 2 nodes (MemcpyToHost, Shape)"
            in text)
    # 100 us profiled against 50 us timed, spread over 7 nodes
    assert "the profiler adds about 7.1 us to each of the 7 nodes" in text
    assert "the profiler adds" not in operators_table(_doc(nodes, p50_ms=0.2))


def test_layer_times_sum_each_layers_nodes_slowest_first():
    nodes = [{"name": "conv2d/BiasAdd_token_0", "us": 5.0},
             {"name": "conv2d_1/BiasAdd_token_4", "us": 9.0},
             {"name": "conv2d/Relu", "us": 1.5},
             {"name": "/features/features.0/Conv", "us": 2.0},  # PyTorch's scopes
             {"name": "ReorderOutput", "us": 0.5}, {"name": "image_q", "us": 1.0}]
    assert layer_times(nodes) == {"conv2d_1": 9.0, "conv2d": 6.5, "features": 2.0,
                                  NO_LAYER: 1.5}
    assert list(layer_times(nodes)) == ["conv2d_1", "conv2d", "features", NO_LAYER]


def test_layer_comparison_orders_layers_and_finds_the_biggest_change():
    f32 = [{"name": "conv/Conv", "op": "Conv", "us": 80.0},
           {"name": "dense/Gemm", "op": "Gemm", "us": 20.0},
           {"name": "Reorder", "op": "ReorderOutput", "us": 5.0}]
    q8 = [{"name": "conv/QLinearConv", "op": "QLinearConv", "us": 300.0},
          {"name": "dense/QGemm", "op": "QGemm", "us": 30.0},
          {"name": "image_q", "op": "QuantizeLinear", "us": 200.0},
          {"name": "Transpose", "op": "Transpose", "us": 300.0},
          {"name": "extra/Cast", "op": "Cast", "us": 1.0}]
    table = LayerComparison.of([f32, q8])
    assert table.layers == ("conv", "dense", NO_LAYER, "extra")
    # the nodes outside any layer are not a layer to name, however much they changed
    assert table.biggest_change() == ("conv", 80.0, 300.0)
    # but their change is told when it is larger than any layer's (5 -> 500 against 80 -> 300)
    assert table.outside_change() == (5.0, 500.0, ("QuantizeLinear", "Transpose"))
    smaller = LayerComparison.of([f32, q8[:3]])  # 5 -> 200: the conv's 220 is larger
    assert smaller.outside_change() is None
    other = [{"name": "Other", "op": "Abs", "us": 1.0}]
    assert LayerComparison.of([f32, other]).biggest_change() is None
    # the same graph timed twice (a weight-only model): no change worth naming
    same = [{**node, "us": node["us"] * 1.03} for node in f32]
    assert LayerComparison.of([f32, same]).biggest_change() is None
    assert LayerComparison.of([f32, same]).outside_change() is None  # Reorder 5.0 -> 5.15 us
    same[1]["us"] = 25.0  # dense 20 -> 25 us: 20% is a change
    assert LayerComparison.of([f32, same]).biggest_change() == ("dense", 20.0, 25.0)


def test_the_profilers_cost_is_estimated_from_the_timed_call():
    batch = {"latency_ms": {"p50": 0.06},
             "operators": {"run_us": 160.0, "nodes": [{"name": "a", "us": 1.0}] * 8}}
    assert profiler_cost_us(batch) == pytest.approx(12.5)  # (160 - 60) / 8
    assert profiler_share(batch) == pytest.approx(100 / 160)
    batch["latency_ms"]["p50"] = 0.2  # the timed call was slower: no cost to see
    assert profiler_cost_us(batch) == 0 and profiler_share(batch) == 0
    assert profiler_cost_us({"latency_ms": {"p50": 1}, "operators": None}) is None


def _two_models(p50_ms):
    doc = _doc([{"name": "conv/Conv", "op": "Conv", "provider": "cpu", "us": 60.0},
                {"name": "dense/Gemm", "op": "Gemm", "provider": "cpu", "us": 30.0}],
               run_us=100.0, p50_ms=p50_ms)
    second = _doc([{"name": "conv/QLinearConv", "op": "QLinearConv", "provider": "cpu",
                    "us": 20.0},
                   {"name": "dense/QGemm", "op": "QGemm", "provider": "cpu", "us": 40.0}],
                  run_us=100.0, p50_ms=p50_ms)["results"][0]
    second["model"] = "q.onnx"
    doc["results"].append(second)
    return doc


def test_several_models_are_compared_layer_by_layer_unless_the_profiler_decides():
    text = operators_table(_two_models(p50_ms=0.09))  # the profiler: 10 of 100 us
    table = text.split("time per layer, batch 1 (us per call", 1)[1].splitlines()
    assert table[1].split() == ["layer", "m.onnx", "q.onnx"]
    assert table[2].split() == ["conv", "60.0", "20.0", "(3.00x)"]
    assert table[3].split() == ["dense", "30.0", "40.0", "(0.75x)"]
    assert table[4] == "  q.onnx gained the most in conv: 60.0 against 20.0 us"
    assert len(table) == 5 or not table[5].startswith("  and more outside")
    # A Transpose onnxruntime added in the second model costs more than conv saves: said too.
    doc = _two_models(p50_ms=0.09)
    doc["results"][1]["batches"][0]["operators"]["nodes"].append(
        {"name": "Transpose", "op": "Transpose", "provider": "cpu", "us": 70.0})
    lines = operators_table(doc).split("time per layer, batch 1 (us per call", 1)[1]
    assert ("  and more outside any layer, in nodes onnxruntime added (Transpose): 0.0 against "
            "70.0 us") in lines.splitlines()
    text = operators_table(_two_models(p50_ms=0.05))  # half of a profiled call
    assert ("time per layer, batch 1: not compared, the profiler's own cost is 50% of a "
            "profiled call at this size") in text
