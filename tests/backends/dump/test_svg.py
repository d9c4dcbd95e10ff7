"""SVG dump: valid SVG from graphviz with one node per op, filled by kind; no ``dot`` → MasonError."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from mason.backends.dump import dump_definition
from mason.backends.dump.svg import FILL, MAX_LABEL, short_digest, svg_source
from mason.ir.errors import MasonError
from mason.ir.llb_pb import pb
from tests.backends.dump.llbdata import CORPUS, build_definition, corpus_names, digests_of

P = pb()
NS = "{http://www.w3.org/2000/svg}"
SHAPES = ("ellipse", "polygon", "path")


def _nodes(svg: str) -> dict[str, set[str]]:
    """digest (the node's title) → fill colours of its shapes."""
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    nodes: dict[str, set[str]] = {}
    for g in root.iter(f"{NS}g"):
        if g.get("class") != "node":
            continue
        title = g.find(f"{NS}title")
        assert title is not None and title.text
        fills = {el.get("fill") for tag in SHAPES for el in g.iter(f"{NS}{tag}")}
        nodes[title.text] = {f for f in fills if f and f != "none"}
    return nodes


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{NS}text")]


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_svg_has_a_node_per_op_filled_by_kind(name: str) -> None:
    svg = dump_definition((CORPUS / f"{name}.llb").read_bytes(), "svg")
    expected = {}
    for line in (CORPUS / f"{name}.json").read_text().splitlines():
        op = json.loads(line)
        kind = next(iter(op["Op"]["Op"])) if op["Op"]["Op"] else "terminal"
        expected[op["Digest"]] = {FILL[kind]}
    assert _nodes(svg) == expected
    for text in _texts(svg):  # kind + short digest, or a label cut to MAX_LABEL
        assert len(text) <= max(MAX_LABEL, len("terminal sha256:") + 12)


def test_every_kind_has_its_own_colour() -> None:
    a = P.Op(source=P.SourceOp(identifier="docker-image://docker.io/library/alpine:latest"))
    ex = P.Op(inputs=[P.Input(digest="#0")], exec=P.ExecOp(
        meta=P.Meta(args=["sh", "-c", "echo " + "x" * 200]), mounts=[P.Mount(input=0, dest="/", output=0)]))
    file = P.Op(inputs=[P.Input(digest="#1")], file=P.FileOp(actions=[
        P.FileAction(input=0, secondaryInput=-1, output=0, mkdir=P.FileActionMkDir(path="/d"))]))
    merge = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#2")],
                 merge=P.MergeOp(inputs=[P.MergeInput(input=0), P.MergeInput(input=1)]))
    diff = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#3")],
                diff=P.DiffOp(lower=P.LowerDiffInput(input=0), upper=P.UpperDiffInput(input=1)))
    cfg = P.Op(inputs=[P.Input(digest="#4")], config=P.ConfigOp(created_by="ENV A=1"))
    data = build_definition([a, ex, file, merge, diff, cfg])
    d = digests_of(data)
    svg = dump_definition(data, "svg")
    nodes = _nodes(svg)
    kinds = ["source", "exec", "file", "merge", "diff", "config", "terminal"]
    assert {dg: nodes[dg] for dg in d} == {dg: {FILL[k]} for dg, k in zip(d, kinds, strict=False)}
    assert len({FILL[k] for k in kinds}) == len(kinds)
    texts = _texts(svg)
    assert f"exec {short_digest(d[1])}" in texts
    long = [t for t in texts if t.startswith("sh -c echo xxx")]
    assert len(long) == 1 and long[0].endswith("…") and len(long[0]) == MAX_LABEL


def test_svg_source_escapes_labels() -> None:
    a = P.Op(source=P.SourceOp(identifier='local://"quoted"\\name'))
    src = svg_source_of(build_definition([a]))
    assert 'local://\\"quoted\\"\\\\name' in src


def svg_source_of(data: bytes) -> str:
    from mason.backends.dump import records_from_decoded
    from mason.ir.codec import decode_definition

    return svg_source(records_from_decoded(decode_definition(data)))


def test_missing_dot_binary_names_the_graphviz_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    data = (CORPUS / f"{corpus_names()[0]}.llb").read_bytes()
    with pytest.raises(MasonError) as e:
        dump_definition(data, "svg")
    assert e.value.message == (
        "the graphviz 'dot' program is needed for --format svg; install the 'graphviz' package"
        " (apt-get install graphviz)"
    )
