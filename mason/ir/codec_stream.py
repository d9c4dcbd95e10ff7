"""Several Definitions in one file (:func:`write_stream` / :func:`read_stream`): the magic line
``mason-llb-stream\n`` then ``uvarint(len) + Definition`` records (see :mod:`.codec`)."""

from __future__ import annotations

from typing import Iterable

from mason.ir.errors import MasonError

STREAM_MAGIC = b"mason-llb-stream\n"


def write_stream(definitions: Iterable[bytes]) -> bytes:
    """Several Definitions in one file: the magic line, then ``uvarint(len) + bytes`` records."""
    out = bytearray(STREAM_MAGIC)
    for d in definitions:
        n = len(d)
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
        out += d
    return bytes(out)


def read_stream(data: bytes) -> list[bytes]:
    """The records of :func:`write_stream`."""
    if not data.startswith(STREAM_MAGIC):
        raise MasonError("not a mason Definition stream (no mason-llb-stream header)")
    out = []
    i, n = len(STREAM_MAGIC), len(data)
    while i < n:
        length = shift = 0
        while True:
            if i >= n:
                raise MasonError("truncated Definition stream: record length cut off")
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise MasonError("bad Definition stream: record length too long")
        if i + length > n:
            raise MasonError(f"truncated Definition stream: record needs {length} bytes, {n - i} left")
        out.append(data[i:i + length])
        i += length
    return out



__all__ = ["STREAM_MAGIC", "write_stream", "read_stream"]
