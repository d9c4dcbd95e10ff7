"""Properties of every pass over random graphs (``tests.ir.strategies``, repaired into
well-formed ones): idempotent, meaning-preserving (the reference interpreter in ``helpers``),
never mutating their input, and ``-O1`` output is pure BuildKit LLB."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from google.protobuf import unknown_fields
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mason.ir.codec import encode_graph
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.llb_pb import PROTO
from mason.ir.ops import ConfigOp
from mason.passes import LEVELS, run_pipeline
from mason.passes.verify import verify_graph
from tests.ir.strategies import graphs
from tests.passes.helpers import BUILDKIT_KINDS, chained_graphs, digests, history_free, meaning, valid_graphs

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_graph = st.one_of(valid_graphs(), chained_graphs())
PASS_NAMES = ["verify", "hoist-config", "dedupe", "prune", "merge"]


@SETTINGS
@given(graphs())
def test_verify_accepts_or_raises_a_mason_error(g: Graph) -> None:
    try:
        out = run_pipeline(g, "verify")
    except MasonError:
        return
    assert out is g


@SETTINGS
@given(any_graph)
def test_repaired_graphs_are_well_formed(g: Graph) -> None:
    verify_graph(g)


@pytest.mark.parametrize("name", PASS_NAMES)
@SETTINGS
@given(g=any_graph)
def test_pass_is_idempotent_and_keeps_the_meaning(name: str, g: Graph) -> None:
    before = digests(g)
    m = meaning(g)
    once = run_pipeline(g, name)
    twice = run_pipeline(once, name)
    assert digests(twice) == digests(once)
    assert meaning(once) == m
    assert digests(g) == before  # the input is untouched
    run_pipeline(once, "verify")  # and still well formed


@SETTINGS
@given(g=any_graph, data=st.data())
def test_prune_keeps_the_meaning_of_the_targets(g: Graph, data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(g.names()), min_size=1, unique=True))
    out = run_pipeline(g, "prune{targets=" + ",".join(names) + "}")
    assert out.names() == names
    by_name = {n: x for n, *x in meaning(g)}
    assert [(n, *by_name[n]) for n in names] == meaning(out)
    reachable = {op.digest for op in out.ops()}
    assert reachable == {op.digest for op in Graph(tuple(g.output(n) for n in names)).ops()}


@pytest.mark.parametrize("level", [0, 1, 2])
@SETTINGS
@given(g=any_graph)
def test_presets_are_idempotent_and_keep_the_meaning(level: int, g: Graph) -> None:
    once = run_pipeline(g, LEVELS[level], verify_each=True)
    assert digests(run_pipeline(once, LEVELS[level])) == digests(once)
    assert meaning(once) == meaning(g)
    if level >= 1:
        assert not any(isinstance(op, ConfigOp) for op in once.ops()) and history_free(once)
        assert len(once.ops()) == len(once.unique_ops())  # one vertex per digest


# ---------------------------------------------------------------- -O1 output is pure LLB

@pytest.fixture(scope="module")
def vanilla_pb(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A module generated from mason's llb.proto without the mason extension (no Op.config,
    another package so it loads beside mason's own)."""
    from grpc_tools import protoc

    d = tmp_path_factory.mktemp("vanilla")
    text = PROTO.read_text()
    assert "ConfigOp config = 1000;" in text
    text = text.replace("ConfigOp config = 1000;", "").replace("package pb;", "package vanillapb;")
    (d / "vanilla_llb.proto").write_text(text)
    assert protoc.main(["protoc", f"-I{d}", f"--python_out={d}", str(d / "vanilla_llb.proto")]) == 0
    spec = importlib.util.spec_from_file_location("vanilla_llb_pb2", d / "vanilla_llb_pb2.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["vanilla_llb_pb2"] = mod
    spec.loader.exec_module(mod)
    return mod


def kinds_in(pb, definitions: list[bytes]) -> list[str | None]:  # type: ignore[no-untyped-def]
    out: list[str | None] = []
    for data in definitions:
        d = pb.Definition.FromString(data)
        for raw in getattr(d, "def"):
            op = pb.Op.FromString(raw)
            if len(unknown_fields.UnknownFieldSet(op)):
                out.append("unknown:" + ",".join(str(f.field_number) for f in unknown_fields.UnknownFieldSet(op)))
            else:
                out.append(op.WhichOneof("op"))
    return out


def test_vanilla_proto_sees_config_ops_as_unknown_at_O0(vanilla_pb) -> None:  # type: ignore[no-untyped-def]
    from tests.ir.strategies import fixed_graph

    g = run_pipeline(fixed_graph(), LEVELS[0])
    assert "unknown:1000" in kinds_in(vanilla_pb, encode_graph(g))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=any_graph)
def test_O1_output_decodes_without_the_mason_extension(vanilla_pb, g: Graph) -> None:  # type: ignore[no-untyped-def]
    out = run_pipeline(g, LEVELS[1])
    defs = encode_graph(out)
    kinds = kinds_in(vanilla_pb, defs)
    assert kinds.count(None) == len(defs)  # one terminal per Definition
    assert set(kinds) - {None} <= BUILDKIT_KINDS
