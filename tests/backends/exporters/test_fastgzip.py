"""The layer gzip writer (issue 17): whatever the data, the output is one gzip member that
Python's gzip and the gzip program decompress to the input, with the digests it reports; the
same input gives the same bytes; incompressible blocks are stored, compressible ones deflated."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from mason.backends.exporters.fastgzip import BLOCK, gzip_chunks


def _gz(data: bytes, chunk: int = 65536, **kw) -> tuple[bytes, tuple[str, str, int]]:
    out = io.BytesIO()
    got = gzip_chunks((data[i:i + chunk] for i in range(0, len(data), chunk)), out, **kw)
    return out.getvalue(), got


def _check(data: bytes, **kw) -> bytes:
    blob, (raw, packed, size) = _gz(data, **kw)
    assert gzip.decompress(blob) == data
    assert raw == "sha256:" + hashlib.sha256(data).hexdigest()
    assert packed == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert size == len(blob)
    return blob


def _text(n: int) -> bytes:
    rng = random.Random(7)
    words = [b"layer", b"snapshot", b"mason", b"containerd", b"digest", b"\n", b"RUN", b"COPY"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def test_empty_and_tiny_inputs():
    assert gzip.decompress(_check(b"")) == b""
    _check(b"x")
    _check(b"\0" * 3)


def test_block_boundaries():
    for n in (BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK):
        _check(_text(n))


def test_random_data_is_stored_and_text_is_deflated():
    noise = os.urandom(3 * BLOCK)
    blob = _check(noise)
    assert len(blob) - len(noise) < 400  # stored: 5 bytes of framing per 64 KiB, 5 per block
    text = _text(3 * BLOCK)
    assert len(_check(text)) < len(text) // 3


def test_mixed_data_compresses_like_one_stream():
    data = _text(2 * BLOCK) + os.urandom(BLOCK) + _text(2 * BLOCK)
    blob = _check(data)
    assert len(blob) <= len(gzip.compress(data, 6)) * 1.02


def test_same_input_same_bytes_whatever_the_chunking_and_threads():
    data = _text(BLOCK) + os.urandom(BLOCK // 2) + _text(BLOCK + 5)
    a, _ = _gz(data, chunk=4096, jobs=1)
    b, _ = _gz(data, chunk=1 << 20, jobs=3)
    assert a == b


def test_the_gzip_program_accepts_it(tmp_path):
    data = _text(BLOCK + 100) + os.urandom(BLOCK)
    p = tmp_path / "layer.tar.gz"
    p.write_bytes(_check(data))
    r = subprocess.run(["gzip", "-t", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run(["gzip", "-dc", str(p)], capture_output=True).stdout == data


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=20), st.integers(0, 9))
def test_any_chunks_any_level_round_trip(chunks, level):
    out = io.BytesIO()
    raw, _, size = gzip_chunks(iter(chunks), out, level=level)
    data = b"".join(chunks)
    assert gzip.decompress(out.getvalue()) == data
    assert raw == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(out.getvalue())
