"""The builder API as BuildKit's llb writes ops: env/cwd rules, mount layout, owners, sources,
metadata (names, descriptions, progress groups, locations), image configs, placeholders."""

from __future__ import annotations

import pytest

from mason.ir.builder import (
    DEFAULT_PATH,
    MountSpec,
    State,
    bind,
    cache,
    chown,
    config_change,
    copy,
    device,
    diff,
    git,
    http,
    image,
    local,
    merge,
    mkdir,
    mkfile,
    oci_layout,
    placeholder,
    progress_group,
    scratch,
    secret,
    ssh,
    substitute,
    tmpfs,
)
from mason.ir.codec import decode_definition
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.ops import ChownOpt, ExecOp, FileOp, MergeOp, NetMode, Platform, SourceOp, UserOpt

ARM = Platform("arm64", "linux")


def test_env_is_an_envlist_and_path_defaults_last() -> None:
    e = scratch().with_env("A", "1").with_env("B", "2").with_env("A", "3").run(["x"], env={"C": "4"})
    assert e.exec_op.meta.env == ("B=2", "A=3", "C=4", "PATH=" + DEFAULT_PATH)  # type: ignore[union-attr]


def test_cwd_follows_llb_dir() -> None:
    s = scratch().with_cwd("/a/../b/")
    assert s.cwd == "/a/../b/"  # an absolute path as written
    assert s.with_cwd("c/../d").cwd == "/b/d"  # a relative one joined and cleaned (path.Join)
    assert scratch().with_cwd("x").cwd == "/x"


def test_mount_layout_outputs_and_inputs() -> None:
    a, b = image("a"), image("b")
    e = a.run(["true"], mounts=[
        ssh("/s2", id="agent"), bind(b, "/z"), secret(id="tok", env="TOKEN"), bind(b, "/m", no_output=True),
        secret("/run/s", id="f", optional=True), cache("/c", sharing="private", source=a, readonly=True),
        tmpfs("/t", size=10),
    ], network="host", devices=[device("nvidia.com/gpu=all", optional=True)])
    op = e.exec_op
    assert isinstance(op, ExecOp)
    assert [(m.dest, m.input, m.output) for m in op.mounts] == [
        ("/", 0, 0), ("/c", 0, -1), ("/m", 1, -1), ("/t", -1, -1), ("/z", 1, 1), ("/s2", -1, 0), ("/run/s", -1, 0)]
    # secret/ssh: output left unset (0) as llb does, and still no output of the op
    assert op.num_outputs() == 2 and not op.mounts[-1].has_output and op.mount_for_output(0).dest == "/"
    assert [r.op for r in op.inputs] == [a.op, b.op]
    assert [(s.id, s.name, s.optional) for s in op.secret_env] == [("tok", "TOKEN", False)]
    assert op.meta.env[-1] == "SSH_AUTH_SOCK=/s2" and op.network == NetMode.HOST
    assert op.cdi_devices[0].name == "nvidia.com/gpu=all" and op.cdi_devices[0].optional
    assert e.get_mount("/z").ref.index == 1  # type: ignore[union-attr]
    with pytest.raises(MasonError, match="must be absolute"):
        bind(b, "rel")
    with pytest.raises(MasonError, match="must be absolute"):  # a MountSpec made by hand too
        a.run(["x"], mounts=[MountSpec(".cache", b)])
    ro = a.run(["x"], readonly_root=True, mounts=[bind(b, "/w")]).exec_op
    assert ro is not None and [(m.dest, m.output, m.readonly) for m in ro.mounts] == [("/", -1, True), ("/w", 0, False)]
    with pytest.raises(MasonError, match="unknown network mode"):
        a.run(["x"], network="bridge")


