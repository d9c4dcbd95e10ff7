"""Lowering errors: each is a MasonError at the instruction's location (line, column) with the
message, and prints with the source line and a caret."""

from __future__ import annotations

import pytest

from mason.frontends.dockerfile.frontend import DockerfileLowering
from mason.frontends.dockerfile.lower import LowerOptions
from mason.ir.errors import MasonError
from mason.ir.resolver import InMemoryResolver

BUSYBOX = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["PATH=/bin"], "OnBuild": ["BOGUS instruction"]}}


def lower(text: str, **opts):
    r = InMemoryResolver()
    r.add("busybox", {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]}})
    r.add("badonbuild", BUSYBOX)
    return DockerfileLowering(LowerOptions(**opts), r).lower(text, "Dockerfile")


CASES = [
    # (Dockerfile, line, col, message part)
    ("FROM busybox AS a\nCOPY --from=a /x /y\n", 2, 1, "circular dependency detected on stage: a"),
    ("FROM busybox\nCOPY --from=later /x /y\nFROM busybox AS later\n", 2, 1,
     "cannot copy from stage 'later', it needs to be defined before current stage"),
    ("FROM busybox\nRUN --mount=from=later,target=/m ls\nFROM busybox AS later\n", 2, 1,
     "it needs to be defined before"),
    ("FROM busybox\nCOPY --from=7 /x /y\n", 2, 1, "invalid stage index 7"),
    ("FROM busybox\nCOPY --from=nosuchstage /x /y\n", 2, 1, "image not found"),
    ("FROM nosuchimage\n", 1, 1, "image not found"),
    ("ARG BASE\nFROM ${BASE}\n", 2, 1, "base name (${BASE}) should not be blank"),
    ("ARG BASE\nFROM ${BASE:?needed}\n", 2, 1, "BASE: needed"),
    ("FROM busybox\nENV A=${UNSET:?required}\n", 2, 1, "UNSET: required"),
    ("FROM busybox\nCOPY https://example.com/x /x\n", 2, 1, "source can't be a URL for COPY"),
    ("FROM busybox\nCOPY git@github.com:a/b.git /x\n", 2, 1, "source can't be a git ref for COPY"),
    ("FROM busybox\nRUN --mount=type=cache,target=/ ls\n", 2, 1, "invalid mount target"),
    ("FROM busybox\nARG P=x\nEXPOSE ${P}\n", 3, 1, "invalid EXPOSE port 'x'"),
    ("FROM busybox\nARG M=99\nCOPY --chmod=$M a /b\n", 3, 1, "invalid --chmod value '99'"),
    ("FROM busybox\nARG S=NOPE\nSTOPSIGNAL $S\n", 3, 1, "invalid STOPSIGNAL 'NOPE'"),
    ("FROM --platform=plan10/amd64 busybox\n", 1, 1, "unknown operating system"),
    ("# syntax=example.com/my/frontend:1\nFROM busybox\n", 1, 1,
     "unsupported frontend # syntax=example.com/my/frontend:1"),
    ("FROM badonbuild\n", 1, 1, "ONBUILD trigger 'BOGUS instruction' of the base image"),
    ("FROM busybox\nFROM scratch\n", 2, 1, "the last stage builds nothing"),
    ("FROM busybox\nADD --checksum=sha256:abc local.txt /x\n", 2, 1,
     "checksum can't be specified for non-HTTP(S) sources"),
]


@pytest.mark.parametrize("text,line,col,message", CASES)
def test_lowering_error(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(MasonError) as info:
        lower(text)
    e = info.value
    assert message in e.message
    assert e.loc is not None and (e.loc.file, e.loc.line, e.loc.col) == ("Dockerfile", line, col)
    shown = e.format()
    assert shown.startswith(f"Dockerfile:{line}:{col}: error: ")
    assert text.splitlines()[line - 1] in shown


def test_from_image_named_like_a_later_stage_is_an_error() -> None:
    with pytest.raises(MasonError) as info:
        lower("FROM later\nFROM busybox AS later\n")
    assert "needs to be defined before" in info.value.message
    assert info.value.loc.line == 1


def test_no_resolve_warns_once() -> None:
    fe = DockerfileLowering(LowerOptions(), None)
    fe.lower("FROM busybox AS a\nFROM alpine\nCOPY --from=a / /\n", "Dockerfile")
    msgs = [m for m, _ in fe.warnings if "not resolving" in m]
    assert len(msgs) == 1
