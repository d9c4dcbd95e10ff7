"""The drawn graph (``--format dot|svg``): for every corpus Definition (BuildKit v0.32.2's), each op
is one vertex titled with its short digest, filled with its kind's colour, inside the cluster of
its Dockerfile stage; each edge is labelled with the mount point or file action it feeds. Every
op kind has its own colour; merge/diff/file edges say what they feed; credentials in URLs never
reach the drawing; no ``dot`` binary is one clear error."""

from __future__ import annotations

import json
import re

import pytest

from mason.backends.dump import dump_definition
from mason.backends.dump.graph import BuildGraph, graph_from_records, stage_of_name
from mason.backends.dump.styled import FILL
from mason.ir.errors import MasonError
from mason.ir.llb_pb import pb
from tests.backends.dump.llbdata import CORPUS, build_definition, corpus_names, digests_of
from tests.backends.dump.svgparse import inside, parse_dot, parse_svg

P = pb()


def _corpus_ops(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / f"{name}.json").read_text().splitlines()]


def _kind(o: dict) -> str:
    return next(iter(o["Op"]["Op"])) if o["Op"].get("Op") else "terminal"


def _short(digest: str) -> str:
    return digest[: len("sha256:") + 12]


def _stage(o: dict) -> str | None:
    """The stage as BuildKit's progress name says it: ``[NAME k/n]``; ``[k/n]`` is the only stage."""
    name = o.get("OpMetadata", {}).get("description", {}).get("llb.customname", "")
    m = re.match(r"^\[(?:(\S+) )?\d+/\d+\]", name)
    return None if m is None else (m.group(1) or "stage-0")


def _expected_edge_labels(o: dict) -> list[tuple[int, str]]:
    """(input index, a text its edge label must hold) from the op's JSON."""
    body = o["Op"].get("Op", {})
    out = []
    if "exec" in body:
        for m in body["exec"].get("mounts", []):
            if m.get("input", 0) >= 0:
                out.append((m.get("input", 0), m["dest"]))
    if "file" in body:
        for a in body["file"]["actions"]:
            act = a["Action"]
            if "copy" in act:
                out.append((a["secondaryInput"], f"copy {act['copy']['src']} → {act['copy']['dest']}"))
            for which in ("mkdir", "mkfile", "rm"):
                if which in act and a["input"] >= 0:
                    out.append((a["input"], f"{which} {act[which]['path']}"))
    return out


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_svg_vertices_clusters_and_edges(name: str) -> None:
    ops = _corpus_ops(name)
    drawing = parse_svg(dump_definition((CORPUS / f"{name}.llb").read_bytes(), "svg"))
    # one vertex per op, its <title> (hover) the short digest, filled by kind, classed by kind
    assert set(drawing.nodes) == {_short(o["Digest"]) for o in ops}
    for o in ops:
        node = drawing.nodes[_short(o["Digest"])]
        assert node.fills == {FILL[_kind(o)]}, o["Digest"]
        assert node.classes[:2] == ["node", _kind(o)]
        assert node.id == "op-" + o["Digest"].split(":")[1]
    # a cluster per stage, labelled with the stage's name, holding exactly that stage's ops
    stages = {s for o in ops if (s := _stage(o)) is not None}
    assert set(drawing.clusters) == stages
    for o in ops:
        node = drawing.nodes[_short(o["Digest"])]
        holders = [label for label, c in drawing.clusters.items() if inside(node, c)]
        assert holders == ([_stage(o)] if _stage(o) else []), (o["Digest"], holders)
    # an edge per input, labelled with what it feeds
    want_edges = {f"{_short(i['digest'])}->{_short(o['Digest'])}" for o in ops for i in o["Op"].get("inputs", [])}
    assert set(drawing.edges) == want_edges
    for o in ops:
        for idx, text in _expected_edge_labels(o):
            src = o["Op"]["inputs"][idx]["digest"]
            label = " ".join(drawing.edges[f"{_short(src)}->{_short(o['Digest'])}"].texts)
            assert text in label or text[:40] in label, (label, text)


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_dot_statements(name: str) -> None:
    ops = _corpus_ops(name)
    nodes, edges, cluster_of = parse_dot(dump_definition((CORPUS / f"{name}.llb").read_bytes(), "dot"))
    assert set(nodes) == {_short(o["Digest"]) for o in ops}
    for o in ops:
        n = nodes[_short(o["Digest"])]
        assert n["fillcolor"] == FILL[_kind(o)] and n["class"] == _kind(o)
        assert n["label"].splitlines()[0] == ("result" if _kind(o) == "terminal" else _kind(o))
        assert cluster_of.get(_short(o["Digest"])) == _stage(o)
    assert len(edges) == sum(len(o["Op"].get("inputs", [])) for o in ops)
    for o in ops:
        for idx, text in _expected_edge_labels(o):
            got = edges[(_short(o["Op"]["inputs"][idx]["digest"]), _short(o["Digest"]))].get("label", "")
            assert text in got or text[:40] in got


