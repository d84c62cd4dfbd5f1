"""Write files so that nothing is ever half-written: a temporary name, then a rename.

The temporary file or folder gets the permissions a plain ``open()`` or ``mkdir`` would have
given (``tempfile`` makes them private to the owner: 0600 and 0700), so a model written here
can be read by the service user it is deployed for. A file that already exists keeps its own.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator, TypeVar

from .errors import EdgeInferError

_FILE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
               | getattr(os, "O_CLOEXEC", 0))


T = TypeVar("T")


def _unique(folder: Path, prefix: str, suffix: str, make: Callable[[Path], T]) -> tuple[Path, T]:
    """Create a new entry in ``folder`` under a random name with ``make`` (which must fail
    with ``FileExistsError`` on a clash, as ``O_EXCL`` and ``mkdir`` do)."""
    for _ in range(100):
        path = folder / f"{prefix}{os.urandom(4).hex()}{suffix}"
        try:
            made = make(path)
        except FileExistsError:
            continue
        return path, made
    raise FileExistsError(f"no free temporary name in {folder}")


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise EdgeInferError(f"cannot write {target}: folder {folder} does not exist")
    try:
        keep: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        keep = None
    # 0o666 less the umask, applied by the kernel: what open(path, "w") would give.
    tmp, fd = _unique(folder, f".{target.name}.", ".tmp",
                      lambda p: os.open(p, _FILE_FLAGS, 0o666))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            if keep is not None:
                os.chmod(tmp, keep)
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

    target = Path(path)
    where = Path(parent) if parent is not None else target.parent
    where.mkdir(parents=True, exist_ok=True)
    # 0o777 less the umask, as `mkdir` gives: a run folder others may read, not mkdtemp's 0700.
    folder, _ = _unique(where, f".{target.name}.partial-", "", lambda p: p.mkdir(0o777))
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
