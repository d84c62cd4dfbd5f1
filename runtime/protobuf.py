"""A minimal reader of the protobuf wire format, enough to walk an ONNX ``ModelProto``.

The runtime must not import ``onnx``, yet ``edge-infer info`` needs the opset, the operators and
the initializers, which onnxruntime does not expose. The wire format is small: every field is a
key varint (field number and wire type) followed by a varint, 8 bytes, 4 bytes, or a
length-prefixed run. Length-prefixed runs are returned as (start, end) offsets into one buffer,
so weight blobs are skipped, never copied.
"""

from __future__ import annotations

from typing import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not valid protobuf; ``truncated`` when a field runs past the end."""

    def __init__(self, message: str, offset: int, truncated: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated


def read_varint(buf: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"a number runs past byte {end}", pos, truncated=end == len(buf))
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"a number at byte {pos} is longer than 10 bytes", pos)


def fields(buf: memoryview | bytes, start: int = 0, end: int | None = None
           ) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yield ``(field_number, wire_type, value)``; LENGTH values are ``(start, end)`` offsets."""
    for number, wire, value, _, _ in spans(buf, start, end):
        yield number, wire, value


def spans(buf: memoryview | bytes, start: int = 0, end: int | None = None
          ) -> Iterator[tuple[int, int, int | tuple[int, int], int, int]]:
    """As :func:`fields`, with each field's own first and past-the-end offsets (its key
    included), for copying fields unchanged."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        first = pos
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos}", pos)
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire, value, first, pos
        elif wire == LENGTH:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"a field at byte {pos} claims {length} bytes but only "
                                f"{end - pos} remain", pos, truncated=end == len(buf))
            yield number, wire, (pos, pos + length), first, pos + length
            pos += length
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > end:
                raise WireError(f"a fixed field at byte {pos} runs past the end", pos,
                                truncated=end == len(buf))
            yield number, wire, pos, first, pos + size
            pos += size
        else:
            raise WireError(f"unsupported wire type {wire} at byte {pos}", pos)


def signed(value: int) -> int:
    """Two's complement int64 from a varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(buf: memoryview | bytes, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="replace")


def packed_varints(buf: memoryview | bytes, span: tuple[int, int]) -> list[int]:
    out, pos = [], span[0]
    while pos < span[1]:
        value, pos = read_varint(buf, pos, span[1])
        out.append(signed(value))
    return out


def string_pair(buf: memoryview | bytes, span: tuple[int, int]) -> tuple[str, str]:
    """The two strings of a message whose fields 1 and 2 are strings (a map entry, ONNX's
    ``StringStringEntryProto``); a missing one, or one of another wire type, reads as ""."""
    key = value = ""
    for number, wire, inner in fields(buf, *span):
        if wire == LENGTH and number in (1, 2):
            if number == 1:
                key = text(buf, inner)  # type: ignore[arg-type]
            else:
                value = text(buf, inner)  # type: ignore[arg-type]
    return key, value