def _every_kind() -> bytes:
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
    return build_definition([a, ex, file, merge, diff, cfg])


def test_every_kind_has_its_own_colour_and_edges_say_what_they_feed() -> None:
    data = _every_kind()
    d = [_short(x) for x in digests_of(data)]
    drawing = parse_svg(dump_definition(data, "svg"))
    kinds = ["source", "exec", "file", "merge", "diff", "config", "terminal"]
    assert {dg: drawing.nodes[dg].fills for dg in d} == {dg: {FILL[k]} for dg, k in zip(d, kinds, strict=True)}
    assert len({FILL[k] for k in kinds}) == len(kinds)
    labels = {t: " ".join(e.texts) for t, e in drawing.edges.items()}
    assert labels[f"{d[0]}->{d[1]}"] == "/"
    assert labels[f"{d[1]}->{d[2]}"] == "mkdir /d"
    assert labels[f"{d[0]}->{d[3]}"] == "layer 1" and labels[f"{d[2]}->{d[3]}"] == "layer 2"
    assert labels[f"{d[0]}->{d[4]}"] == "lower" and labels[f"{d[3]}->{d[4]}"] == "upper"
    long = [t for t in drawing.nodes[d[1]].texts if t.startswith("sh -c echo xxx")]
    assert len(long) == 1 and long[0].endswith("…")


