"""Named build contexts in the Dockerfile lowering (BuildKit's ``context:NAME`` options): which
names they replace, the ops and names they lower to, what a local directory follows, and the
driver's parsing of ``--build-context``."""

from __future__ import annotations

import dataclasses

import pytest

from mason.build_contexts import parse_build_contexts
from mason.frontends.base import FrontendRequest
from mason.frontends.dockerfile.frontend import DockerfileFrontend
from mason.frontends.dockerfile.lower_contexts import context_key
from mason.ir.errors import MasonError
from mason.ir.ops import ExecOp, FileOp, SourceOp, walk_ops
from mason.ir.resolver import FixedResolver, PlatformSpec

AMD64 = PlatformSpec.parse("linux/amd64")


def lower(text: str, contexts: dict[str, str], excludes: dict | None = None, target: str | None = None,
          resolver=None):
    fe = DockerfileFrontend()
    req = FrontendRequest(text, platform=AMD64, named_contexts=contexts, context_excludes=excludes or {},
                          target=target, resolver=resolver)
    return fe.lower(req)


def sources(res, output: str = "default") -> dict[str, SourceOp]:
    ops = walk_ops([res.graph.output(output).ref.op])
    return {op.identifier: op for op in ops if isinstance(op, SourceOp)}


def name_of(op) -> str | None:
    return op.metadata.describe("llb.customname")


@pytest.mark.parametrize("name,key", [
    ("alpine", "alpine"), ("alpine:latest", "alpine"), ("docker.io/library/alpine:latest", "alpine"),
    ("alpine:3.19", "alpine:3.19"), ("ghcr.io/o/x", "ghcr.io/o/x"), ("build", "build"), ("Not-A-Ref", None),
])
def test_context_key_is_buildkits_familiar_form(name, key):
    assert context_key(name) == key


def test_from_an_image_context_is_that_image_unpinned_with_its_config():
    cfg = {"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
           "config": {"Env": ["PATH=/bin", "FROM_CTX=1"], "WorkingDir": "/srv"}}
    resolver = FixedResolver(cfg, "sha256:" + "1" * 64)
    res = lower("FROM docker.io/library/alpine:latest\nRUN pwd\n", {"alpine": "docker-image://busybox:1.36"},
                resolver=resolver)
    srcs = sources(res)
    assert list(srcs) == ["docker-image://docker.io/library/busybox:1.36"]  # BuildKit does not pin it
    assert name_of(srcs["docker-image://docker.io/library/busybox:1.36"]) == "[context alpine] busybox:1.36"
    [run] = [op for op in walk_ops([res.graph.output("default").ref.op]) if isinstance(op, ExecOp)]
    assert run.meta.cwd == "/srv" and "FROM_CTX=1" in run.meta.env
    out_cfg = res.graph.output("default").image_config
    assert "FROM_CTX=1" in out_cfg["config"]["Env"] and "created" not in out_cfg


def test_a_stage_named_like_a_context_is_replaced_whole():
    """The stage's own instructions are not lowered: ``COPY missing`` would read the main
    context, and no main-context source appears; COPY --from=deps reads the context."""
    text = "FROM busybox AS deps\nCOPY missing /\nRUN false\nFROM scratch\nCOPY --from=deps /lib /lib\n"
    res = lower(text, {"deps": "local:deps"})
    srcs = sources(res)
    assert "local://context" not in srcs and "docker-image://docker.io/library/busybox:latest" not in srcs
    dep = srcs["local://deps"]
    assert dict(dep.attrs) == {"local.followpaths": '["lib"]', "local.sharedkeyhint": "context:deps-"}
    assert name_of(dep) == "[context deps] load from client"
    assert not any(isinstance(op, ExecOp) for op in walk_ops([res.graph.output("default").ref.op]))
    # the replaced stage as the target: all of the directory, and the result is the directory
    whole = lower("FROM busybox AS deps\nRUN false\n", {"deps": "local:deps"})
    assert list(sources(whole)) == ["local://deps"] and "local.followpaths" not in dict(sources(whole)["local://deps"].attrs)


def test_a_local_context_follows_what_copy_reads_and_all_of_it_otherwise():
    copy_only = lower("FROM scratch\nCOPY --from=files /b /a/x /\n", {"files": "local:files"},
                      {"files": ("*.tmp",)})
    attrs = dict(sources(copy_only)["local://files"].attrs)
    assert attrs["local.followpaths"] == '["a/x","b"]' and attrs["local.excludepatterns"] == '["*.tmp"]'
    mounted = lower("FROM busybox\nCOPY --from=files /b /\nRUN --mount=from=files,target=/f ls /f\n",
                    {"files": "local:files"})
    assert "local.followpaths" not in dict(sources(mounted)["local://files"].attrs)
    # a stage the target does not need does not add its paths
    two = lower("FROM scratch AS a\nCOPY --from=files /only-a /\nFROM scratch AS b\nCOPY --from=files /b /\n",
                {"files": "local:files"}, target="b")
    assert dict(sources(two, "b")["local://files"].attrs)["local.followpaths"] == '["b"]'


