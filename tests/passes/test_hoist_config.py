"""``hoist-config``: ConfigOps leave the graph, their changes and the ops' history entries land
in the image config in build order, and a LABEL/EXPOSE edit stops changing later digests.

Graphs are built the way a Dockerfile lowering does: one ConfigOp per config instruction in the
execution chain, ENV also changing the state's env that later RUNs see, and a ``mason.history``
entry on each op that makes a layer."""

from __future__ import annotations

import json

import pytest

from mason.ir.builder import State, image, local
from mason.ir.errors import MasonError
from mason.ir.graph import Graph, Output
from mason.ir.imageconfig import HISTORY_COMMENT
from mason.ir.layers import HISTORY_KEY
from mason.ir.ops import ConfigOp, ExecOp, FileOp, Op
from mason.passes import pipeline_for_level, run_pipeline
from tests.passes.helpers import history_free

BASE_CONFIG = {"architecture": "amd64", "os": "linux",
               "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
               "history": [{"created_by": "base layer"}]}


def hist(s: State, created_by: str) -> State:
    """The state with a history entry on its last op, as a lowering writes for RUN/COPY."""
    op = s.ref.op  # type: ignore[union-attr]
    from dataclasses import replace

    entry = json.dumps({"created_by": created_by, "comment": HISTORY_COMMENT})
    new = replace(op, metadata=op.metadata.with_descriptions({HISTORY_KEY: entry}))
    return s._with_ref(type(s.ref)(new, s.ref.index))  # type: ignore[union-attr]


def dockerfile(label: str = "1", port: str = "80/tcp", env: str = "1") -> Graph:
    """FROM busybox / LABEL v=… / EXPOSE … / ENV A=… / RUN echo $A / CMD ["app"]"""
    s = image("busybox", platform="linux/amd64")
    s = s.config(("label", "v", label), created_by=f"LABEL v={label}")
    s = s.config(("add", "ExposedPorts", json.dumps({port: {}})), created_by=f"EXPOSE map[{port}:{{}}]")
    s = s.config(("env", "A", env), created_by=f"ENV A={env}").with_env("A", env)
    s = hist(s.run("echo $A").root(), "RUN /bin/sh -c echo $A # buildkit")
    s = s.config(("set", "Cmd", '["app"]'), created_by='CMD ["app"]')
    return Graph((Output("default", s.ref, BASE_CONFIG),))  # type: ignore[arg-type]


def run_op(g: Graph) -> ExecOp:
    (op,) = [o for o in g.ops() if isinstance(o, ExecOp)]
    return op


@pytest.mark.parametrize("edit", [{"label": "2"}, {"port": "8080/tcp"}])
def test_label_and_expose_edits_change_a_later_run_only_at_O0(edit: dict) -> None:
    a, b = dockerfile(), dockerfile(**edit)
    o0 = [run_op(run_pipeline(g, pipeline_for_level(0))) for g in (a, b)]
    o1 = [run_op(run_pipeline(g, pipeline_for_level(1))) for g in (a, b)]
    assert o0[0].digest != o0[1].digest
    assert o1[0].digest == o1[1].digest


def test_env_edit_changes_a_later_run_at_both_levels() -> None:
    a, b = dockerfile(), dockerfile(env="2")
    for level in (0, 1):
        x, y = (run_op(run_pipeline(g, pipeline_for_level(level))) for g in (a, b))
        assert x.digest != y.digest
        assert "A=2" in y.meta.env


def test_config_and_history_land_in_build_order() -> None:
    g = dockerfile()
    out = run_pipeline(g, "hoist-config")
    assert not any(isinstance(op, ConfigOp) for op in out.ops()) and history_free(out)
    assert [op.kind for op in out.ops()] == ["source", "exec"]
    cfg = out.outputs[0].image_config
    assert cfg["config"] == {"Env": ["PATH=/bin", "A=1"], "Cmd": ["app"], "Labels": {"v": "1"},
                             "ExposedPorts": {"80/tcp": {}}}
    assert cfg["history"] == [
        {"created_by": "base layer"},
        {"created_by": "LABEL v=1", "comment": HISTORY_COMMENT, "empty_layer": True},
        {"created_by": "EXPOSE map[80/tcp:{}]", "comment": HISTORY_COMMENT, "empty_layer": True},
        {"created_by": "ENV A=1", "comment": HISTORY_COMMENT, "empty_layer": True},
        {"created_by": "RUN /bin/sh -c echo $A # buildkit", "comment": HISTORY_COMMENT},
        {"created_by": 'CMD ["app"]', "comment": HISTORY_COMMENT, "empty_layer": True},
    ]
    assert cfg["architecture"] == "amd64" and BASE_CONFIG["config"] == {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}
    assert run_pipeline(out, "hoist-config").outputs[0].image_config == cfg  # nothing left to fold


