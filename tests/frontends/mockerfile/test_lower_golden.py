"""Golden tests of the Mockerfile lowering: ``golden/NAME.yaml`` and every example of
``../shared/corpus/mockerfile/`` → ``golden/NAME.expected``, the text IR at ``-O0`` and after
``-O1`` (base images from an in-memory resolver; no network).

Regenerate with ``MASON_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/frontends/mockerfile/``
and review the diff by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mason.driver import pipeline_for
from mason.frontends.base import FrontendRequest
from mason.frontends.mockerfile import MockerfileFrontend
from mason.ir.ops import ExecOp, FileOp, SourceOp
from mason.ir.resolver import InMemoryResolver, PlatformSpec
from mason.ir.text import format_graph
from mason.passes import run_pipeline

GOLDEN = Path(__file__).parent / "golden"
CORPUS = Path(__file__).parents[3] / ".." / "shared" / "corpus" / "mockerfile"
REGEN = os.environ.get("MASON_REGEN_GOLDEN") == "1"


def _cfg(env: list[str], layer: str) -> dict:
    return {"architecture": "amd64", "os": "linux", "config": {"Env": env, "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer * 64]}, "history": [{"created_by": "base"}]}


def resolver() -> InMemoryResolver:
    r = InMemoryResolver()
    r.add("busybox", _cfg(["PATH=/bin"], "1"), digest="sha256:" + "a" * 64)
    r.add("debian-min", _cfg(["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"], "2"), digest="sha256:" + "b" * 64)
    for name in ("golang:1.10", "ubuntu:16.04"):
        r.add(name, _cfg(["PATH=/usr/bin:/bin"], "3"), digest="sha256:" + "c" * 64)
    return r


def cases() -> list[tuple[str, Path]]:
    out = [(p.stem, p) for p in sorted(GOLDEN.glob("*.yaml"))]
    out += [("corpus-" + p.stem, p) for p in sorted(CORPUS.glob("*.yaml"))]
    return out


CASES = cases()


def lower(path: Path, target: str | None = None):
    req = FrontendRequest(path.read_text(), path.name, target=target, platform=PlatformSpec.parse("linux/amd64"),
                          excludes=("*.tmp",), resolver=resolver())
    return MockerfileFrontend().lower(req)


def render(path: Path) -> str:
    res = lower(path)
    out = ["## -O0\n", format_graph(res.graph)]
    out += ["## -O1\n", format_graph(run_pipeline(res.graph, pipeline_for(1, None, None)))]
    out += [f"## warning: {w.format()}\n" for w in res.warnings]
    return "".join(out)


def test_cases_present() -> None:
    assert len([c for c in CASES if c[0].startswith("corpus-")]) == 6
    assert any(c[0] == "every-key" for c in CASES)


@pytest.mark.parametrize("name,path", CASES, ids=[c[0] for c in CASES])
def test_golden(name: str, path: Path) -> None:
    got = render(path)
    exp = GOLDEN / f"{name}.expected"
    if REGEN:
        exp.write_text(got)
        return
    if not exp.exists():
        pytest.fail(f"{exp.name} is missing: run with MASON_REGEN_GOLDEN=1 and review it")
    assert got == exp.read_text(), f"{name}: lowering changed (MASON_REGEN_GOLDEN=1 to accept)"


def _ops(graph, output: str) -> list:
    from mason.ir.ops import walk_ops

    return walk_ops([graph.output(output).ref.op])


def test_every_key_is_lowered_as_llb() -> None:
    """The facts the issue names, checked on the ops rather than only on the golden text."""
    g = lower(GOLDEN / "every-key.yaml").graph
    assert g.names() == ["build", "run", "child", "default"]
    run = _ops(g, "run")
    http = {op.identifier: dict(op.attrs) for op in run if isinstance(op, SourceOp) and op.identifier.startswith("http")}
    assert http["http://127.0.0.1:8000/bin/tool"]["http.checksum"] == "sha256:b5066f7250beb023a3eb7511c5699be4dbff57637ac4a78ce63bde6e66c26ac4"
    assert "http.checksum" not in http["http://127.0.0.1:8000/pkg.tar.gz"]
    assert {"http://127.0.0.1:8000/key.gpg", "http://127.0.0.1:8000/keys/plain"} <= set(http)
    apt = [op for op in run if isinstance(op, ExecOp) and "apt-get" in op.meta.args[-1]]
    assert len(apt) == 1
    assert "install -y --no-install-recommends hello tool=1.2-3" in apt[0].meta.args[-1]
    caches = {m.dest: m.cache for m in apt[0].mounts if m.cache is not None}
    assert set(caches) == {"/var/cache/apt", "/var/lib/apt/lists"}
    assert all(c.sharing.name == "LOCKED" for c in caches.values())
    files = [op for op in run if isinstance(op, FileOp)]
    dests = [getattr(a.action, "dest", getattr(a.action, "path", None)) for op in files for a in op.actions]
    assert "/etc/apt/trusted.gpg.d/mockerfile-key.gpg" in dests
    assert "/etc/apt/trusted.gpg.d/mockerfile-plain.asc" in dests
    assert "/etc/apt/sources.list.d/mockerfile.list" in dests
    unpack = [a.action for op in files for a in op.actions if getattr(a.action, "attempt_unpack", False)]
    assert [u.dest for u in unpack] == ["/opt/pkg/"]
    # the parent's outputs are copied onto the `from` base of `run`; the output sources come from
    # the writable context mount after the last step
    build_steps = [op for op in _ops(g, "build") if isinstance(op, ExecOp)]
    assert [op.meta.cwd for op in build_steps] == ["/src", "/src"]
    assert [sorted(m.dest for m in op.mounts) for op in build_steps] == [["/", "/assets", "/src"]] * 2
    child = [op for op in _ops(g, "child") if isinstance(op, ExecOp)]
    assert child[-1].meta.cwd == "/data"
    assert g.output("default").ref == g.output("child").ref


def test_target_selects_and_prunes() -> None:
    res = lower(GOLDEN / "every-key.yaml", target="build")
    o1 = run_pipeline(res.graph, pipeline_for(1, None, "build"))
    assert o1.names() == ["build"]
    assert not any(isinstance(op, SourceOp) and op.identifier.startswith("http") for op in o1.ops())
