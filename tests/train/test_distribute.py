"""tf.distribute: MirroredStrategy through fit, and a real two-worker MultiWorkerMirroredStrategy
run with both workers as processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_infer.runtime.errors import UsageError
from edge_infer.train.config import TrainConfig
from edge_infer.train.distribute import is_chief
from edge_infer.train.trainer import train


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_mirrored_strategy_trains(tmp_path):
    result = train(TrainConfig("mlp", "xor", epochs=2, strategy="mirrored", out=tmp_path / "r",
                               verbose=0))
    assert result.metrics["strategy"] == "mirrored" and result.metrics["epochs_run"] == 2


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="reads the cluster from TF_CONFIG, which is not set"):
        train(TrainConfig("mlp", "xor", epochs=1, strategy="multi-worker", out=tmp_path / "r",
                          verbose=0))


def test_chief_is_worker_zero(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief("multi-worker") and is_chief("default")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief("multi-worker")


def test_two_workers_on_localhost(tmp_path):
    exe = shutil.which("edge-infer", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the edge-infer console script is not installed next to this Python")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [exe, "train", "mlp", "--dataset", "moons", "--epochs", "3", "--quiet",
             "--strategy", "multi-worker", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("the two workers did not finish within 240 s")
        results.append((proc.returncode, stdout, stderr))
    for code, _stdout, stderr in results:
        assert code == 0, stderr[-2000:]
    # Synchronous data parallelism: both workers saw the same losses, epoch by epoch.
    epochs = [[ln for ln in err.splitlines() if ln.startswith("epoch ")] for _, _, err in results]
    assert len(epochs[0]) == 3 and epochs[0] == epochs[1]
    assert "2 replicas in sync" in results[0][2]
    # Only the chief wrote the run folder.
    assert {p.name for p in out.iterdir()} >= {"model.keras", "metrics.json", "history.csv"}
    assert json.loads((out / "metrics.json").read_text())["strategy"] == "multi-worker"
    assert [p.name for p in tmp_path.iterdir() if "run" in p.name] == ["run"]  # no partials
