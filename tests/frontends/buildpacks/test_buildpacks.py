"""The buildpacks frontend: golden lowering (text IR) of a descriptor using every key and of
the corpus descriptors, located errors with suggestions, fuzzed TOML never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.driver import pipeline_for
from mason.frontends.base import FrontendRequest
from mason.frontends.buildpacks import BuildpacksFrontend, read_project
from mason.ir.errors import MasonError
from mason.ir.ops import ExecOp, MergeOp, walk_ops
from mason.ir.resolver import InMemoryResolver, PlatformSpec
from mason.ir.text import format_graph
from mason.passes import run_pipeline

GOLDEN = Path(__file__).parent / "golden"
CORPUS = Path(__file__).parents[3] / ".." / "shared" / "corpus" / "buildpacks"
REGEN = os.environ.get("MASON_REGEN_GOLDEN") == "1"
PROJECTS = [p for p in sorted(CORPUS.glob("*.toml")) if "project" in p.name]


def resolver() -> InMemoryResolver:
    r = InMemoryResolver()
    base = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}
    for i, name in enumerate(("busybox", "runbase", "cachedbp:1", "cnbs/sample-builder:bionic",
                              "paketo-buildpacks/nginx", "builder-x")):
        r.add(name, base, digest="sha256:" + str(i) * 64)
    return r


def lower(text: str, name: str = "project.toml", **kw):
    req = FrontendRequest(text, name, platform=PlatformSpec.parse("linux/amd64"), resolver=resolver(), **kw)
    return BuildpacksFrontend().lower(req)


CASES = [("three", GOLDEN / "three.project.toml")] + [("corpus-" + p.stem, p) for p in PROJECTS]


@pytest.mark.parametrize("name,path", CASES, ids=[c[0] for c in CASES])
def test_golden(name: str, path: Path) -> None:
    text = path.read_text()
    try:
        res = lower(text, path.name, build_args={"BUILDER": "builder-x"} if "builder" not in text else {})
        got = "## -O0\n" + format_graph(res.graph) + "## -O1\n" + format_graph(
            run_pipeline(res.graph, pipeline_for(1, None, None)))
    except MasonError as e:
        got = "## error\n" + e.format().replace(str(path), path.name) + "\n"
    exp = GOLDEN / f"{name}.expected"
    if REGEN:
        exp.write_text(got)
        return
    if not exp.exists():
        pytest.fail(f"{exp.name} is missing: run with MASON_REGEN_GOLDEN=1 and review it")
    assert got == exp.read_text(), f"{name}: lowering changed (MASON_REGEN_GOLDEN=1 to accept)"


def test_lifecycle_shape() -> None:
    g = lower((GOLDEN / "three.project.toml").read_text()).graph
    ops = walk_ops([g.output("default").ref.op])
    execs = [op for op in ops if isinstance(op, ExecOp)]
    names = [op.metadata.describe("llb.customname") for op in execs]
    assert names[0] == "[buildpacks] detect" and names[-1] == "[buildpacks] export launch layers"
    assert len([n for n in names if n and n.startswith("[buildpacks] build ")]) == 4
    build = [op for op in execs if "bin/build" in op.meta.args[-1]]
    for op in build:
        script = op.meta.args[-1]
        for var in ("CNB_LAYERS_DIR", "CNB_PLATFORM_DIR", "CNB_BUILD_PLAN_PATH", "CNB_BP_PLAN_PATH"):
            assert var in script
        caches = [m for m in op.mounts if m.cache is not None]
        assert [m.dest for m in caches] == ["/cache"] and caches[0].cache.sharing.name == "LOCKED"
    merges = [op for op in ops if isinstance(op, MergeOp)]
    assert len(merges) == 1 and len(merges[0].merge_inputs) == 3 + 4 + 1  # run, app, launcher, 4 bps, processes
    cfg = run_pipeline(g, pipeline_for(1, None, None)).output("default").image_config
    assert cfg["config"]["Entrypoint"] == ["/cnb/lifecycle/launcher"]
    assert "Cmd" not in cfg["config"] and cfg["config"]["WorkingDir"] == "/workspace"
    assert {"io.buildpacks.project.metadata", "io.buildpacks.build.metadata",
            "io.buildpacks.lifecycle.metadata"} <= set(cfg["config"]["Labels"])


@pytest.mark.parametrize("text,where,message", [
    ('[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuilderr = "x"\n', "4:1",
     "unknown key 'builderr' in [io.buildpacks] (did you mean 'builder'?)"),
    ('[project]\nnmae = "x"\n', "2:1", "unknown key 'nmae' in [project] (did you mean 'name'?)"),
    ('[build]\nincldue = ["a"]\n', "2:1", "unknown key 'incldue' in [build] (did you mean 'include'?)"),
    ('[[build.buildpacks]]\nuri = "../x"\n', "2:1", "outside the build context"),
    ('[[build.buildpacks]]\nid = "a"\n', "1:1", "needs a 'version'"),
    ('[_]\nschema-version = "0.3"\n', "2:1", "unsupported schema-version '0.3'"),
    ('[build]\ninclude = ["a"]\nexclude = ["b"]\n', "3:1", "both 'include' and 'exclude'"),
    ('[[build.env]]\nname = "1x"\n', "2:1", "invalid environment variable name '1x'"),
    ('[project\n', "1:9", "invalid TOML"),
])
def test_located_errors(text: str, where: str, message: str) -> None:
    with pytest.raises(MasonError) as info:
        lower(text, build_args={"BUILDER": "builder-x"})
    e = info.value
    assert f"{e.loc.line}:{e.loc.col}" == where, e.format()
    assert message in e.message, e.format()
    assert e.format().startswith(f"project.toml:{where}: error: ")


def test_no_builder_and_no_buildpacks() -> None:
    with pytest.raises(MasonError, match="no builder image"):
        lower('[[build.buildpacks]]\nuri = "bp"\n')
    with pytest.raises(MasonError, match="no buildpacks"):
        lower('[build]\nbuilder = "busybox"\n')


def test_selection_hooks() -> None:
    fe = BuildpacksFrontend()
    assert fe.claims("app/project.toml", "") and not fe.claims("pyproject.toml", "")
    assert fe.handles_syntax("mason/buildpacks") and not fe.handles_syntax("r2d4/mocker")


_keys = st.sampled_from(["_", "io", "buildpacks", "group", "pre", "post", "build", "env", "name", "value", "id",
                         "version", "uri", "script", "api", "inline", "builder", "include", "exclude", "project",
                         "schema-version", "optional", "zz"])
_val = st.recursive(st.one_of(st.text(max_size=8), st.booleans(), st.integers(), st.sampled_from(["0.2", "bp"])),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)),
                    max_leaves=20)


def _toml(d: dict, prefix: str = "") -> str:
    import json

    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{json.dumps(k)} = {_inline(v)}")
    out = "\n".join(lines) + "\n"
    for k, v in tables:
        name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
        out += f"[{name}]\n" + _toml(v, name)
    return out


def _inline(v) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_inline(x)}" for k, x in v.items()) + "}"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _val, max_size=4))
def test_fuzz_structured(doc: dict) -> None:
    try:
        lower(_toml(doc), build_args={"BUILDER": "builder-x"})
    except MasonError as e:
        assert e.format()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text(text: str) -> None:
    try:
        read_project(text)
    except MasonError as e:
        assert e.loc is not None
