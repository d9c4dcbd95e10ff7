"""Codec: corpus round trips, property round trips, deep chains and bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mason.ir.caps import with_op_caps
from mason.ir.codec import (
    IMAGE_CONFIG_KEY,
    OUTPUT_NAME_KEY,
    STREAM_MAGIC,
    decode_definition,
    decode_graph,
    encode_graph,
    encode_op_uncached,
    marshal,
    marshal_op_pb,
    op_to_pb,
    read_stream,
    write_stream,
)
from mason.ir.errors import MasonError
from mason.ir.llb_pb import pb
from mason.ir.ops import ExecOp, Meta, Mount, Ref, SourceOp, walk_ops
from mason.ir.text import format_graph
from tests.ir.strategies import chain, fixed_graph, graphs

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32"
LLB_FILES = sorted(CORPUS.glob("*.llb"))
OLD_FILES = sorted((ROOT.parent / "shared" / "corpus" / "buildkit-llb").glob("*.llb"))  # v0.11.6
P = pb()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- corpus

def test_corpus_present() -> None:
    assert len(LLB_FILES) >= 5, f"corpus not found at {CORPUS}"


@pytest.mark.parametrize("path", LLB_FILES, ids=lambda p: p.stem)
def test_corpus_round_trip(path: Path) -> None:
    data = path.read_bytes()
    orig = P.Definition.FromString(data)
    raw = list(getattr(orig, "def"))
    dd = decode_definition(data)
    assert dd.noncanonical == {}
    assert len(dd.ops) == len(raw) - 1
    for op, b in zip(dd.ops, raw, strict=False):
        assert op.digest == _sha(b)
        assert marshal_op_pb(op_to_pb(op)) == b
        assert encode_op_uncached(op) == b  # mason's own encoding, not the cached file bytes
        # protobuf-go's order: inputs, platform, constraints, then the oneof body
        assert b[:1] in (b"\x0a", b"\x52", b"\x5a")
    # metadata preserved on the ops and in .metadata
    for op in dd.ops:
        if op.digest in orig.metadata:
            assert op.metadata == dd.metadata[op.digest]
            assert set(dict(op.metadata.description)) == set(orig.metadata[op.digest].description)
    # the whole Definition re-marshals to an equal message (map order aside)
    out = marshal(dd.ref, dd.image_config, terminal_metadata=dd.terminal_metadata, source=dd.source)
    assert P.Definition.FromString(out) == orig
    # re-decoding the re-marshaled bytes gives the same digests
    assert [o.digest for o in decode_definition(out).ops] == [o.digest for o in dd.ops]


def test_corpus_json_digests_match() -> None:
    for path in LLB_FILES:
        want = [json.loads(line)["Digest"] for line in path.with_suffix(".json").read_text().splitlines() if line]
        dd = decode_definition(path.read_bytes())
        assert [o.digest for o in dd.ops] + [dd.terminal_digest] == want


def test_image_config_and_name_ride_in_terminal_metadata() -> None:
    dd = decode_definition(LLB_FILES[0].read_bytes())
    cfg = {"config": {"Env": ["A=1"]}, "os": "linux"}
    out = marshal(dd.ref, cfg, name="app")
    d = P.Definition.FromString(out)
    term = _sha(getattr(d, "def")[-1])
    assert json.loads(d.metadata[term].description[IMAGE_CONFIG_KEY]) == cfg
    assert d.metadata[term].description[OUTPUT_NAME_KEY] == "app"
    again = decode_definition(out)
    assert again.image_config == cfg and again.name == "app"
    g = again.graph
    assert g.outputs[0].name == "app" and g.outputs[0].image_config == cfg


# ---------------------------------------------------------------- properties

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_encode_decode_encode_identical(g) -> None:  # type: ignore[no-untyped-def]
    first = encode_graph(g)
    decoded = [decode_definition(b) for b in first]
    for dd, out in zip(decoded, g.outputs, strict=False):
        assert dd.noncanonical == {}
        assert dd.ref.op.digest == out.ref.op.digest and dd.ref.index == out.ref.index
        assert dd.image_config == out.image_config
        assert dd.name == out.name
    second = [marshal(dd.ref, dd.image_config, name=dd.name) for dd in decoded]
    assert second == first
    # metadata survives, with the op's caps added (of the first op met with that digest in that
    # output's own walk: two ops can share a digest and differ in metadata, and each Definition
    # is written on its own)
    for dd, out in zip(decoded, g.outputs, strict=False):
        first_md = {}
        for o in walk_ops([out.ref.op]):
            first_md.setdefault(o.digest, with_op_caps(o))
        for op in dd.ops:
            assert op.metadata == first_md[op.digest]
    # a stream of all outputs decodes to the same graph text
    g2 = decode_graph(write_stream(first))
    assert format_graph(g2) == format_graph(g)


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_text_form_deterministic(g) -> None:  # type: ignore[no-untyped-def]
    a = format_graph(g)
    assert a == format_graph(g)
    dd = [decode_definition(b) for b in encode_graph(g)]
    from mason.ir.graph import Graph
    g2 = Graph(tuple(o for d in dd for o in d.graph.outputs))
    assert format_graph(g2) == a


_DIGEST_SCRIPT = """
import json
from tests.ir.strategies import fixed_graph, chain
g = fixed_graph()
print(json.dumps([op.digest for op in g.ops()] + [chain(50).digest]))
"""


def test_digests_stable_across_processes() -> None:
    g = fixed_graph()
    here = [op.digest for op in g.ops()] + [chain(50).digest]
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin",
                                              **{k: v for k, v in __import__("os").environ.items()
                                                 if k in ("HOME", "MASON_CACHE", "XDG_CACHE_HOME")}})
        assert json.loads(out.stdout) == here


def test_fixed_graph_digest_pinned() -> None:
    """Pins the encoding: a change here changes every digest mason writes."""
    g = fixed_graph()
    assert g.outputs[0].ref.op.digest == FIXED_APP_DIGEST


FIXED_APP_DIGEST = "sha256:de597016def1fbdabcd4676cf325a9717572960c461c02e7deaa98418c93e916"  # protobuf-go field order (v0.32.2)


# ---------------------------------------------------------------- deep chains

def test_chain_of_20000_ops() -> None:
    assert sys.getrecursionlimit() <= 1000
    top = chain(20000)
    d = top.digest
    data = marshal(top)
    dd = decode_definition(data)
    assert len(dd.ops) == 20000
    assert dd.ref.op.digest == d
    assert dd.ref.op == top and hash(dd.ref.op) == hash(top)
    text = format_graph(dd)
    assert text.count("\n") == 20001
    assert len(repr(top)) < 60 and repr(top).startswith("<ExecOp ")
    from mason.ir.graph import Graph
    assert len(Graph.of(top).ops()) == 20000


# ---------------------------------------------------------------- bad input

def _definition(ops: list[bytes], metadata: dict | None = None) -> bytes:
    d = P.Definition()
    getattr(d, "def").extend(ops)
    for k, v in (metadata or {}).items():
        d.metadata[k].CopyFrom(v)
    return d.SerializeToString(deterministic=True)


def _term(digest: str, index: int = 0) -> bytes:
    t = P.Op()
    t.inputs.add(digest=digest, index=index)
    return t.SerializeToString(deterministic=True)


SRC = SourceOp("docker-image://docker.io/library/busybox:latest", constraints=())


def _msg(data: bytes) -> str:
    with pytest.raises(MasonError) as ei:
        decode_definition(data)
    return ei.value.message


def test_bad_not_protobuf() -> None:
    assert _msg(b"\xff\xff\xff\xff") == "not an LLB Definition: 4 bytes that do not decode as a protobuf pb.Definition (truncated, or another kind of file)"


def test_bad_truncated() -> None:
    data = LLB_FILES[0].read_bytes()
    # one byte past the middle cuts a field (the middle itself of argenv.llb falls between two ops:
    # a shorter Definition whose last op stands as the terminal, as BuildKit would read it)
    assert _msg(data[: len(data) // 2 + 1]).startswith("not an LLB Definition: ")


def test_bad_empty_and_one_op() -> None:
    assert _msg(b"") == "Definition has 0 ops; it needs at least 2 (the ops and a terminal op)"
    assert _msg(_definition([SRC.bytes])) == "Definition has 1 op; it needs at least 2 (the ops and a terminal op)"


def test_bad_unknown_top_level_field() -> None:
    assert _msg(b"\xa0\x06\x01") == "not an LLB Definition: unknown field 100 at the top level"


def test_bad_missing_input() -> None:
    ghost = "sha256:" + "0" * 64
    op = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0),), inputs=(Ref(SRC),))
    bad = P.Op.FromString(op.bytes)
    bad.inputs[0].digest = ghost
    b = bad.SerializeToString(deterministic=True)
    assert _msg(_definition([SRC.bytes, b, _term(_sha(b))])) == (
        f"op #1 {_sha(b)}: input 0 names {ghost}, which is not in the Definition")


def test_bad_terminal_names_missing_op() -> None:
    ghost = "sha256:" + "1" * 64
    t = _term(ghost)
    assert _msg(_definition([SRC.bytes, t])) == (
        f"terminal op {_sha(t)} names {ghost}, which is not in the Definition")


def test_bad_mount_index_out_of_range() -> None:
    op = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0), Mount(2, dest="/mnt")), inputs=(Ref(SRC),))
    b = op.bytes
    assert _msg(_definition([SRC.bytes, b, _term(_sha(b))])) == (
        f"op #1 {_sha(b)} (exec): mount 1 (/mnt): input 2 out of range (op has 1 inputs)")


def test_bad_file_action_index_out_of_range() -> None:
    from mason.ir.ops import FileAction, FileOp, MkDir
    op = FileOp((FileAction(0, -1, -1, MkDir("/a")), FileAction(2, -1, 0, MkDir("/b"))), inputs=(Ref(SRC),))
    b = op.bytes
    assert _msg(_definition([SRC.bytes, b, _term(_sha(b))])) == (
        f"op #1 {_sha(b)} (file): file action 1: input 2 out of range (op has 1 inputs and 1 earlier actions)")


def test_bad_no_terminal() -> None:
    op = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0),), inputs=(Ref(SRC),))
    assert _msg(_definition([SRC.bytes, op.bytes])) == (
        f"Definition has no terminal op: the last op {op.digest} has a exec op")


def test_bad_terminal_several_inputs() -> None:
    t = P.Op()
    t.inputs.add(digest=SRC.digest)
    t.inputs.add(digest=SRC.digest)
    tb = t.SerializeToString(deterministic=True)
    assert _msg(_definition([SRC.bytes, tb])) == (
        f"terminal op {_sha(tb)} has 2 inputs; it must name exactly one result")


def test_bad_duplicate_ops() -> None:
    assert _msg(_definition([SRC.bytes, SRC.bytes, _term(SRC.digest)])) == (
        f"duplicate op {SRC.digest} (ops #0 and #1)")


def test_bad_unknown_field_in_op() -> None:
    b = SRC.bytes + b"\xa8\x1f\x01"  # field 501, varint
    assert _msg(_definition([b, _term(_sha(b))])) == f"op #0 {_sha(b)}: unknown field 501 in Op"


def test_bad_unknown_field_nested() -> None:
    op = ExecOp(Meta(("true",)), (Mount(0, dest="/", output=0),), inputs=(Ref(SRC),))
    m = P.Op.FromString(op.bytes)
    meta = m.exec.meta.SerializeToString() + b"\xc0\x01\x01"  # field 24 in Meta
    m.exec.meta.Clear()
    m.exec.meta.MergeFromString(meta)
    b = m.SerializeToString(deterministic=True)
    assert _msg(_definition([SRC.bytes, b, _term(_sha(b))])) == (
        f"op #1 {_sha(b)}: unknown field 24 in Op.exec.meta")


def test_bad_unknown_field_in_metadata() -> None:
    md = P.OpMetadata()
    md.MergeFromString(b"\xc0\x01\x01")
    assert _msg(_definition([SRC.bytes, _term(SRC.digest)], {SRC.digest: md})) == (
        f"metadata of op {SRC.digest}: unknown field 24 in OpMetadata")


def test_bad_build_op_unsupported() -> None:
    m = P.Op()
    m.build.builder = 0
    m.build.SetInParent()
    b = m.SerializeToString(deterministic=True)
    assert _msg(_definition([b, _term(_sha(b))])) == f"op #0 {_sha(b)} (build): build ops are not supported by mason"


def test_bad_bare_op_in_the_middle() -> None:
    b = P.Op().SerializeToString(deterministic=True)
    b2 = _term(_sha(b))
    assert _msg(_definition([b, b2])) == (
        f"op #0 {_sha(b)} (bare): it has no operation (only the last, terminal op may be bare)")


def test_stream_framing() -> None:
    g = fixed_graph()
    defs = encode_graph(g)
    s = write_stream(defs)
    assert s.startswith(STREAM_MAGIC)
    assert read_stream(s) == defs
    g2 = decode_graph(s)
    assert g2.names() == ["app", "layer"]
    with pytest.raises(MasonError, match="truncated Definition stream"):
        read_stream(s[:-3])
    # one output stays a plain Definition
    assert decode_graph(defs[0]).names() == ["app"]


def test_non_canonical_op_keeps_its_bytes_and_digest() -> None:
    # an explicit default (identifier field written as empty, then real) — not what Go writes
    b = b"\x1a\x00" + SRC.bytes  # Op.source = empty message, then the real one (merged)
    dd = decode_definition(_definition([b, _term(_sha(b))]))
    assert dd.noncanonical == {_sha(b): SRC.digest}
    assert dd.ref.op.digest == _sha(b) and dd.ref.op.bytes == b
    assert encode_op_uncached(dd.ref.op) == SRC.bytes  # the same op, by value (equality is by digest)


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.stem)
def test_v0_11_definitions_round_trip_byte_for_byte(path: Path) -> None:
    """BuildKit v0.11.6 (gogo) wrote ops in field-number order: they decode under the digests of
    their own bytes (what BuildKit computes), re-marshal to the same ``def``, and mason's own
    encoding of each differs only by putting platform/constraints before the body."""
    data = path.read_bytes()
    raw = list(getattr(P.Definition.FromString(data), "def"))
    dd = decode_definition(data)
    assert [o.digest for o in dd.ops] == [_sha(b) for b in raw[:-1]]
    assert dd.terminal_digest == _sha(raw[-1])
    with_platform = [b for b in raw[:-1] if P.Op.FromString(b).HasField("platform") or P.Op.FromString(b).HasField("constraints")]
    assert len(dd.noncanonical) == len(with_platform) > 0
    out = marshal(dd.ref, dd.image_config, terminal_metadata=dd.terminal_metadata, source=dd.source)
    assert list(getattr(P.Definition.FromString(out), "def")) == raw
    for op, b in zip(dd.ops, raw, strict=False):
        assert P.Op.FromString(encode_op_uncached(op)) == P.Op.FromString(b)  # same message


def test_field_order_is_protobuf_go() -> None:
    """An exec with platform and constraints: inputs (1), platform (10), constraints (11), then
    exec (2) — the order BuildKit v0.32.2 writes (``df2llb`` output in the corpus)."""
    op = ExecOp(inputs=(Ref(SRC, 0),), meta=Meta(args=("true",)), mounts=(Mount(input=0, dest="/", output=0),),
                platform=__import__("mason.ir.ops", fromlist=["Platform"]).Platform("amd64", "linux"),
                constraints=())
    b = op.bytes
    tags = []
    i = 0
    while i < len(b):
        tag = b[i]
        tags.append(tag >> 3)
        n = b[i + 1]  # every field here is length-delimited and short
        i += 2 + n
    assert tags == [1, 10, 11, 2]
    python_order = op_to_pb(op).SerializeToString(deterministic=True)
    assert python_order != b and sorted(python_order) == sorted(b)
