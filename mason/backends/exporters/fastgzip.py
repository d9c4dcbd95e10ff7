"""gzip for layer blobs, made fast: the stream is cut into 1 MiB blocks, each deflated on its own
(primed with the 32 KiB before it, as pigz does, so the ratio stays that of one stream) by a
small thread pool — zlib works without the GIL — and a block that a sample shows to be
incompressible (already compressed or random data) is stored, not deflated: deflating it would
cost the most time and save nothing.

The output is one ordinary gzip member (RFC 1952: no name, mtime 0) that any gzip reader
decompresses; for the same input and level it is the same bytes (block boundaries and the
stored/deflated choice depend only on the data), so layer digests stay reproducible.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

__all__ = ["BLOCK", "gzip_chunks"]

BLOCK = 1 << 20
WINDOW = 32 << 10  # deflate's window: what a block may refer back to
SAMPLE = 16 << 10
STORE_ABOVE = 0.95  # a sample that level 1 cannot shrink below this ratio is stored
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as Go and Python write)
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _incompressible(block: bytes) -> bool:
    """Whether samples from the start and the middle of ``block`` do not compress."""
    if len(block) < 2 * SAMPLE:
        return False
    mid = len(block) // 2
    for s in (block[:SAMPLE], block[mid:mid + SAMPLE]):
        if len(zlib.compress(s, 1)) < STORE_ABOVE * len(s):
            return False
    return True


def _deflate(block: bytes, window: bytes, level: int) -> bytes:
    """``block`` as raw deflate blocks ending byte-aligned and not final (a sync flush), so the
    next block's output can follow it in the same stream."""
    if level == 0 or _incompressible(block):
        c = zlib.compressobj(0, zlib.DEFLATED, -15)
    elif window:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=window)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)


def _blocks(chunks: Iterable[bytes]) -> Iterable[bytes]:
    buf = bytearray()
    for ch in chunks:
        buf += ch
        while len(buf) >= BLOCK:
            yield bytes(buf[:BLOCK])
            del buf[:BLOCK]
    if buf:
        yield bytes(buf)


def gzip_chunks(chunks: Iterable[bytes], out: BinaryIO, *, level: int = 6, jobs: int = 2) -> tuple[str, str, int]:
    """gzip the concatenation of ``chunks`` into ``out``. Returns ``(digest of the input,
    digest of the gzip stream, its size)`` (sha256, ``sha256:…``)."""
    raw, packed = hashlib.sha256(), hashlib.sha256()
    crc, total, size = 0, 0, 0

    def emit(data: bytes) -> None:
        nonlocal size
        packed.update(data)
        out.write(data)
        size += len(data)

    emit(_HEADER)
    window = b""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mason-gzip") as pool:
        pending: deque[Future[bytes]] = deque()
        for block in _blocks(chunks):
            pending.append(pool.submit(_deflate, block, window, level))
            window = block[-WINDOW:]
            raw.update(block)
            crc = zlib.crc32(block, crc)
            total += len(block)
            while len(pending) > 2 * jobs:  # bounded: at most a few MiB in flight
                emit(pending.popleft().result())
        while pending:
            emit(pending.popleft().result())
    emit(b"\x03\x00")  # the final block: fixed Huffman, end of block at once
    emit(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return "sha256:" + raw.hexdigest(), "sha256:" + packed.hexdigest(), size