def test_url_scratch_and_git_contexts():
    res = lower("FROM busybox\nCOPY --from=tool /context /t\nCOPY --from=empty / /e\nCOPY --from=src /x /x\n",
                {"tool": "https://example.com/tool.sh", "empty": "docker-image://scratch",
                 "src": "https://github.com/o/r.git#v1:sub"})
    srcs = sources(res)
    tool = srcs["https://example.com/tool.sh"]
    assert dict(tool.attrs) == {"http.filename": "context"} and name_of(tool) == "[context tool] https://example.com/tool.sh"
    git = srcs["git://github.com/o/r.git#v1:sub"]
    assert name_of(git) == "[internal] load git source https://github.com/o/r.git#v1:sub"
    ops = walk_ops([res.graph.output("default").ref.op])
    from_root = [a for op in ops if isinstance(op, FileOp) for a in op.actions if getattr(a.action, "src", None) == "/"]
    assert [a.secondary_input for a in from_root] == [-1]  # COPY --from=empty: from scratch


def test_scratch_and_context_are_never_replaced_and_stages_win_over_images():
    res = lower("FROM scratch AS s\nCOPY f /\nFROM s\nCOPY --from=context /g /\n",
                {"scratch": "docker-image://busybox", "context": "docker-image://busybox"})
    assert not any("busybox" in i for i in sources(res))  # COPY --from=context is an image called context


def test_oci_layout_context_is_buildkits_oci_source_with_the_layouts_config():
    digest = "sha256:" + "2" * 64

    class Layouts:
        calls: list = []

        def resolve_oci_layout(self, store, dgst, platform):
            self.calls.append((store, dgst, str(platform)))
            return {"architecture": "amd64", "os": "linux", "config": {"Env": ["FROM_LAYOUT=1"]}}

    r = Layouts()
    res = lower("FROM base\n", {"base": f"oci-layout://base@{digest}"}, resolver=r)
    [src] = sources(res).values()
    assert src.identifier == f"oci-layout://docker.io/library/base@{digest}"
    assert dict(src.attrs) == {"oci.store": "base"} and name_of(src) == "[context base] OCI load from client"
    assert r.calls == [("base", digest, "linux/amd64")]
    assert "FROM_LAYOUT=1" in res.graph.output("default").image_config["config"]["Env"]
    with pytest.raises(MasonError, match="has no digest"):
        lower("FROM base\n", {"base": "oci-layout://base"}, resolver=r)


def test_unsupported_source_is_a_located_error():
    with pytest.raises(MasonError) as e:
        lower("FROM base\n", {"base": "ftp://x"})
    assert "unsupported context source ftp for base" in e.value.message and e.value.loc.line == 1


def test_without_contexts_nothing_changes():
    text = "FROM busybox AS b\nRUN true\nFROM scratch\nCOPY --from=b /x /\nCOPY y /\n"
    a, b = lower(text, {}), lower(text, {"other": "docker-image://alpine"})
    from mason.ir.codec import marshal

    assert marshal(a.graph.output("default").ref) == marshal(b.graph.output("default").ref)


def test_parse_build_contexts(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / ".dockerignore").write_text("*.log\n")
    got = parse_build_contexts(["docker.io/library/alpine=docker-image://busybox", f"files={d}",
                                "tool=https://example.com/t", "empty=docker-image://scratch"])
    assert got.values == {"alpine": "docker-image://busybox", "files": "local:files",
                          "tool": "https://example.com/t", "empty": "docker-image://scratch"}
    assert got.dirs == {"files": str(d)} and got.excludes == {"files": ("*.log",)}
    for bad, needle in [("x", "expected NAME=VALUE"), ("a=b=docker-image://", "unsupported context source"),
                        ("x=docker-image://UPPER", "--build-context x=docker-image://UPPER"),
                        ("x=oci-layout:///nonexistent:t", "is not a directory"),
                        (f"x=oci-layout://{d}", "not an OCI image layout"), ("a=1", "not a directory")]:
        with pytest.raises(MasonError) as e:
            parse_build_contexts([bad])
        assert needle in e.value.message and e.value.message.startswith("--build-context"), e.value.message
    with pytest.raises(MasonError, match="given twice"):
        parse_build_contexts(["a=docker-image://x", "a:latest=docker-image://y"])


def test_frontend_request_fields_reach_the_lowering():
    opts = DockerfileFrontend.options(FrontendRequest("FROM x\n", named_contexts={"x": "local:x"},
                                                      context_excludes={"x": ("y",)}))
    assert dataclasses.asdict(opts)["named_contexts"] == {"x": "local:x"}
    assert opts.context_excludes == {"x": ("y",)}