def test_exec_options_reach_meta() -> None:
    m = image("a").with_user("app").run(["x"], proxy_env={"HTTP_PROXY": "http://p"}, hostname="h",
                                        extra_hosts=[("db", "10.0.0.2")], ulimits=[("nofile", 1, 2)],
                                        valid_exit_codes=[0, 1]).exec_op.meta  # type: ignore[union-attr]
    assert m.proxy_env.http_proxy == "http://p" and m.hostname == "h" and m.user == "app"  # type: ignore[union-attr]
    assert m.extra_hosts[0].ip == "10.0.0.2" and m.ulimits[0].hard == 2 and m.valid_exit_codes == (0, 1)


def test_owners_as_llb_with_user() -> None:
    assert chown("root:staff") == ChownOpt(UserOpt(id=0), UserOpt(name="staff", name_input=-2))
    assert chown("1000") == ChownOpt(UserOpt(id=1000), None)
    assert chown("u:") == ChownOpt(UserOpt(name="u", name_input=-2), UserOpt(name="", name_input=-2))
    assert chown(str(1 << 32)).user.name == str(1 << 32)  # type: ignore[union-attr]
    assert chown((5, 6)) == ChownOpt(UserOpt(id=5), UserOpt(id=6))
    s = scratch().file(mkdir("/a", owner="app").copy(image("x"), "/f", "/a/", owner="app"))
    a0, a1 = s.op.actions  # type: ignore[union-attr]
    # every action looks names up in the chain's base: here scratch (-1), as BuildKit's llb
    assert a0.action.owner.user.name_input == -1 and a1.action.owner.user.name_input == -1


def test_file_chain_indexes() -> None:
    a, b = image("a"), image("b")
    s = a.file(copy(b, "/x", "/x").copy(a, "/y", "/y") + mkfile("/z", "z"))
    op = s.op
    assert isinstance(op, FileOp)
    assert [(x.input, x.secondary_input, x.output) for x in op.actions] == [(0, 1, -1), (2, 0, -1), (3, -1, 0)]


def test_metadata_names_descriptions_progress_and_locations() -> None:
    loc = SourceLoc("Dockerfile", 3, 1)
    pg = progress_group("g1", "group one")
    s = image("a", name="base").at(loc).with_progress(pg).run(["x"], description={"k": "v"}).root()
    md = s.op.metadata  # type: ignore[union-attr]
    assert md.describe("k") == "v" and md.progress_group == pg
    assert s.op.loc == loc and s.op.inputs[0].op.metadata.describe("llb.customname") == "base"  # type: ignore[union-attr]
    s2 = s.file(mkdir("/d"), name="make d", loc=SourceLoc("Dockerfile", 4, 1))
    assert s2.op.metadata.describe("llb.customname") == "make d" and s2.op.loc.line == 4  # type: ignore[union-attr]
    dd = decode_definition(s2.marshal())
    assert dd.ref.op.loc is not None and dd.ref.op.loc.line == 4


def test_platforms() -> None:
    s = image("a", platform="linux/arm64")
    assert s.op.platform == ARM and s.platform == ARM  # type: ignore[union-attr]
    assert s.run(["x"]).exec_op.platform == ARM  # type: ignore[union-attr]
    # FileOp, MergeOp, DiffOp and local/git/http sources carry no platform (BuildKit v0.12+);
    # the state keeps it for the ops made later
    made = scratch(platform="linux/arm64").file(mkdir("/x"))
    assert made.op.platform is None and made.platform == ARM  # type: ignore[union-attr]
    assert made.run(["x"]).exec_op.platform == ARM  # type: ignore[union-attr]
    assert merge([s, made]).op.platform is None  # type: ignore[union-attr]
    assert diff(s, made).op.platform is None  # type: ignore[union-attr]
    assert local("ctx").op.platform is None  # type: ignore[union-attr]
    assert http("https://x.example/f", platform="linux/arm64").op.platform is None  # type: ignore[union-attr]
    assert git("https://github.com/a/b.git", platform="linux/arm64").op.platform is None  # type: ignore[union-attr]
    assert oci_layout("store/a:1", platform="linux/arm64").op.platform == ARM  # type: ignore[union-attr]
    with pytest.raises(MasonError, match="invalid platform"):
        image("a", platform="arm64")


