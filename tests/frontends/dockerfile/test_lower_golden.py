"""Golden tests of the Dockerfile lowering: ``golden/NAME.Dockerfile`` → ``golden/NAME.expected``,
the text IR (``mason.ir.text.format_graph``) at ``-O0`` (every stage, ConfigOps in the chain)
and at ``-O1`` (after ``hoist-config,dedupe,prune``: pure LLB plus the folded image config).

Base images come from an in-memory resolver (no network). Comment lines at the top of a
Dockerfile set options: ``# golden: build-arg K=V …``, ``# golden: exclude PATTERN …``
(``.dockerignore``), ``# golden: target STAGE``, ``# golden: platform OS/ARCH``.

Regenerate with ``MASON_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/frontends/dockerfile/
test_lower_golden.py`` and review the diff by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mason.driver import pipeline_for
from mason.frontends.dockerfile.frontend import DockerfileLowering
from mason.frontends.dockerfile.lower import LowerOptions
from mason.ir.resolver import InMemoryResolver, PlatformSpec
from mason.ir.text import format_graph
from mason.passes import run_pipeline

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.Dockerfile"))
REGEN = os.environ.get("MASON_REGEN_GOLDEN") == "1"

BUSYBOX = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created_by": "busybox base"}],
}
ALPINE = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]},
}
ONBUILD_BASE = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/bin:/bin", "BASE=1"], "WorkingDir": "/base", "User": "nobody",
               "Shell": ["/bin/ash", "-c"],
               "OnBuild": ["RUN echo onbuild trigger", "ENV FROM_TRIGGER=$BASE"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "3" * 64]},
    "history": [{"created_by": "onbuild base"}],
}


def resolver() -> InMemoryResolver:
    r = InMemoryResolver()
    r.add("busybox", BUSYBOX, digest="sha256:" + "a" * 64)
    r.add("alpine:3.19", ALPINE, digest="sha256:" + "b" * 64)
    r.add("onbuild-base", ONBUILD_BASE, digest="sha256:" + "c" * 64)
    return r


def options_of(text: str) -> LowerOptions:
    build_args: dict[str, str] = {}
    excludes: list[str] = []
    target = None
    platform = PlatformSpec.parse("linux/amd64")
    for line in text.splitlines():
        if not line.startswith("# golden:"):
            continue
        key, _, rest = line[len("# golden:"):].strip().partition(" ")
        words = rest.split()
        if key == "build-arg":
            for w in words:
                k, _, v = w.partition("=")
                build_args[k] = v
        elif key == "exclude":
            excludes += words
        elif key == "target":
            target = words[0]
        elif key == "platform":
            platform = PlatformSpec.parse(words[0])
    return LowerOptions(build_args=build_args, platform=platform,
                        build_platform=PlatformSpec.parse("linux/amd64"),
                        excludes=tuple(excludes), target=target)


def render(name: str) -> str:
    text = (GOLDEN / f"{name}.Dockerfile").read_text()
    options = options_of(text)
    fe = DockerfileLowering(options, resolver())
    graph = fe.lower(text, f"{name}.Dockerfile")
    out = ["## -O0\n", format_graph(graph)]
    o1 = run_pipeline(graph, pipeline_for(1, None, options.target))
    out += ["## -O1\n", format_graph(o1)]
    for msg, loc in fe.warnings:
        out.append(f"## warning: {loc}: {msg}\n")
    return "".join(out)


def test_cases_present() -> None:
    assert len(CASES) >= 9, CASES


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    got = render(name)
    path = GOLDEN / f"{name}.expected"
    if REGEN or not path.exists():
        if not REGEN:
            pytest.fail(f"{path.name} is missing: run with MASON_REGEN_GOLDEN=1 and review it")
        path.write_text(got)
        return
    assert got == path.read_text(), f"{name}: lowering changed (MASON_REGEN_GOLDEN=1 to accept)"


@pytest.mark.parametrize("name", CASES)
def test_golden_o1_is_pure_llb(name: str) -> None:
    """After -O1 no ConfigOp and no mason.history metadata remains."""
    text = (GOLDEN / f"{name}.Dockerfile").read_text()
    options = options_of(text)
    graph = DockerfileLowering(options, resolver()).lower(text, f"{name}.Dockerfile")
    o1 = run_pipeline(graph, pipeline_for(1, None, options.target))
    for op in o1.ops():
        assert op.kind != "config"
        assert op.metadata.describe("mason.history") is None
