"""``edge-infer tune`` and the settings it records: the choice, the file edit, and their use."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edge_infer.runtime import tuned
from edge_infer.runtime.bench import BenchConfig, benchmark
from edge_infer.runtime.cli import cli
from edge_infer.runtime.model import Model
from edge_infer.runtime.tune import Trial, candidates, choose, thread_counts
from edge_infer.runtime.tuned import Host, Tuned


def _trial(threads, spinning, ms, cpu):
    return Trial(threads, spinning, [ms, ms * 1.01, ms * 0.99], [cpu] * 3)


def test_candidates_cover_each_thread_count_with_and_without_spinning():
    assert thread_counts(2) == [1, 2]
    assert thread_counts(6) == [1, 2, 4, 6]
    assert thread_counts(8, (4, 1, 4)) == [1, 4]
    assert candidates(4) == [(None, None), (1, None), (2, True), (2, False), (4, True),
                             (4, False)]


def test_choice_is_the_fastest_unless_a_cheaper_setting_ties_within_the_margin():
    default = _trial(None, None, 0.015, 200)
    one = _trial(1, None, 0.011, 100)
    two_off = _trial(2, False, 0.0145, 120)
    assert choose([default, one, two_off]) is one
    # 3% slower than the fastest and half the CPU: a tie, the cheaper one wins
    fast_busy = _trial(2, True, 0.0100, 200)
    cheap = _trial(1, None, 0.0103, 100)
    assert choose([_trial(None, None, 0.02, 200), fast_busy, cheap]) is cheap
    # ... but not past the margin
    assert choose([fast_busy, _trial(1, None, 0.0110, 100)]) is fast_busy
    assert choose([fast_busy, _trial(1, None, 0.0110, 100)], margin=0.2).threads == 1
    # equal CPU and time: onnxruntime's default, which changes nothing; else fewer threads
    default = _trial(None, None, 0.0101, 199)
    two = _trial(2, True, 0.0100, 201)
    assert choose([two, default]) is default
    four = _trial(4, True, 0.01, 100)
    assert choose([_trial(8, False, 0.01, 100), four]) is four
    # CPU within 10 points of a core is a tie too; past it, the cheaper one
    assert choose([_trial(2, False, 0.01, 120), _trial(1, None, 0.01, 105)]).threads == 1
    assert choose([_trial(2, False, 0.01, 112), _trial(4, False, 0.01, 105)]).threads == 2


def _host(cpu="Test CPU", cores=2):
    return Host(cpu, cores, "x86_64")


def test_recording_edits_only_the_metadata_entry(models, tmp_path):
    path = models.classifier(metadata={"edge_infer.task": "classification"})
    original = path.read_bytes()
    before = onnx.load(path)
    a = Tuned(_host(), 1, None, 1, None, 1.36, "1.32.0")
    b = Tuned(_host("Other CPU", 4), 2, False, 8, 30.0, None, "1.32.0")
    tuned.record(str(path), a)
    assert tuned.read(str(path)) == [a]
    tuned.record(str(path), b)
    assert tuned.read(str(path)) == [a, b]
    again = Tuned(_host(), 2, True, 1, None, 1.1, "1.32.0")  # the same machine: replaced
    assert tuned.record(str(path), again) == [b, again]
    after = onnx.load(path)
    onnx.checker.check_model(after)
    props = {p.key: p.value for p in after.metadata_props}
    assert props["edge_infer.task"] == "classification"
    assert [Tuned.from_dict(d) for d in json.loads(props[tuned.KEY])] == [b, again]
    after.ClearField("metadata_props")
    before.ClearField("metadata_props")
    assert after.SerializeToString() == before.SerializeToString()
    # clearing one machine keeps the other; clearing all removes the entry
    assert tuned.record(str(path), None, host=_host("Other CPU", 4)) == [again]
    assert tuned.record(str(path), None) == []
    assert path.read_bytes() == original  # nothing else was touched


def test_a_copy_leaves_the_original_alone(models, tmp_path):
    path = models.classifier()
    data = path.read_bytes()
    out = tmp_path / "tuned.onnx"
    tuned.record(str(path), Tuned(_host(), 1), str(out))
    assert path.read_bytes() == data
    assert tuned.read(str(out)) == [Tuned(_host(), 1)]


def test_unreadable_entries_and_files_are_ignored(models, tmp_path):
    assert tuned.parse("not json") == []
    assert tuned.parse('{"threads": 1}') == []
    good = Tuned(_host(), 1).to_dict()
    assert tuned.parse(json.dumps([{"threads": "many"}, good])) == [Tuned(_host(), 1)]
    assert tuned.parse(json.dumps([{"threads": True, "host": {}}])) == []
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    assert tuned.read(str(tmp_path / "empty.onnx")) == []
    assert tuned.read(str(tmp_path / "junk.onnx")) == []
    assert tuned.read(str(tmp_path / "missing.onnx")) == []


def test_model_applies_this_machines_setting_to_what_the_caller_left_unset(models):
    path = models.classifier()
    here = tuned.this_host()
    tuned.record(str(path), Tuned(_host("Some other CPU", here.cores + 1), 3, False))
    model = Model(path)
    assert model.tuned is None and model.config.threads is None  # not this machine
    entry = Tuned(here, 1, False)
    tuned.record(str(path), entry)
    model = Model(path)
    assert model.tuned == entry
    assert (model.config.threads, model.config.spinning) == (1, False)
    assert Model(path, threads=2).config.threads == 2  # the caller's setting wins
    assert Model(path, threads=2).config.spinning is False  # ... for what it sets
    assert Model(path, tuned=False).config.threads is None
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(model.run(x)[model.signature.output_names[0]],
                                  bare.run(None, {bare.get_inputs()[0].name: x})[0])


def test_bench_times_the_tuned_setting_and_says_so(models):
    path = models.classifier()
    tuned.record(str(path), Tuned(tuned.this_host(), 1))
    config = BenchConfig(runs=3, warmup=0, warmup_seconds=0)
    result = benchmark(path, config)
    assert result.threads == 1 and result.tuned["threads"] == 1
    assert benchmark(path, BenchConfig(runs=3, warmup=0, warmup_seconds=0, tuned=False)
                     ).threads is None
    out = CliRunner().invoke(cli, ["bench", str(path), "-n", "3", "--warmup", "0"]).output
    assert "clf.onnx: 1 thread, as tuned for this machine" in out
    doc = json.loads(CliRunner().invoke(cli, ["bench", str(path), "-n", "3", "-t", "2",
                                              "-f", "json"]).output)
    assert doc["results"][0]["threads"] == 2


def test_tune_command_measures_records_and_clears(models, tmp_path):
    path = models.classifier()
    args = ["tune", str(path), "--seconds", "0.01", "--rounds", "2", "-t", "1", "-t", "2"]
    result = CliRunner().invoke(cli, [*args, "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    settings = [(t["threads"], t["spinning"]) for t in doc["trials"]]
    assert settings == [(None, None), (1, None), (2, True), (2, False)]
    assert all(len(t["p50_ms"]) == 2 for t in doc["trials"])
    assert doc["written"] == str(path)
    (entry,) = tuned.read(str(path))
    assert (entry.threads, entry.spinning) == (doc["chosen"]["threads"], doc["chosen"]["spinning"])
    assert entry.host == tuned.this_host() and entry.batch_size == 1
    info = CliRunner().invoke(cli, ["info", str(path)]).output
    assert "tuned" in info and "this machine" in info
    # --dry-run writes nothing; --clear removes this machine's entry
    other = models.classifier("other.onnx")
    data = other.read_bytes()
    table = CliRunner().invoke(cli, ["tune", str(other), "--seconds", "0.01", "--rounds", "1",
                                     "-t", "1", "--dry-run"])
    assert table.exit_code == 0 and "<- chosen" in table.output
    assert "nothing written" in table.output and other.read_bytes() == data
    cleared = CliRunner().invoke(cli, ["tune", str(path), "--clear"])
    assert cleared.exit_code == 0 and tuned.read(str(path)) == []


@pytest.mark.parametrize("args, message", [
    (["--rounds", "0"], "--rounds"),
    (["-t", "0"], "--threads"),
    (["--seconds", "0"], "--seconds"),
    (["--clear", "--dry-run"], "nothing to do"),
])
def test_tune_refuses_bad_arguments_in_one_line(models, args, message):
    result = CliRunner().invoke(cli, ["tune", str(models.classifier()), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_tune_refuses_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("hello")
    result = CliRunner().invoke(cli, ["tune", str(bad)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert bad.read_text() == "hello"