def test_shared_input_of_a_copy_and_a_mount_with_selector() -> None:
    src = P.Op(source=P.SourceOp(identifier="local://context"))
    base = P.Op(source=P.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"))
    ex = P.Op(inputs=[P.Input(digest="#1"), P.Input(digest="#0")], exec=P.ExecOp(
        meta=P.Meta(args=["true"]), mounts=[P.Mount(input=0, dest="/", output=0),
                                            P.Mount(input=1, dest="/mnt/src", selector="/app", output=-1)]))
    cp = P.Op(inputs=[P.Input(digest="#2"), P.Input(digest="#0")], file=P.FileOp(actions=[
        P.FileAction(input=0, secondaryInput=1, output=0, copy=P.FileActionCopy(src="/a", dest="/b"))]))
    data = build_definition([src, base, ex, cp])
    d = [_short(x) for x in digests_of(data)]
    _, edges, _ = parse_dot(dump_definition(data, "dot"))
    assert edges[(d[0], d[2])]["label"] == "/mnt/src ← /app"
    assert edges[(d[0], d[3])]["label"] == "copy /a → /b"
    assert edges[(d[2], d[3])]["label"] == "copy into /b"


def test_stage_names() -> None:
    assert stage_of_name("[builder 2/3] RUN x") == ("builder", "RUN x")
    assert stage_of_name("[2/3] RUN x") == ("stage-0", "RUN x")
    assert stage_of_name("[linux/arm64 b 1/2] RUN x") == ("linux/arm64 b", "RUN x")
    assert stage_of_name("[linux/arm64 1/2] RUN x") == ("linux/arm64 stage-0", "RUN x")
    assert stage_of_name("[internal] load build context") == (None, "[internal] load build context")
    assert stage_of_name("RUN x") == (None, "RUN x")


def test_mason_stage_description_groups_unnamed_ops() -> None:
    a = P.Op(source=P.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"))
    md = P.OpMetadata(description={"mason.stage": "1"})
    _, _, cluster_of = parse_dot(dump_definition(build_definition([a], {0: md}), "dot"))
    assert list(cluster_of.values()) == ["stage-1"]


def test_credentials_in_urls_never_reach_the_drawing() -> None:
    a = P.Op(source=P.SourceOp(identifier="https://user:hunter2@example.com/f.tgz"))
    data = build_definition([a], {0: P.OpMetadata(description={"llb.customname": "ADD https://user:hunter2@example.com/f.tgz"})})
    for fmt in ("dot", "svg"):
        out = dump_definition(data, fmt)
        assert "hunter2" not in out and "user:xxxxx@example.com" in out


def test_labels_are_escaped() -> None:
    a = P.Op(source=P.SourceOp(identifier='local://"quoted"\\name'))
    out = dump_definition(build_definition([a]), "dot")
    assert 'local://\\"quoted\\"\\\\name' in out
    assert any('local://"quoted"\\name' in t for n in parse_svg(dump_definition(build_definition([a]), "svg")).nodes.values()
               for t in n.texts)


def test_short_ids_grow_when_two_digests_share_a_prefix() -> None:
    from mason.backends.dump.graph import Vertex

    g = BuildGraph([Vertex("sha256:" + "ab" * 6 + "0" * 52, "source", "a"),
                    Vertex("sha256:" + "ab" * 6 + "1" * 52, "source", "b")], [])
    short = g.short_ids()
    assert len(set(short.values())) == 2 and all(len(s) == len("sha256:") + 16 for s in short.values())


def test_graph_json_round_trip_and_bad_shapes() -> None:
    from mason.backends.dump import records_from_data

    g = graph_from_records(records_from_data((CORPUS / "multistage.llb").read_bytes()))
    back = BuildGraph.from_json(json.loads(json.dumps(g.to_json())))
    assert back is not None and back.to_json() == g.to_json()
    for bad in (None, [], {"version": 99}, {"version": 1, "vertices": [{"id": 1}], "edges": []},
                {"version": 1, "vertices": [], "edges": [{"src": "a", "dst": "b", "label": ""}]}):
        assert BuildGraph.from_json(bad) is None


def test_missing_dot_binary_names_the_graphviz_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    data = (CORPUS / f"{corpus_names()[0]}.llb").read_bytes()
    with pytest.raises(MasonError) as e:
        dump_definition(data, "svg")
    assert e.value.message == (
        "the graphviz 'dot' program is needed to draw a graph (svg, html); install the 'graphviz' package"
        " (apt-get install graphviz)"
    )


def test_a_multi_platform_lowering_draws_each_platforms_stages_apart(tmp_path, capsys) -> None:
    from mason.cli.main import main

    # (a RUN: FileOps carry no platform, so a COPY onto scratch is one op for both platforms)
    (tmp_path / "Dockerfile").write_text('FROM scratch AS a\nRUN ["/x"]\nFROM scratch\nCOPY --from=a /x /y\n')
    (tmp_path / "x").write_text("x\n")
    out = tmp_path / "mp.llb"
    assert main(["lower", "--platform", "linux/amd64,linux/arm64", "-o", str(out), str(tmp_path)]) == 0
    capsys.readouterr()
    nodes, edges, cluster_of = parse_dot(dump_definition(out.read_bytes(), "dot"))
    assert set(cluster_of.values()) == {"linux/amd64 a", "linux/amd64 stage-1", "linux/arm64 a", "linux/arm64 stage-1"}
    for plat in ("linux/amd64", "linux/arm64"):
        ops = [n for n, c in cluster_of.items() if c.startswith(plat + " ")]
        assert sorted(nodes[n]["label"].split("\n")[1] for n in ops) == ["COPY --from=a /x /y", 'RUN ["/x"]']
        # the stage-1 copy of this platform reads this platform's stage a
        (copy,) = [n for n in ops if "--from=a" in nodes[n]["label"]]
        assert [cluster_of.get(s) for s, d in edges if d == copy] == [f"{plat} a"]


def test_what_a_build_record_keeps_masks_env_file_data_and_build_arg_values() -> None:
    from mason.backends.dump.graph import MASKED, graph_from_ir
    from mason.ir.codec import decode_graph

    a = P.Op(source=P.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"))
    ex = P.Op(inputs=[P.Input(digest="#0")], exec=P.ExecOp(
        meta=P.Meta(args=["sh", "-c", "echo"], env=["TOKEN=hunter2-value", "PATH=/bin"]),
        mounts=[P.Mount(input=0, dest="/", output=0)]))
    mk = P.Op(inputs=[P.Input(digest="#1")], file=P.FileOp(actions=[
        P.FileAction(input=0, secondaryInput=-1, output=0, mkfile=P.FileActionMkFile(path="/f", data=b"hunter2-value")),
        P.FileAction(input=-1, secondaryInput=-1, output=-1, mkdir=P.FileActionMkDir(path="/w-hunter2-value"))]))
    md = {2: P.OpMetadata(description={"llb.customname": "[2/3] WORKDIR /w-hunter2-value"})}
    graph = decode_graph(build_definition([a, ex, mk], md))
    plain = json.dumps(graph_from_ir(graph).to_json())
    assert "hunter2-value" in plain and "TOKEN=hunter2-value" in plain  # a dump shows everything
    kept = graph_from_ir(graph, mask_env=True, masked=["hunter2-value", "1"]).to_json()
    text = json.dumps(kept)
    assert "hunter2-value" not in text and "aHVudGVyMi12YWx1ZQ" not in text  # nor its base64
    assert f"TOKEN={MASKED}" in text and f"PATH={MASKED}" in text and f"/w-{MASKED}" in text
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", v["id"]) for v in kept["vertices"])
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", v["fields"]["Digest"]) for v in kept["vertices"])
