"""Hypothesis through the whole ``mason lower --no-resolve`` path (read, frontend, passes, the
LLB encoding) on mutated corpus Dockerfiles: the result is a graph that encodes, or a
:class:`MasonError` whose location (if any) points inside the input — nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mason.driver import LowerRequest, lower_request
from mason.ir.codec import encode_graph
from mason.ir.errors import MasonError, MasonErrors
from mason.ir.graph import Graph
from tests.robustness.conftest import CORPUS

SEEDS = sorted(CORPUS.glob("dockerfile-parser/testfiles/*/Dockerfile")) + sorted(CORPUS.glob("buildkit-llb/*.Dockerfile"))
SEED_BYTES = [p.read_bytes() for p in SEEDS]

# what a mutation inserts: Dockerfile syntax that tends to matter, and a few nasty characters
TOKENS = ["\n", " ", "\\\n", "\\", "$", "${", "}", "${A:-", "${A:+", "${A#", "${A%%", ":-", "[", "]", '"', "'",
          ",", "=", "--", "--mount=", "type=cache,target=/x", "--from=", "--platform=", "--chmod=", "--chown=",
          "AS ", "FROM ", "RUN ", "COPY ", "ADD ", "ARG ", "ENV ", "LABEL ", "ONBUILD ", "HEALTHCHECK ",
          "SHELL ", "EXPOSE ", "WORKDIR ", "USER ", "VOLUME ", "CMD ", "ENTRYPOINT ", "STOPSIGNAL ",
          "<<EOF\n", "EOF\n", "<<-", "# syntax=docker/dockerfile:1\n", "# escape=`\n", "`", "\t", "\r\n",
          "\x00", "\u00e9", "\u2028", "\ufeff", "../", "/", "*", "?", "99999999999999999999", "-1", "0x", "http://",
          "git@", "#", "@sha256:", "scratch", "busybox"]


@st.composite
def mutated(draw, *, raw_bytes: bool) -> bytes:
    """A corpus Dockerfile with a few edits: text edits (valid UTF-8 stays valid), or with
    ``raw_bytes`` byte edits that may break the encoding."""
    seed = draw(st.sampled_from(SEED_BYTES))
    data: bytes | str = seed if raw_bytes else seed.decode("utf-8")
    nl = b"\n" if raw_bytes else "\n"
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "dup-line", "truncate", "replace"]))
        at = draw(st.integers(0, len(data)))
        if kind in ("insert", "replace"):
            if raw_bytes:
                piece = draw(st.one_of(st.binary(min_size=1, max_size=8),
                                       st.sampled_from(TOKENS).map(str.encode)))
            else:
                piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(min_size=1, max_size=8)))
            data = data[:at] + piece + data[at + (len(piece) if kind == "replace" else 0):]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 40)):]
        elif kind == "dup-line":
            start = data.rfind(nl, 0, at) + 1
            end = data.find(nl, at)
            end = len(data) if end < 0 else end + 1
            data = data[:start] + data[start:end] * draw(st.integers(2, 4)) + data[end:]
        else:
            data = data[:at]
    return data if raw_bytes else data.encode("utf-8")


def _lines(data: bytes) -> list[str]:
    """Dockerfile lines: split at ``\n`` only (``str.splitlines`` would also split at ``\f``,
    U+2028 and others, which are ordinary characters in a Dockerfile)."""
    text = data.decode("utf-8", "surrogateescape")
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


def check_error(e: MasonError, data: bytes, filename: str) -> None:
    errs = e.errors if isinstance(e, MasonErrors) else [e]
    lines = _lines(data)
    for err in errs:
        assert err.message, "an error without a message"
        if err.loc is None:
            continue
        loc = err.loc
        assert loc.file in (filename, f"{filename}.dockerignore") or loc.file.endswith(".dockerignore"), loc
        if loc.file != filename:
            continue
        # a line past the end is allowed only for an error about the end of the file
        assert 1 <= loc.line <= len(lines) + 1, f"line {loc.line} outside 1..{len(lines)}: {err.message}"
        if loc.line <= len(lines):
            assert 1 <= loc.col <= len(lines[loc.line - 1]) + 1, \
                f"{loc}: column outside line {lines[loc.line - 1]!r}: {err.message}"
        # printing it never fails
        err.with_source(data.decode("utf-8", "surrogateescape")).format()


def lower_bytes(data: bytes) -> Graph | MasonError:
    with tempfile.TemporaryDirectory(prefix="mason-fuzz-") as d:
        df = Path(d) / "Dockerfile"
        df.write_bytes(data)
        (Path(d) / "a").write_text("a\n")
        try:
            res = lower_request(LowerRequest(context=d, dockerfile=str(df), resolve=False))
        except MasonError as e:
            check_error(e, data, str(df))
            return e
        encode_graph(res.graph)  # the Definition is part of `mason lower`'s output
        return res.graph


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


@pytest.mark.parametrize("path", SEEDS, ids=[f"{p.parent.name}/{p.name}" for p in SEEDS])
def test_corpus_seed_lowers_or_fails_cleanly(path: Path):
    lower_bytes(path.read_bytes())


@FUZZ
@given(mutated(raw_bytes=False))
def test_lower_mutated_text(data: bytes):
    lower_bytes(data)


@FUZZ
@given(mutated(raw_bytes=True))
def test_lower_mutated_bytes(data: bytes):
    """Bytes that are not UTF-8 too: BuildKit refuses them when it marshals the LLB; mason must
    refuse them with a location, not crash in the protobuf encoder."""
    lower_bytes(data)