def test_copy_from_a_config_op_collapses_inputs_like_buildkit() -> None:
    """``FROM x`` / ``ENV`` / ``COPY --from=x`` names x twice once the ConfigOp is gone: the inputs
    collapse to one, exactly what the builder (and BuildKit's llb) writes without the ConfigOp."""
    x = image("busybox", platform="linux/amd64")
    with_cfg = x.config(("env", "A", "1"), created_by="ENV A=1").copy(x, "/bin/sh", "/sh2")
    hoisted = run_pipeline(Graph.of(with_cfg.ref), "hoist-config")  # type: ignore[arg-type]
    plain = x.copy(x, "/bin/sh", "/sh2")
    f = hoisted.outputs[0].ref.op
    assert isinstance(f, FileOp) and len(f.inputs) == 1 and f.actions[0].input == 0 and f.actions[0].secondary_input == 0
    assert f.digest == plain.ref.op.digest  # type: ignore[union-attr]


def test_stages_inherit_their_base_stage_config_but_not_copy_sources() -> None:
    ctx = local("context")
    a = image("busybox", platform="linux/amd64").config(("env", "STAGE", "a"), created_by="ENV STAGE=a")
    a = hist(a.copy(ctx, "/src", "/src"), "COPY /src /src # buildkit")
    b = a.config(("label", "stage", "b"), created_by="LABEL stage=b")  # FROM a AS b
    other = image("alpine", platform="linux/amd64").config(("label", "x", "y"), created_by="LABEL x=y")
    c = b.copy(other, "/etc/os-release", "/os")  # COPY --from=other: not a layer of c's chain
    g = Graph((Output("a", a.ref, {}), Output("b", b.ref, {}), Output("default", c.ref, {})))  # type: ignore[arg-type]
    out = {o.name: o.image_config for o in run_pipeline(g, "hoist-config").outputs}
    assert [h["created_by"] for h in out["a"]["history"]] == ["ENV STAGE=a", "COPY /src /src # buildkit"]
    assert [h["created_by"] for h in out["b"]["history"]] == ["ENV STAGE=a", "COPY /src /src # buildkit", "LABEL stage=b"]
    assert out["default"] == out["b"]
    assert out["b"]["config"] == {"Env": ["STAGE=a"], "Labels": {"stage": "b"}}


def test_output_at_a_config_op_and_empty_created_by() -> None:
    s = image("busybox", platform="linux/amd64")
    t = s.config(("set", "WorkingDir", '"/w"'))  # e.g. WORKDIR's config part: history rides elsewhere
    out = run_pipeline(Graph.of(t.ref, None), "hoist-config")  # type: ignore[arg-type]
    assert out.outputs[0].ref.op is s.ref.op  # type: ignore[union-attr]
    assert out.outputs[0].image_config == {"config": {"WorkingDir": "/w"}}


def test_a_change_that_cannot_apply_names_the_op() -> None:
    s = image("busybox", platform="linux/amd64").config(("set", "ExposedPorts", '5'), created_by="X")
    s = s.config(("add", "ExposedPorts", '{"80/tcp":{}}'), created_by="EXPOSE 80")
    bad: Op = s.ref.op  # type: ignore[union-attr]
    with pytest.raises(MasonError, match=rf"config op {bad.digest}: config change add ExposedPorts: the field holds a int, not an object"):
        run_pipeline(Graph.of(bad, {}), "hoist-config")


def test_bad_history_metadata_is_an_error() -> None:
    s = image("busybox", platform="linux/amd64").run("true").root()
    op = s.ref.op  # type: ignore[union-attr]
    from dataclasses import replace

    bad = replace(op, metadata=op.metadata.with_descriptions({HISTORY_KEY: "RUN true"}))
    with pytest.raises(MasonError, match="metadata mason.history is not JSON"):
        run_pipeline(Graph.of(bad, {}), "hoist-config")
