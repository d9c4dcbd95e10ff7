"""Cache keys of vertices, in the spirit of BuildKit's: what an op's result depends on.

A vertex's key is a sha256 over

* the op's encoded bytes with its ``inputs`` (field 1 of ``pb.Op``) taken out, and in their
  place each input's *cache key* and output index, in input order — so a key changes when an
  input's content changes even if the input op is the same, and stays when only an input op's
  spelling changes but not its result. For an input that is a ``local://`` source, the
  checksum of the content this op *selects* from it (:mod:`.contenthash`) stands in for the
  source's key, so a COPY is keyed by the files it copies, never the whole context;
* ``extra`` content checksums from the op itself (a source's resolved image digest, the local
  context's content checksum);
* a version tag, so the scheme can change without colliding with old records.

Op metadata (descriptions, caps) and source locations never enter a key, as they never enter
a digest. Secret *values* never enter a key (only the op's secret ids, which are in its bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

VERSION = b"mason.cachekey.v1\0"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def strip_inputs(op_bytes: bytes) -> bytes:
    """``op_bytes`` (a deterministic ``pb.Op``) without its top-level field-1 (``inputs``)
    entries. Field order is preserved, so the result is as canonical as the input."""
    out = bytearray()
    i, n = 0, len(op_bytes)
    while i < n:
        start = i
        tag, i = _varint(op_bytes, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, i = _varint(op_bytes, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            ln, i = _varint(op_bytes, i)
            i += ln
        elif wire == 5:
            i += 4
        else:  # groups are not used by LLB
            raise ValueError(f"unsupported protobuf wire type {wire} in op bytes")
        if field != 1:
            out += op_bytes[start:i]
    return bytes(out)


def cache_key(op_bytes: bytes, inputs: Sequence[tuple[str, int]], extra: Iterable[str] = ()) -> str:
    """``inputs`` = (input's cache key, output index) per op input, in order."""
    h = hashlib.sha256(VERSION)
    body = strip_inputs(op_bytes)
    h.update(len(body).to_bytes(8, "big"))
    h.update(body)
    for key, index in inputs:
        h.update(b"in\0" + key.encode() + b"\0" + str(index).encode() + b"\0")
    for e in extra:
        h.update(b"x\0" + e.encode() + b"\0")
    return "sha256:" + h.hexdigest()


def output_key(key: str, index: int) -> str:
    """The store key of output ``index`` of the vertex with cache key ``key``."""
    return f"{key}/{index}"


def cache_lease_name(root) -> str:
    """The long-lived lease that protects one state root's cached results. Per root (a hash of
    its resolved path), so two roots sharing one containerd namespace never unprotect each
    other's snapshots. (Here rather than in the solver so ``gc`` can import it cheaply.)"""
    import os

    real = os.path.realpath(os.fspath(root))
    return "mason-cache-" + hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def snapshot_name(key: str, index: int = 0) -> str:
    """The committed snapshot that holds a cached output: named by its cache key."""
    return f"mason-ck-{key.split(':', 1)[-1]}-{index}"
