"""DOT dump: the corpus's ``dump-llb --dot`` output, labels and shapes of every op kind, Go quoting."""

from __future__ import annotations

import pytest

from mason.backends.dump import dump_definition
from mason.backends.dump.dot import go_quote
from mason.ir.llb_pb import pb
from tests.backends.dump.llbdata import CORPUS, build_definition, corpus_names, digests_of

P = pb()
IMAGE = "docker-image://docker.io/library/alpine:latest"


def _split(text: str) -> tuple[set[str], set[str]]:
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "digraph {" and lines[-1] == "}"
    body = lines[1:-1]
    return {line for line in body if " -> " not in line}, {line for line in body if " -> " in line}


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_dot_matches_dump_llb(name: str) -> None:
    out = dump_definition((CORPUS / f"{name}.llb").read_bytes(), "buildkit-dot")
    expected = (CORPUS / f"{name}.dot").read_text()
    assert _split(out) == _split(expected)
    assert out == expected  # node order, edge order and quoting too


def test_shapes_and_labels_of_every_kind() -> None:
    a = P.Op(source=P.SourceOp(identifier=IMAGE))
    b = P.Op(source=P.SourceOp(identifier="local://context"))
    merge = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#1")],
                 merge=P.MergeOp(inputs=[P.MergeInput(input=0), P.MergeInput(input=1)]))
    diff = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#2")],
                diff=P.DiffOp(lower=P.LowerDiffInput(input=0), upper=P.UpperDiffInput(input=1)))
    file = P.Op(inputs=[P.Input(digest="#3")], file=P.FileOp(actions=[
        P.FileAction(input=0, secondaryInput=-1, output=-1, mkfile=P.FileActionMkFile(path="/f", data=b"x")),
        P.FileAction(input=1, secondaryInput=-1, output=-1, rm=P.FileActionRm(path="/g")),
        P.FileAction(input=2, secondaryInput=-1, output=0, symlink=P.FileActionSymlink(oldpath="/f", newpath="/h")),
    ]))
    cfg = P.Op(inputs=[P.Input(digest="#4")], config=P.ConfigOp(created_by="EXPOSE map[80/tcp:{}]"))
    data = build_definition([a, b, merge, diff, file, cfg])
    d = digests_of(data)
    nodes, edges = _split(dump_definition(data, "buildkit-dot"))
    assert nodes == {
        f'"{d[0]}" [label="{IMAGE}" shape="ellipse"];',
        f'"{d[1]}" [label="local://context" shape="ellipse"];',
        f'"{d[2]}" [label="merge" shape="invtriangle"];',
        f'"{d[3]}" [label="diff" shape="doublecircle"];',
        f'"{d[4]}" [label="mkfile{{path=/f}},rm{{path=/g}},symlink{{oldpath=/f, newpath=/h}}" shape="note"];',
        f'"{d[5]}" [label="EXPOSE map[80/tcp:{{}}]" shape="component"];',
        f'"{d[6]}" [label="{d[6]}" shape="plaintext"];',
    }
    assert edges == {
        f'"{d[0]}" -> "{d[2]}" [label=""];', f'"{d[1]}" -> "{d[2]}" [label=""];',
        f'"{d[0]}" -> "{d[3]}" [label=""];', f'"{d[2]}" -> "{d[3]}" [label=""];',
        f'"{d[3]}" -> "{d[4]}" [label=""];', f'"{d[4]}" -> "{d[5]}" [label=""];',
        f'"{d[5]}" -> "{d[6]}" [label=""];',
    }


def test_exec_edges_are_labelled_with_mount_destinations() -> None:
    a = P.Op(source=P.SourceOp(identifier=IMAGE))
    b = P.Op(source=P.SourceOp(identifier="local://context"))
    ex = P.Op(inputs=[P.Input(digest="#0"), P.Input(digest="#1")], exec=P.ExecOp(
        meta=P.Meta(args=["sh", "-c", 'echo "hi"\tthere']),
        mounts=[P.Mount(input=0, dest="/", output=0), P.Mount(input=1, dest="/src", readonly=True, output=-1),
                P.Mount(input=-1, dest="/tmp", mountType=4, output=-1)]))
    data = build_definition([a, b, ex])
    d = digests_of(data)
    lines = dump_definition(data, "buildkit-dot").splitlines()
    assert f'  "{d[2]}" [label="sh -c echo \\"hi\\"\\tthere" shape="box"];' in lines
    assert lines[-4:] == [
        f'  "{d[0]}" -> "{d[2]}" [label=""];',
        f'  "{d[1]}" -> "{d[2]}" [label="/src"];',
        f'  "{d[2]}" -> "{d[3]}" [label=""];',
        "}",
    ]


def test_go_quote() -> None:
    assert go_quote("plain text") == '"plain text"'
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\n\t\x00\x7fé\u200b") == '"\\n\\t\\x00\\x7fé\\u200b"'
