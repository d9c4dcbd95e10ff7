"""The builder API: the ops and fields it makes, immutability, marshaling."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from mason.ir.builder import (
    DEFAULT_PATH,
    bind,
    cache,
    diff,
    git,
    http,
    image,
    local,
    merge,
    mkdir,
    mkfile,
    scratch,
    secret,
    ssh,
    tmpfs,
)
from mason.ir.codec import decode_definition
from mason.ir.errors import MasonError
from mason.ir.ops import (
    CacheOpt,
    CacheSharing,
    ConfigOp,
    DiffOp,
    ExecOp,
    FileOp,
    MergeOp,
    MkDir,
    MkFile,
    MountType,
    NetMode,
    Platform,
    SecretOpt,
    SecurityMode,
    SourceOp,
    TmpfsOpt,
    UserOpt,
)

AMD64 = Platform("amd64", "linux")


def test_image_run_root() -> None:
    s = image("busybox", platform="linux/amd64").run("echo hi > /x").root()
    op = s.op
    assert isinstance(op, ExecOp)
    src = op.inputs[0].op
    assert isinstance(src, SourceOp)
    assert src.identifier == "docker-image://docker.io/library/busybox:latest"
    assert src.platform == AMD64 and src.constraints == ()
    assert op.meta.args == ("/bin/sh", "-c", "echo hi > /x")
    assert op.meta.env == (f"PATH={DEFAULT_PATH}",)
    assert op.meta.cwd == "/" and op.meta.remove_mount_stubs_recursive
    assert [(m.input, m.dest, m.output) for m in op.mounts] == [(0, "/", 0)]
    assert s.ref.index == 0  # type: ignore[union-attr]
    assert op.metadata.caps == ()  # caps are computed where Definitions are written, not here


def test_env_cwd_user_land_in_meta() -> None:
    e = image("busybox").with_env("PATH", "/bin").with_env("A", "1").with_cwd("/src").with_cwd("sub") \
        .with_user("app").run(["make", "all"])
    m = e.exec_op.meta  # type: ignore[union-attr]
    assert m.args == ("make", "all") and m.env == ("PATH=/bin", "A=1")
    assert m.cwd == "/src/sub" and m.user == "app"


def test_scratch_file_chain() -> None:
    s = scratch().file(mkdir("/a").mkfile("/a/b", b"x"))
    op = s.op
    assert isinstance(op, FileOp) and op.inputs == ()
    a0, a1 = op.actions
    assert (a0.input, a0.secondary_input, a0.output) == (-1, -1, -1)
    assert a0.action == MkDir("/a", 0o755, False, None, -1)
    assert (a1.input, a1.secondary_input, a1.output) == (0, -1, 0)  # len(inputs)+0 = result of action 0
    assert a1.action == MkFile("/a/b", 0o644, b"x", None, -1)


def test_copy_between_states_and_owner() -> None:
    a = image("busybox")
    b = image("alpine")
    s = a.file(mkdir("/dst", parents=True).copy(b, "/etc/os-release", "/dst/", owner="app:0", create_dest_path=True))
    op = s.op
    assert [r.op for r in op.inputs] == [a.op, b.op]  # type: ignore[union-attr]
    mk, cp = op.actions  # type: ignore[union-attr]
    assert (mk.input, mk.secondary_input, mk.output) == (0, -1, -1)
    assert (cp.input, cp.secondary_input, cp.output) == (2, 1, 0)
    # names are looked up in the chain's base (input 0), not the action's input (BuildKit's llb)
    assert cp.action.owner.user == UserOpt(name="app", name_input=0)  # type: ignore[union-attr]
    assert cp.action.owner.group == UserOpt(id=0)  # type: ignore[union-attr]
    assert cp.action.mode == -1 and cp.action.timestamp == -1  # type: ignore[union-attr]


def test_mounts() -> None:
    base = image("busybox")
    other = image("alpine")
    e = base.run("make", mounts=[
        cache("/root/.cache", id="x", sharing="locked"), tmpfs("/tmp"), secret("/run/secrets/x", id="x"),
        bind(other, "/mnt", readonly=True), bind(other, "/out"), ssh(),
    ], network="none", security="insecure")
    op = e.exec_op
    assert op is not None
    # bind/cache/tmpfs sorted by destination, then secrets and ssh in the order given (llb's layout)
    assert [m.dest for m in op.mounts] == ["/", "/mnt", "/out", "/root/.cache", "/tmp", "/run/secrets/x",
                                           "/run/buildkit/ssh_agent.0"]
    assert op.meta.env[-1] == "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"
    by = {m.dest: m for m in op.mounts}
    assert by["/"].input == 0 and by["/"].output == 0
    assert by["/root/.cache"].mount_type == MountType.CACHE and by["/root/.cache"].input == -1
    assert by["/root/.cache"].cache == CacheOpt("x", CacheSharing.LOCKED) and by["/root/.cache"].output == -1
    assert by["/tmp"].tmpfs == TmpfsOpt() and by["/tmp"].mount_type == MountType.TMPFS
    assert by["/run/secrets/x"].secret == SecretOpt("x", 0, 0, 0o400, False)
    assert by["/mnt"].readonly and by["/mnt"].output == -1 and by["/mnt"].input == 1
    assert by["/out"].input == 1 and by["/out"].output == 1  # same input, deduped
    assert by["/run/buildkit/ssh_agent.0"].mount_type == MountType.SSH
    assert op.network == NetMode.NONE and op.security == SecurityMode.INSECURE
    assert e.get_mount("/out").ref.index == 1  # type: ignore[union-attr]
    assert e.root().ref.index == 0  # type: ignore[union-attr]
    with pytest.raises(MasonError, match="no writable mount at '/mnt'"):
        e.get_mount("/mnt")


def test_merge_and_diff() -> None:
    a, b = image("busybox"), scratch().file(mkfile("/f", "x"))
    m = merge([a, scratch(), b])
    assert isinstance(m.op, MergeOp) and m.op.merge_inputs == (0, 1)
    assert [r.op for r in m.op.inputs] == [a.op, b.op]
    assert merge([scratch(), a]).op is a.op
    assert merge([]).is_scratch()
    d = diff(a, m)
    assert isinstance(d.op, DiffOp) and (d.op.lower, d.op.upper) == (0, 1)
    d2 = diff(scratch(), m)
    assert (d2.op.lower, d2.op.upper) == (-1, 0)  # type: ignore[union-attr]


def test_sources() -> None:
    src = local("context", include=["src/"], exclude=["*.o"]).op
    assert isinstance(src, SourceOp) and src.identifier == "local://context" and src.platform is None
    assert dict(src.attrs) == {"local.includepattern": '["src/"]', "local.excludepatterns": '["*.o"]'}
    g = git("https://github.com/moby/buildkit.git", "v0.11.6").op
    assert g.identifier == "git://github.com/moby/buildkit.git#v0.11.6"  # type: ignore[union-attr]
    assert dict(g.attrs)["git.fullurl"] == "https://github.com/moby/buildkit.git"  # type: ignore[union-attr]
    h = http("https://example.com/x.tgz", checksum="sha256:" + "a" * 64, perm=0o755).op
    assert h.identifier == "https://example.com/x.tgz"  # type: ignore[union-attr]
    assert dict(h.attrs) == {"http.checksum": "sha256:" + "a" * 64, "http.perm": "0755"}  # type: ignore[union-attr]


def test_states_are_immutable() -> None:
    s = image("busybox")
    s2 = s.with_env("A", "1").with_cwd("/x")
    assert s.env == () and s.cwd == "/" and s2.env == (("A", "1"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cwd = "/y"  # type: ignore[misc]
    s.run("true")
    assert s.op.kind == "source"  # type: ignore[union-attr]


def test_config_op() -> None:
    s = image("busybox").config(("add", "ExposedPorts", '{"80/tcp":{}}'), created_by="EXPOSE 80/tcp")
    assert isinstance(s.op, ConfigOp) and s.op.created_by == "EXPOSE 80/tcp"


def test_marshal_round_trip() -> None:
    s = image("busybox").run("true", name="step").root()
    data = s.marshal(image_config={"config": {"Cmd": ["sh"]}})
    dd = decode_definition(data)
    assert dd.ref.op == s.op and dd.image_config == {"config": {"Cmd": ["sh"]}}
    assert dd.ref.op.metadata.describe("llb.customname") == "step"
    # the terminal's caps come from mason.ir.caps when the Definition is written, not the builder
    assert dd.terminal_metadata is not None
    assert dict(dd.terminal_metadata.caps) == {"constraints": True, "meta.description": True, "platform": True}
    with pytest.raises(MasonError, match="cannot marshal scratch"):
        scratch().marshal()


def test_example_script_writes_a_definition() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "examples/builder_graph.py"], cwd=root, capture_output=True, check=True)
    dd = decode_definition(out.stdout)
    kinds = {op.kind for op in dd.ops}
    assert kinds == {"source", "exec", "file", "merge"}
    assert dd.image_config["config"]["Cmd"] == ["/app/app"]  # type: ignore[index]
