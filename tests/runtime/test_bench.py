"""``edge-infer bench``: formats, ratios, inputs, bad arguments and the JSON schema."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime.bench import BenchConfig, benchmark, compare
from edge_infer.runtime.cli import cli
from edge_infer.runtime.errors import InputError, UsageError
from edge_infer.runtime.model import SessionConfig

RESULT_KEYS = {"model", "size_bytes", "provider", "threads", "spinning", "tuned",
               "session_seconds", "peak_rss_mib",
               "batches"}
BATCH_KEYS = {"batch_size", "latency_ms", "throughput_per_s", "cpu_percent", "late",
              "speedup_vs_first", "operators"}
LATENCY_KEYS = {"min", "p50", "p90", "p99", "max", "mean"}


def _bench(*args: str):
    return CliRunner().invoke(cli, ["bench", *args])


def test_provider_options_are_recorded_with_the_figures(models):
    """A figure taken with cuda.graph=1 or tensorrt.fp16=true is another figure: the options
    go into the JSON config and the table's first line."""
    path = str(models.classifier())
    args = ["-n", "3", "--warmup", "0", "-p", "cpu", "-O", "cuda.graph=1", "-O", "cuda.tf32=0"]
    doc = json.loads(_bench(path, *args, "-f", "json").output)
    assert doc["config"]["provider_options"] == {"cuda": {"graph": "1", "tf32": "0"}}
    assert "; options cuda.graph=1 cuda.tf32=0;" in _bench(path, *args).output.splitlines()[0]


def test_json_follows_the_documented_schema(models, tmp_path):
    a, b = models.classifier("a.onnx"), models.classifier("b.onnx", features=4, classes=3, seed=1)
    out = tmp_path / "bench.json"
    result = _bench(str(a), str(b), "-b", "1", "-b", "16", "-n", "15", "--warmup", "2",
                    "-f", "json", "-o", str(out), "-t", "1", "-p", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert json.loads(out.read_text()) == doc
    assert doc["format"] == 1
    assert set(doc["machine"]) == {"platform", "machine", "cpu", "cores", "python", "onnxruntime"}
    assert doc["config"] == {"batch_sizes": [1, 16], "runs": 15, "warmup": 2,
                             "warmup_seconds": 0.2, "threads": 1,
                             "providers": ["cpu"], "provider_options": {}, "dims": {},
                             "io_binding": False, "spinning": None, "rate_hz": None,
                             "profile": False, "tuned": True, "input": None}
    assert [r["model"] for r in doc["results"]] == [str(a), str(b)]
    for i, r in enumerate(doc["results"]):
        assert set(r) == RESULT_KEYS and r["provider"] == "cpu" and r["threads"] == 1
        assert r["size_bytes"] == (a if i == 0 else b).stat().st_size
        assert r["session_seconds"] > 0
        assert [x["batch_size"] for x in r["batches"]] == [1, 16]
        for x in r["batches"]:
            assert set(x) == BATCH_KEYS and set(x["latency_ms"]) == LATENCY_KEYS
            lat = x["latency_ms"]
            assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
            assert x["throughput_per_s"] == pytest.approx(x["batch_size"] / lat["mean"] * 1000)
            assert x["cpu_percent"] > 0 and x["late"] is None  # not paced
            if i == 0:
                assert x["speedup_vs_first"] is None
            else:
                first = doc["results"][0]["batches"][r["batches"].index(x)]["latency_ms"]["p50"]
                assert x["speedup_vs_first"] == pytest.approx(first / lat["p50"])


def test_table_has_a_row_per_model_and_batch_with_ratios(models):
    a, b = models.classifier("a.onnx"), models.image_cnn()
    result = _bench(str(a), str(b), "-b", "1", "-b", "4", "-n", "5", "--warmup", "0")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "runs back to back after 0 warm-up runs and at least 0.2 s" in lines[0] and lines[1].split()[:2] == ["model", "provider"]
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[4]) for r in rows] == [("a.onnx", "1"), ("a.onnx", "4"),
                                            ("cnn.onnx", "1"), ("cnn.onnx", "4")]
    assert not rows[0][-1].endswith("x") and rows[2][-1].endswith("x")