def test_image_config_travels_with_the_state() -> None:
    cfg = {"config": {"Env": ["A=1"]}}
    s = image("a", config=cfg).with_env("A", "1").run(["x"]).root().file(mkdir("/d"))
    assert s.image_config is cfg
    out = s.output("app")
    assert out.name == "app" and out.image_config is cfg and out.ref == s.ref
    assert decode_definition(s.marshal()).image_config == cfg
    c = s.config(config_change("set", "User", '"app"'), created_by="USER app")
    assert c.image_config is cfg and c.op.kind == "config"  # type: ignore[union-attr]


def test_sources_as_buildkit() -> None:
    g = git("https://u:pw@example.com/r.git", "main", subdir="sub", keep_git_dir=True).op
    assert isinstance(g, SourceOp) and g.identifier == "git://example.com/r.git#main:sub"
    assert dict(g.attrs) == {"git.fullurl": "https://u:pw@example.com/r.git", "git.authheadersecret": "GIT_AUTH_HEADER",
                             "git.authtokensecret": "GIT_AUTH_TOKEN", "git.keepgitdir": "true"}
    s = git("git@github.com:org/r.git").op
    assert s.identifier == "git://github.com/org/r.git" and dict(s.attrs)["git.mountsshsock"] == "default"  # type: ignore[union-attr]
    assert dict(git("github.com/org/r").op.attrs)["git.fullurl"] == "https://github.com/org/r"  # type: ignore[union-attr]
    h = http("https://e.com/f", filename="f", uid=1, gid=2).op
    assert dict(h.attrs) == {"http.filename": "f", "http.uid": "1", "http.gid": "2"}  # type: ignore[union-attr]
    lo = local("ctx", follow_paths=["a<b", "é"], shared_key_hint="ctx", exclude=["*.o"]).op
    assert dict(lo.attrs)["local.followpaths"] == '["a\\u003cb","é"]'  # type: ignore[union-attr]
    o = oci_layout("store/app:1@sha256:" + "a" * 64, store="s1", layer_limit=2).op
    assert o.identifier.startswith("oci-layout://store/app:1@")  # type: ignore[union-attr]
    assert dict(o.attrs) == {"oci.store": "s1", "oci.layerlimit": "2"}  # type: ignore[union-attr]


def test_placeholder_substitute_rebuilds_downstream_once() -> None:
    ctx = placeholder("local://context")
    base = image("a")
    built = base.file(copy(ctx, "/src", "/app")).run(["make"], mounts=[bind(ctx, "/ctx", readonly=True)]).root()
    other = merge([built, scratch().file(copy(ctx, "/x", "/x"))])
    real = local("context", follow_paths=["src", "x"])
    new_built, new_other = substitute([built.ref, other.ref], ctx, real)  # type: ignore[list-item]
    assert isinstance(new_other.op, MergeOp) and new_other.op.inputs[0] == new_built
    seen = {id(op) for op in [new_built.op, new_other.op]}
    for r in (new_built, new_other):
        stack = [r.op]
        while stack:
            op = stack.pop()
            assert op is not ctx.op
            stack += [i.op for i in op.inputs]
    assert len(seen) == 2 and new_built.op.metadata == built.op.metadata  # type: ignore[union-attr]
    assert base.op in [i.op for i in new_built.op.inputs[0].op.inputs]


def test_exec_env_from_a_state_env_with_a_name_twice() -> None:
    """A State made with a name twice: the exec env keeps the first place and the last value
    (as a dict), PATH defaulted; the same env without duplicates comes out as written."""
    dup = State(image("a").ref, (("A", "1"), ("B", "2"), ("A", "3")))
    assert dup.run(["x"]).exec_op.meta.env == ("A=3", "B=2", "PATH=" + DEFAULT_PATH)  # type: ignore[union-attr]
    plain = State(image("a").ref, (("PATH", "/p"), ("A", "1")))
    assert plain.run(["x"]).exec_op.meta.env == ("PATH=/p", "A=1")  # type: ignore[union-attr]
