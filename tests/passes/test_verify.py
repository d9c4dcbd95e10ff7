"""``verify``: identity on good graphs; each kind of bad index is an error naming the op
(kind, digest, location) and the field."""

from __future__ import annotations

import re

import pytest

from mason.ir.builder import cache, image, local, merge, scratch
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.ops import (
    ChownOpt,
    ConfigChange,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    Meta,
    MkDir,
    Mount,
    MountType,
    Ref,
    SourceOp,
    UserOpt,
)
from mason.passes import run_pipeline
from tests.ir.strategies import fixed_graph

SRC = SourceOp("docker-image://docker.io/library/busybox:latest")
LOC = SourceLoc("Dockerfile", 3, 1)


def check(op_or_graph: object) -> None:
    g = op_or_graph if isinstance(op_or_graph, Graph) else Graph.of(op_or_graph)  # type: ignore[arg-type]
    run_pipeline(g, "verify")


def test_good_graphs_pass_unchanged() -> None:
    ctx = local("context")
    base = image("busybox", platform="linux/amd64")
    built = base.run("make", mounts=[cache("/root/.cache", id="x")]).root()
    app = scratch().copy(built, "/app", "/app").mkdir("/data")
    g = Graph((Output("app", merge([base, app]).ref, {}), Output("ctx", ctx.ref)))
    assert run_pipeline(g, "verify") is g
    fg = fixed_graph()
    assert run_pipeline(fg, "verify") is fg


def error_of(op_or_graph: object) -> MasonError:
    with pytest.raises(MasonError) as ei:
        check(op_or_graph)
    return ei.value


def test_error_names_op_digest_location_and_field() -> None:
    op = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(2, dest="/src", readonly=True)),
                inputs=(Ref(SRC),), loc=LOC)
    e = error_of(op)
    assert e.loc == LOC
    assert e.message == (f"exec op {op.digest} (Dockerfile:3:1): mounts[1] (/src).input: 2 out of range "
                         "(the op has 1 input; -1 = scratch)")
    assert e.format().startswith("Dockerfile:3:1: error: exec op sha256:")