def test_plot_writes_a_png(models, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "latency.png"
    result = _bench(str(models.classifier()), "-n", "5", "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "latency.svg"
    result = _bench(str(models.classifier()), "-n", "5", "--plot", str(svg))
    assert result.exit_code == 0, result.output
    assert b"<svg" in svg.read_bytes()
    result = _bench(str(models.classifier()), "-n", "5", "--plot", str(tmp_path / "l.xyz"))
    assert result.exit_code == 2 and "found .xyz" in result.output
    assert "p50" not in result.output  # refused before any timing


def test_symbolic_dimensions_need_a_value(models):
    path = models.dynamic()
    result = _bench(str(path), "-n", "3")
    assert result.exit_code == 2
    assert "symbolic dimension T" in result.output and "--dim T=N" in result.output
    result = _bench(str(path), "-n", "3", "--dim", "T=7", "--dim", "F=5", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["config"]["dims"] == {"T": 7, "F": 5}


def test_given_samples_are_repeated_to_the_batch_size(models, tmp_path):
    path = models.classifier()
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    result = _bench(str(path), "-i", str(tmp_path / "x.npy"), "-b", "5", "-n", "3",
                    "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["config"]["input"].endswith("x.npy")
    assert doc["results"][0]["batches"][0]["batch_size"] == 5


@pytest.mark.parametrize("args,message", [
    (["-n", "0"], "--runs"),
    (["-b", "0"], "--batch-size"),
    (["-p", "warp-drive"], "warp-drive"),
    (["--dim", "T"], "--dim expects NAME=N"),
    (["--rate", "0"], "--rate"),
    (["--warmup-seconds", "-1"], "--warmup-seconds"),
])
def test_bad_arguments_get_one_line_and_exit_2(models, args, message):
    result = _bench(str(models.classifier()), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_missing_model_is_named(tmp_path):
    result = _bench(str(tmp_path / "nope.onnx"))
    assert result.exit_code == 2 and "nope.onnx does not exist" in result.output


def test_library_progress_and_compare(models):
    ticks = []
    config = BenchConfig(batch_sizes=(1, 2), runs=4, warmup=0)
    first = benchmark(models.classifier("a.onnx"), config, progress=ticks.append)
    second = benchmark(models.classifier("b.onnx"), config)
    assert sum(ticks) == 8
    compare([first, second])
    assert first.batches[0].speedup_vs_first is None
    assert second.figures(2).speedup_vs_first == pytest.approx(
        first.figures(2).latency_ms["p50"] / second.figures(2).latency_ms["p50"])
    assert len(first.figures(1).samples_ms) == 4


def test_io_binding_mode_is_recorded_and_runs(models):
    result = _bench(str(models.image_cnn()), "--io-binding", "-b", "3", "-n", "5", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["config"]["io_binding"] is True
    assert doc["results"][0]["batches"][0]["latency_ms"]["p50"] > 0
    table = _bench(str(models.image_cnn()), "--io-binding", "-n", "5")
    assert "bound buffers (--io-binding)" in table.output


def test_warm_up_lasts_its_runs_and_its_seconds(models):
    import time

    from edge_infer.runtime.bench import _warm

    calls: list[int] = []
    start = time.perf_counter()
    _warm(lambda: calls.append(1), 0, 0.15)
    assert time.perf_counter() - start >= 0.15 and len(calls) >= 1
    calls.clear()
    _warm(lambda: calls.append(1), 3, 0.0)
    assert len(calls) == 3
    start = time.perf_counter()
    benchmark(models.classifier(), BenchConfig(runs=2, warmup=0, warmup_seconds=0.1))
    assert time.perf_counter() - start >= 0.1
    with pytest.raises(UsageError, match="warmup seconds"):
        BenchConfig(warmup_seconds=-1)


def test_paced_calls_start_on_their_ticks(models):
    """At 100 Hz, 6 calls and their periods take at least 60 ms however fast each call is."""
    import time

    path = models.classifier()
    config = BenchConfig(runs=6, warmup=0, rate_hz=100.0, spinning=False)
    start = time.perf_counter()
    result = benchmark(path, config)
    paced = time.perf_counter() - start
    figures = result.figures(1)
    assert paced >= 0.06 and len(figures.samples_ms) == 6
    assert figures.late == sum(t > 10 for t in figures.samples_ms)
    assert max(figures.samples_ms) < 10  # the sleeps are not timed as latency
    assert figures.cpu_percent >= 0


def test_pacing_and_spinning_are_recorded(models):
    result = _bench(str(models.classifier()), "--rate", "250", "--no-spin", "-n", "5",
                    "-f", "json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)["config"]
    assert config["rate_hz"] == 250 and config["spinning"] is False
    table = _bench(str(models.classifier()), "--rate", "250", "--spin", "-n", "5")
    assert table.exit_code == 0, table.output
    assert "spinning on" in table.output and "one call every 4 ms" in table.output
    header = table.output.splitlines()[1]
    assert "samples/s  CPU %  late  peak MiB" in header
    assert "late" not in _bench(str(models.classifier()), "-n", "5").output  # back to back


def test_spinning_reaches_onnxruntime():
    for value, flag in ((False, "0"), (True, "1")):
        so = SessionConfig(spinning=value).session_options()
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == flag
        assert so.get_session_config_entry("session.inter_op.allow_spinning") == flag
    with pytest.raises(RuntimeError, match="does not have configuration"):  # its default
        SessionConfig().session_options().get_session_config_entry(
            "session.intra_op.allow_spinning")
    with pytest.raises(InputError, match="spinning must be"):
        SessionConfig(spinning="no")
