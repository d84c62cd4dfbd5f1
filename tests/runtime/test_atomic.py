"""``atomic_folder``: a folder appears complete or not at all."""

from __future__ import annotations

import pytest

from edge_infer.runtime.atomic import atomic_folder


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
