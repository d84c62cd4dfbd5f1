"""Session settings measured on a kind of machine and recorded in the model file.

onnxruntime's default is one intra-op thread per core, with idle threads spin-waiting for work.
That is the fastest setting for large batches, not for a small model called one sample at a
time: on the project's 2-core Xeon a batch-1 call of the digits ``cnn`` took 11 us with one
thread and 15 us with onnxruntime's two, float32 and INT8 alike, while batch 64 was 1.7x
slower with one (BENCHMARKS.md, "Session settings"). Which setting wins depends on the model,
the batch size, the CPU and whether calls come back to back or on a sensor's tick, so it is
measured on the device (``edge-infer tune``, :mod:`.tune`) rather than guessed.

The result is written into the model's metadata under :data:`KEY` as a JSON list with one entry
per kind of machine (CPU name, logical cores, architecture), so a file deployed to a fleet of
identical boards carries their setting, and a file tuned on a Raspberry Pi and on a Jetson
carries both. :class:`~.model.Model` applies the entry for the machine it runs on to every
setting its caller left unset (``threads``, ``spinning``); elsewhere the file runs with
onnxruntime's defaults.

This module is on the load path of every model, so it reads the metadata from a memory map of
the file with the runtime's protobuf reader (the graph and its weights are skipped, not read)
and imports nothing beyond what the runtime already has loaded.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Iterator

from . import protobuf as pb
from .records import Record

KEY = "edge_infer.session"
_METADATA_FIELD = 14  # ModelProto.metadata_props
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto


class Host(Record):
    """What identifies a kind of machine for the recorded settings."""

    cpu: str
    cores: int
    machine: str

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "cores": self.cores, "machine": self.machine}

    def phrase(self) -> str:
        return f"{self.cpu}, {self.cores} cores"


class Tuned(Record):
    """One recorded setting: what to pass to the session, and where and how it was measured.

    ``threads``/``spinning`` None means onnxruntime's default was the best there."""

    host: Host
    threads: int | None = None
    spinning: bool | None = None
    batch_size: int = 1
    rate_hz: float | None = None
    speedup: float | None = None  # onnxruntime's default p50 over this setting's
    onnxruntime: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tuned:
        h = d.get("host") or {}
        threads, spinning = d.get("threads"), d.get("spinning")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                    or threads < 0):
            raise ValueError(f"threads {threads!r}")
        if spinning is not None and not isinstance(spinning, bool):
            raise ValueError(f"spinning {spinning!r}")
        return cls(Host(str(h.get("cpu", "")), int(h.get("cores", 0)),
                        str(h.get("machine", ""))),
                   threads, spinning, int(d.get("batch_size", 1)), d.get("rate_hz"),
                   d.get("speedup"), str(d.get("onnxruntime", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host.to_dict(), "threads": self.threads,
                "spinning": self.spinning, "batch_size": self.batch_size,
                "rate_hz": self.rate_hz, "speedup": self.speedup,
                "onnxruntime": self.onnxruntime}

    def setting(self) -> str:
        """``1 thread``, ``2 threads, spinning off``, ``onnxruntime's default``."""
        return setting_phrase(self.threads, self.spinning)

    def phrase(self) -> str:
        """The setting and the measurement behind it, for ``edge-infer info``."""
        how = f"{self.rate_hz:g} calls/s" if self.rate_hz else "back to back"
        gain = f", {self.speedup:.2f}x onnxruntime's default" if self.speedup else ""
        return (f"{self.setting()} (batch {self.batch_size}, {how}{gain}; measured on "
                f"{self.host.phrase()}, onnxruntime {self.onnxruntime or '?'})")


def setting_phrase(threads: int | None, spinning: bool | None) -> str:
    if threads is None and spinning is None:
        return "onnxruntime's default"
    parts = ["onnxruntime's threads" if threads is None else
             f"{threads} thread{'s' if threads != 1 else ''}"]
    if spinning is not None:
        parts.append(f"spinning {'on' if spinning else 'off'}")
    return ", ".join(parts)


def cpu_name() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), the board's model on ARM boards whose
    cpuinfo has none (a Raspberry Pi's ``Model`` line, the device tree), else the
    architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            board = ""
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    return value.strip()
                if key == "Model" and value.strip():
                    board = value.strip()
            if board:
                return board
    except OSError:
        pass
    try:
        with open("/sys/firmware/devicetree/base/model", "rb") as fh:
            model = fh.read().rstrip(b"\0").decode("utf-8", "replace").strip()
            if model:
                return model
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def this_host() -> Host:
    return Host(cpu_name(), os.cpu_count() or 1, os.uname().machine if hasattr(os, "uname")
                else _machine())


def _machine() -> str:
    import platform

    return platform.machine()


def _metadata_value(buf: memoryview | bytes, key: str) -> str | None:
    """The value of metadata entry ``key`` of a serialized ModelProto (the last one wins, as
    protobuf's parsers keep it), or None."""
    found = None
    for number, wire, value in pb.fields(buf):
        if number == _METADATA_FIELD and wire == pb.LENGTH:
            k, v = pb.string_pair(buf, value)  # type: ignore[arg-type]
            if k == key:
                found = v
    return found


def parse(value: str | None) -> list[Tuned]:
    """The entries of a :data:`KEY` value; one that does not parse is left out (a file
    written by a later edge-infer must still load)."""
    if not value:
        return []
    try:
        items = json.loads(value)
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(Tuned.from_dict(item))
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def read(path: str) -> list[Tuned]:
    """The settings recorded in the model file at ``path`` (empty when none, or when the file
    cannot be read: loading it then fails with onnxruntime's own message)."""
    import mmap

    try:
        with open(path, "rb") as fh:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    value = _metadata_value(view, KEY)
                finally:
                    view.release()
    except (OSError, ValueError):  # ValueError: an empty file, or bytes that are not protobuf
        return []
    return parse(value)


def for_host(entries: Iterable[Tuned], host: Host) -> Tuned | None:
    """The entry measured on this kind of machine: same CPU name, logical cores and
    architecture."""
    return next((e for e in entries if e.host == host), None)


def for_this_machine(path: str) -> Tuned | None:
    """What :class:`~.model.Model` applies: the file's entry for this machine, if any. The
    host is only looked up when the file has entries."""
    entries = read(path)
    return for_host(entries, this_host()) if entries else None


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | pb.LENGTH) + _varint(len(payload)) + payload


def with_entries(buf: memoryview | bytes, entries: list[Tuned]) -> Iterator[memoryview | bytes]:
    """The serialized model ``buf`` in pieces, with its :data:`KEY` entry replaced by
    ``entries`` (or removed when empty). Every other field is passed on byte for byte, as
    views of ``buf``: a model of a gigabyte is not copied in memory."""
    with memoryview(buf) as view:
        for number, wire, value, first, past in pb.spans(view):
            if (number == _METADATA_FIELD and wire == pb.LENGTH
                    and pb.string_pair(view, value)[0] == KEY):  # type: ignore[arg-type]
                continue
            with view[first:past] as piece:
                yield piece
    if entries:
        text = json.dumps([e.to_dict() for e in entries], separators=(",", ":"))
        entry = (_length_field(_ENTRY_KEY, KEY.encode()) +
                 _length_field(_ENTRY_VALUE, text.encode()))
        yield _length_field(_METADATA_FIELD, entry)


def record(path: str, entry: Tuned | None, out: str | None = None,
           host: Host | None = None) -> list[Tuned]:
    """Write ``entry`` into the file at ``path`` (or a copy at ``out``), replacing the entry
    for the same kind of machine and keeping the others; with ``entry`` None, remove the
    entry of ``host`` (every entry when ``host`` is None too). Written under a temporary name
    and renamed. Returns the entries the file now holds."""
    import contextlib
    import mmap

    from .atomic import atomic_open

    with open(path, "rb") as fh:
        # Mapped, so that a large model is not read into memory; Windows cannot replace a
        # mapped file, so there it is read.
        data: Any = (fh.read() if os.name == "nt" else
                     mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
    try:
        entries = parse(_metadata_value(data, KEY))
        if entry is not None:
            entries = [e for e in entries if e.host != entry.host] + [entry]
        elif host is not None:
            entries = [e for e in entries if e.host != host]
        else:
            entries = []
        pieces = with_entries(data, entries)
        with atomic_open(out or path, "wb") as dst, contextlib.closing(pieces):
            for piece in pieces:
                dst.write(piece)
    finally:
        if not isinstance(data, bytes):
            data.close()
    return entries
