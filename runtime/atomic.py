"""Write files so that nothing is ever half-written: a temporary name, then a rename."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import EdgeInferError


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    import tempfile

    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise EdgeInferError(f"cannot write {target}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike[str], *, publish: bool = True,
                  parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Build a folder under a hidden temporary name (beside ``path``, or in ``parent``) and
    rename it to ``path`` when the block succeeds; ``path`` may only exist as an empty folder.
    On failure, or when ``publish`` is false (a worker that must not write), the temporary
    folder is removed: nothing half-built is ever left."""
    import shutil
    import tempfile

    target = Path(path)
    where = Path(parent) if parent is not None else target.parent
    where.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=where))
    try:
        yield folder
        if publish:
            if target.exists():
                target.rmdir()  # empty: a non-empty one fails here rather than being replaced
            os.replace(folder, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # gone already when published


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)
