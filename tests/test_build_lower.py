"""The driver's lowering path (``mason.driver.lower_request``) and ``mason lower``: file and
``.dockerignore`` discovery, ``# syntax=``, build args, ``--target`` as prune, levels, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mason.cli.main import main
from mason.driver import LowerRequest, lower_request, parse_build_args, pipeline_for
from mason.ir.codec import decode_graph, read_stream
from mason.ir.errors import MasonError
from mason.ir.resolver import InMemoryResolver

BUSYBOX = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"}}

MULTI = """\
FROM busybox AS a
RUN echo a > /a
FROM busybox AS b
EXPOSE 80
LABEL x=1
ENV E=1
RUN echo b > /b
FROM busybox
COPY --from=b /b /b
"""


def resolver() -> InMemoryResolver:
    r = InMemoryResolver()
    r.add("busybox", BUSYBOX)
    return r


def ctx(tmp_path: Path, text: str, ignore: str | None = None) -> Path:
    (tmp_path / "Dockerfile").write_text(text)
    if ignore is not None:
        (tmp_path / ".dockerignore").write_text(ignore)
    return tmp_path


def test_default_is_one_output_at_o1(tmp_path: Path) -> None:
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, MULTI))), resolver=resolver())
    assert res.graph.names() == ["default"]
    assert res.pipeline == "verify,hoist-config,dedupe,prune{targets=default}"
    assert all(op.kind != "config" for op in res.graph.ops())
    # stage a is pruned: nothing writes /a
    assert not any(op.kind == "exec" and "echo a > /a" in op.meta.args[-1] for op in res.graph.ops())


def test_o0_keeps_every_stage(tmp_path: Path) -> None:
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, MULTI)), level=0), resolver=resolver())
    assert res.graph.names() == ["a", "b", "2", "default"]
    assert any(op.kind == "config" for op in res.graph.ops())


def test_target_prunes(tmp_path: Path) -> None:
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, MULTI)), target="a"),
                        resolver=resolver())
    assert res.graph.names() == ["a"]
    with pytest.raises(MasonError, match="target stage 'nope' could not be found"):
        lower_request(LowerRequest(context=str(tmp_path), target="nope"), resolver=resolver())


def _run_digest(tmp_path: Path, text: str, level: int, target: str = "b") -> str:
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, text)), level=level, target=target),
                        resolver=resolver())
    out = res.graph.output(target).ref.op
    return out.digest


@pytest.mark.parametrize("edit", ["EXPOSE 81", "LABEL x=2"])
def test_config_edit_changes_later_run_only_at_o0(tmp_path: Path, edit: str) -> None:
    first = edit.split()[0]
    changed = MULTI.replace("EXPOSE 80" if first == "EXPOSE" else "LABEL x=1", edit)
    assert _run_digest(tmp_path, MULTI, 0) != _run_digest(tmp_path, changed, 0)
    assert _run_digest(tmp_path, MULTI, 1) == _run_digest(tmp_path, changed, 1)


def test_env_edit_changes_later_run_at_both_levels(tmp_path: Path) -> None:
    changed = MULTI.replace("ENV E=1", "ENV E=2")
    assert _run_digest(tmp_path, MULTI, 0) != _run_digest(tmp_path, changed, 0)
    assert _run_digest(tmp_path, MULTI, 1) != _run_digest(tmp_path, changed, 1)


def test_dockerignore_patterns_reach_the_context_source(tmp_path: Path) -> None:
    text = "FROM busybox\nCOPY . /app\n"
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, text, "# c\n*.log\n!keep.log\n/tmp/\n"))),
                        resolver=resolver())
    local = next(op for op in res.graph.ops() if op.kind == "source" and op.identifier == "local://context")
    assert json.loads(local.attr("local.excludepatterns")) == ["*.log", "!keep.log", "tmp"]
    assert local.attr("local.followpaths") is None  # "." follows everything
    # <Dockerfile>.dockerignore beside the Dockerfile wins
    (tmp_path / "Dockerfile.dockerignore").write_text("only-this\n")
    res = lower_request(LowerRequest(context=str(tmp_path)), resolver=resolver())
    local = next(op for op in res.graph.ops() if op.kind == "source" and op.identifier == "local://context")
    assert json.loads(local.attr("local.excludepatterns")) == ["only-this"]


def test_syntax_directive(tmp_path: Path) -> None:
    ok = "# syntax=docker/dockerfile:1.4\nFROM busybox\nRUN true\n"
    lower_request(LowerRequest(context=str(ctx(tmp_path, ok))), resolver=resolver())
    bad = "# syntax=example.com/frontend:1\nFROM busybox\n"
    with pytest.raises(MasonError) as info:
        lower_request(LowerRequest(context=str(ctx(tmp_path, bad))), resolver=resolver())
    assert info.value.loc.line == 1
    assert "example.com/frontend:1" in info.value.message


def test_build_args_and_platform(tmp_path: Path) -> None:
    text = "ARG IMG=busybox\nFROM $IMG\nARG V\nRUN echo $V\n"
    res = lower_request(LowerRequest(context=str(ctx(tmp_path, text)), build_args={"V": "7"},
                                     platform="linux/arm64"), resolver=resolver())
    run = next(op for op in res.graph.ops() if op.kind == "exec")
    assert "V=7" in run.meta.env
    assert run.platform.architecture == "arm64"


def test_parse_build_args() -> None:
    assert parse_build_args(["A=1", "B=", "C", "D"], {"C": "env"}) == {"A": "1", "B": "", "C": "env"}
    with pytest.raises(MasonError):
        parse_build_args(["=x"])


def test_pipeline_for() -> None:
    assert pipeline_for(0, None, None) == "verify"
    assert pipeline_for(2, None, "app").endswith("prune{targets=app},merge")
    assert pipeline_for(1, "verify,dedupe", "x") == "verify,dedupe"


def test_cli_lower_no_resolve(tmp_path: Path, capsys) -> None:
    c = ctx(tmp_path, MULTI)
    out = tmp_path / "out.llb"
    cfg = tmp_path / "config.json"
    rc = main(["lower", str(c), "--no-resolve", "-o", str(out), "--image-config", str(cfg)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "warning: not resolving base images" in err
    g = decode_graph(out.read_bytes())
    assert g.names() == ["default"]
    src = next(op for op in g.ops() if op.kind == "source")
    assert src.identifier == "docker-image://docker.io/library/busybox:latest"
    config = json.loads(cfg.read_text())
    assert config["history"][-1]["created_by"] == "COPY /b /b # buildkit"


def test_cli_lower_o0_writes_a_stream(tmp_path: Path) -> None:
    c = ctx(tmp_path, MULTI)
    out = tmp_path / "out.llb"
    assert main(["lower", str(c), "-f", str(c / "Dockerfile"), "--no-resolve", "-O0",
                 "-o", str(out)]) == 0
    assert len(read_stream(out.read_bytes())) == 4


def test_cli_lower_text_and_errors(tmp_path: Path, capsys) -> None:
    c = ctx(tmp_path, "FROM busybox\nCOPY --from=0 /a /b\n")
    assert main(["lower", str(c), "--no-resolve", "-S"]) == 1
    err = capsys.readouterr().err
    assert "Dockerfile:2:1: error: circular dependency detected on stage: 0" in err
    assert "    COPY --from=0 /a /b\n    ^" in err
    ctx(tmp_path, "FROM busybox\nRUN true\n")
    assert main(["lower", str(c), "--no-resolve", "-S"]) == 0
    assert "exec" in capsys.readouterr().out
    assert main(["lower", str(c), "--no-resolve"]) == 1  # no -o


def test_cli_lower_build_contexts(tmp_path: Path, capsys) -> None:
    """``mason lower --build-context``: an image replaces ``FROM NAME``, a directory is the
    ``local://NAME`` source of ``COPY --from=NAME``; a bad value is one line naming the flag."""
    c = tmp_path / "ctx"
    c.mkdir()
    ctx(c, "FROM base\nCOPY --from=src /f /f\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("f\n")
    out = tmp_path / "out.llb"
    assert main(["lower", str(c), "--no-resolve", "-o", str(out), "--build-context", "base=docker-image://alpine:3.19",
                 "--build-context", f"src={other}"]) == 0
    ids = [op.identifier for op in decode_graph(out.read_bytes()).ops() if op.kind == "source"]
    assert ids == ["docker-image://docker.io/library/alpine:3.19", "local://src"]
    capsys.readouterr()
    assert main(["lower", str(c), "--no-resolve", "-S", "--build-context", "base"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --build-context base: expected NAME=VALUE") and "\n" not in err
