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
from typing import IO, Any, Callable, Iterator, TypeVar

from .errors import EdgeInferError, UsageError

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


def numbered(base: str | os.PathLike[str]) -> Iterator[Path]:
    """``base``, then ``base-2``, ``base-3``, ...: the names of a run folder that exists."""
    base = Path(base)
    yield base
    n = 2
    while True:
        yield base.with_name(f"{base.name}-{n}")
        n += 1


def not_empty(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is taken as an output folder: a file, or a folder with something in it."""
    path = Path(path)
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


@contextmanager
def claim_folder(path: str | os.PathLike[str], *, number: bool = False) -> Iterator[Path]:
    """Hold the name of a folder this process is about to build, so that runs started together
    in one place (``for s in 0 1 2; do edge-infer pipeline cnn --seed $s & done``) do not all
    pick ``runs/cnn-digits`` and fail when they publish, after all their work.

    With ``number``, the name is the first of :func:`numbered` that does not exist and that no
    running process holds. Without, it is ``path``, which may exist only as an empty folder;
    one held by another process is a :class:`UsageError`.

    The hold is an advisory lock (``flock``) on a hidden ``.NAME.claim`` file beside the
    folder, removed at the end of the block. The kernel releases a lock when its process ends,
    however it ends, so a killed run holds nothing. Where ``flock`` does not exist (Windows),
    names are not held and runs started together can still clash."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    names = numbered(path) if number else iter([Path(path)])
    taken: Callable[[Path], bool] = Path.exists if number else not_empty
    for candidate in names:
        if taken(candidate):
            if number:
                continue
            raise UsageError(f"output folder {candidate} exists and is not empty; choose "
                             "another --out")
        if fcntl is None:
            yield candidate
            return
        candidate.parent.mkdir(parents=True, exist_ok=True)
        lock = candidate.parent / f".{candidate.name}.claim"
        try:
            fd = _hold(lock, fcntl)
            locks = True
        except OSError:  # a file system without locks (some network mounts): hold nothing
            fd, locks = None, False
        if not locks:
            try:
                os.unlink(lock)
            except OSError:
                pass
            yield candidate
            return
        if fd is None or taken(candidate):
            if fd is not None:  # built and published by the holder that has just let go
                os.close(fd)
            if number:
                continue
            raise UsageError(f"output folder {candidate} is being written by another "
                             "edge-infer process; choose another --out")
        try:
            yield candidate
        finally:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
            os.close(fd)
        return


def _hold(lock: Path, fcntl: Any) -> int | None:
    """A descriptor of ``lock`` with an exclusive lock on it, or None when another process
    holds it (OSError when locks are not supported there). Retried when the file was removed
    by a holder between opening and locking it: a lock on a removed file holds nothing."""
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another process
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    return None


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)