@pytest.mark.parametrize("op, field, problem", [
    (ExecOp(Meta(("true",)), (Mount(0, dest="/src", output=0),), inputs=(Ref(SRC),)), "mounts", "no root mount at /"),
    (ExecOp(Meta(()), (Mount(0, dest="/", output=0),), inputs=(Ref(SRC),)), "meta.args", "empty command"),
    (ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(-1, dest="/", output=1)), inputs=(Ref(SRC),)),
     "mounts[1] (/).dest", "two mounts at the same destination"),
    (ExecOp(Meta(("true",)), (Mount(0, dest="/", output=1),), inputs=(Ref(SRC),)),
     "mounts[*].output", "outputs [1] must be numbered 0..0, each once"),
    (ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(-1, dest="/c", output=1, mount_type=MountType.CACHE)),
            inputs=(Ref(SRC),)), "mounts[1] (/c).output", "1, but only writable bind mounts have outputs"),
    (ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(-1, dest="/c", mount_type=MountType.CACHE)),
            inputs=(Ref(SRC),)), "mounts[1] (/c).cache", "a cache mount without cache options"),
    (FileOp((FileAction(0, -1, -1, MkDir("/a")), FileAction(2, -1, 0, MkDir("/b"))), inputs=(Ref(SRC),)),
     "actions[1] (mkdir).input", "2 out of range (the op has 1 input and 1 earlier action; -1 = scratch)"),
    (FileOp((FileAction(0, 1, 0, Copy("/a", "/b")),), inputs=(Ref(SRC),)),
     "actions[0] (copy).secondary_input", "1 out of range (the op has 1 input and 0 earlier actions; -1 = scratch)"),
    (FileOp((FileAction(0, -1, 0, MkDir("/a", owner=ChownOpt(UserOpt(name="app", name_input=4)))),),
            inputs=(Ref(SRC),)), "actions[0] (mkdir).owner.user.input", "4 out of range"),
    (FileOp((FileAction(0, -1, 0, MkDir("/a")), FileAction(1, -1, 0, MkDir("/b"))), inputs=(Ref(SRC),)),
     "actions[*].output", "outputs [0, 0] must be numbered 0..1, each once"),
    (FileOp((FileAction(0, -1, -1, MkDir("/a")),), inputs=(Ref(SRC),)), "actions[*].output", "no action has an output"),
    (FileOp((), inputs=(Ref(SRC),)), "actions", "no actions"),
    (MergeOp((0, 1), inputs=(Ref(SRC),)), "merge_inputs[1]", "1 out of range (the op has 1 input)"),
    (MergeOp((), inputs=(Ref(SRC),)), "merge_inputs", "no inputs"),
    (DiffOp(0, 3, inputs=(Ref(SRC),)), "upper", "3 out of range (the op has 1 input; -1 = scratch)"),
    (ConfigOp((ConfigChange("set", "Cmd", "sh"),), "CMD sh", inputs=(Ref(SRC),)),
     "changes[0] (set Cmd).value", "'sh' is not JSON"),
    (ConfigOp((ConfigChange("add", "ExposedPorts", "[]"),), inputs=(Ref(SRC),)),
     "changes[0] (add ExposedPorts).value", "add takes a JSON object"),
    (ConfigOp((ConfigChange("append", "OnBuild", "{}"),), inputs=(Ref(SRC),)),
     "changes[0] (append OnBuild).value", "append takes a JSON array"),
    (ConfigOp((ConfigChange("merge", "X", "1"),), inputs=(Ref(SRC),)),
     "changes[0] (merge X).action", "unknown action (valid: set, env, label, add, append)"),
    (ConfigOp((), inputs=(Ref(SRC), Ref(SRC))), "inputs", "a config op has exactly one input, not 2"),
    (SourceOp(""), "identifier", "empty"),
])
def test_bad_ops(op: object, field: str, problem: str) -> None:
    e = error_of(op)
    assert re.fullmatch(rf"\w+ op sha256:[0-9a-f]{{64}}: {re.escape(field)}: {re.escape(problem)}.*", e.message), e.message


def test_bad_refs_and_outputs() -> None:
    ro = ExecOp(Meta(("true",)), (Mount(0, dest="/", readonly=True),), inputs=(Ref(SRC),))
    user = FileOp((FileAction(0, -1, 0, MkDir("/a")),), inputs=(Ref(ro, 0),))
    e = error_of(user)
    assert e.message.startswith(f"file op {user.digest}: inputs[0]: names output 0 of exec op {ro.digest}, "
                                "which has 0 outputs")
    assert error_of(Graph((Output("x", Ref(SRC, 1)),))).message == (
        f"output 'x': names output 1 of source op {SRC.digest}, which has 1 output")
    assert error_of(Graph((Output("a", Ref(SRC)), Output("a", Ref(SRC))))).message == "verify: two outputs named 'a'"
    assert error_of(Graph(())).message == "verify: the graph has no outputs"
    bogus = FileOp((FileAction(0, -1, 0, MkDir("/a")),), inputs=("nope",))  # type: ignore[arg-type]
    assert "inputs[0]: not a Ref but str" in error_of(Graph((Output("o", Ref(bogus)),))).message


def test_deep_problem_found_without_recursion() -> None:
    op = SourceOp("docker-image://x")
    for i in range(5000):
        op = FileOp((FileAction(0, -1, 0, MkDir(f"/d{i}")),), inputs=(Ref(op),))
    bad = FileOp((FileAction(1, -1, 0, MkDir("/x")),), inputs=(Ref(op),))
    for i in range(5000):
        bad = FileOp((FileAction(0, -1, 0, MkDir(f"/e{i}")),), inputs=(Ref(bad),))
    assert "actions[0] (mkdir).input: 1 out of range" in error_of(bad).message
