"""``atomic_open``/``atomic_folder``: a file or folder appears complete or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from edge_infer.runtime.atomic import atomic_folder, atomic_open


def test_folder_appears_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out) as work:
        (work / "a.txt").write_text("x")
        assert not out.exists() and work.name.startswith(".run.partial-")
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_failure_or_an_unpublished_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "run") as work:
            (work / "a.txt").write_text("x")
            raise RuntimeError("stop")
    with atomic_folder(tmp_path / "worker", publish=False, parent=tmp_path / "tmp") as work:
        (work / "a.txt").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_empty_target_is_replaced_and_a_full_one_is_not(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_folder(tmp_path / "empty") as work:
        (work / "a.txt").write_text("x")
    assert (tmp_path / "empty" / "a.txt").exists()
    with pytest.raises(OSError):
        with atomic_folder(tmp_path / "empty") as work:
            (work / "b.txt").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["a.txt"]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_files_and_folders_get_the_permissions_open_and_mkdir_give(tmp_path, umask_022):
    """Not tempfile's owner-only 0600/0700: a deployed model must be readable by its service."""
    with atomic_folder(tmp_path / "run") as work:
        with atomic_open(work / "model.onnx") as fh:
            fh.write(b"x")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "run" / "model.onnx").stat().st_mode) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_replaced_file_keeps_its_permissions(tmp_path, umask_022):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    path.chmod(0o640)
    with atomic_open(path) as fh:
        fh.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


fcntl = pytest.importorskip("fcntl", reason="names are held with flock, which Windows lacks")


def test_runs_started_together_get_their_own_numbered_folders(tmp_path):
    from edge_infer.runtime.atomic import claim_folder

    base = tmp_path / "runs" / "cnn-digits"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cnn-digits-2").mkdir()  # an earlier run's folder
    with claim_folder(base, number=True) as first, claim_folder(base, number=True) as second:
        assert (first, second) == (base, base.with_name("cnn-digits-3"))
        assert not first.exists()  # the name is held; the folder is the caller's to build
    assert sorted(p.name for p in base.parent.iterdir()) == ["cnn-digits-2"]  # claims gone
    with claim_folder(base, number=True) as again:
        assert again == base


def test_an_explicit_folder_held_or_full_is_refused(tmp_path):
    from edge_infer.runtime.atomic import claim_folder
    from edge_infer.runtime.errors import UsageError

    out = tmp_path / "mine"
    with claim_folder(out):
        with pytest.raises(UsageError, match="being written by another edge-infer process"):
            with claim_folder(out):
                pass
    out.mkdir()
    with claim_folder(out) as held:  # an empty folder may be the target
        assert held == out
    (out / "x").write_text("x")
    with pytest.raises(UsageError, match="exists and is not empty"):
        with claim_folder(out):
            pass


def test_a_killed_holder_holds_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    from edge_infer.runtime.atomic import claim_folder

    base = tmp_path / "run"
    code = ("import sys, time\nfrom edge_infer.runtime.atomic import claim_folder\n"
            f"with claim_folder({str(base)!r}, number=True) as p:\n"
            "    print(p, flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == str(base)
        with claim_folder(base, number=True) as other:
            assert other == tmp_path / "run-2"  # held by a running process
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".run.claim").exists()  # left behind by the kill, but not locked
    with claim_folder(base, number=True) as mine:
        assert mine == base


def test_where_locks_are_not_supported_names_are_not_held(tmp_path, monkeypatch):
    import errno

    from edge_infer.runtime.atomic import claim_folder

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with claim_folder(tmp_path / "run", number=True) as first:
        with claim_folder(tmp_path / "run", number=True) as second:
            assert first == second == tmp_path / "run"  # as before names were held
    assert list(tmp_path.iterdir()) == []  # no claim file left behind
