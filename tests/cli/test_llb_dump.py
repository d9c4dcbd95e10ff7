"""``mason llb dump``: every corpus Definition (BuildKit v0.32.2's, ``buildkit-llb-v0.32``) in every
format, stdin, v0.11.6 Definitions under their own digests, mason's Definition streams, and bad
input as one error line with exit code 1 (never a traceback)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mason.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32"
OLD_CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb"  # v0.11.6
NAMES = sorted(p.stem for p in CORPUS.glob("*.llb"))
assert NAMES, f"no *.llb files in {CORPUS}"
MASON = Path(sys.executable).with_name("mason")

def not_a_definition(size: int) -> str:
    return (f"error: not an LLB Definition: {size} bytes that do not decode as a protobuf "
            "pb.Definition (truncated, or another kind of file)\n")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize("name", NAMES)
def test_json_is_dump_llb(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["llb", "dump", str(CORPUS / f"{name}.llb")], capsys)
    assert (rc, err) == (0, "")
    expected = (CORPUS / f"{name}.json").read_text().splitlines()
    assert [json.loads(line) for line in out.splitlines()] == [json.loads(line) for line in expected]


@pytest.mark.parametrize("name", NAMES)
def test_pretty_json(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["llb", "dump", "--format", "json", "--pretty", str(CORPUS / f"{name}.llb")], capsys)
    assert rc == 0
    expected = [json.loads(line) for line in (CORPUS / f"{name}.json").read_text().splitlines()]
    assert json.loads(out) == expected


def _dot_lines(text: str) -> tuple[set[str], set[str]]:
    body = [line.strip() for line in text.splitlines()[1:-1]]
    return {x for x in body if " -> " not in x}, {x for x in body if " -> " in x}


@pytest.mark.parametrize("name", NAMES)
def test_buildkit_dot_has_the_nodes_and_edges_of_dump_llb(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["llb", "dump", "--format", "buildkit-dot", str(CORPUS / f"{name}.llb")], capsys)
    assert (rc, err) == (0, "")
    expected = (CORPUS / f"{name}.dot").read_text()
    assert out.splitlines()[0] == "digraph {" and out.splitlines()[-1] == "}"
    assert _dot_lines(out) == _dot_lines(expected)


@pytest.mark.parametrize("name", NAMES)
def test_svg_is_valid_svg(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["llb", "dump", "--format", "svg", str(CORPUS / f"{name}.llb")], capsys)
    assert rc == 0
    root = ET.fromstring(out)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    n_ops = len((CORPUS / f"{name}.json").read_text().splitlines())
    assert sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g")
               if (g.get("class") or "").split()[:1] == ["node"]) == n_ops


def test_stdin_is_the_default(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, (CORPUS / "multistage.llb").read_bytes())
    rc, out, _ = run(["llb", "dump", "--format", "buildkit-dot"], capsys)
    assert rc == 0
    assert out == (CORPUS / "multistage.dot").read_text()


def test_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, (CORPUS / "simple.llb").read_bytes())
    rc, out, _ = run(["llb", "dump", "-"], capsys)
    assert rc == 0
    assert out == (CORPUS / "simple.json").read_text()


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.llb"
    assert run(["llb", "dump", str(path)], capsys) == (1, "", f"error: cannot read {path}: No such file or directory\n")


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["llb", "dump", str(tmp_path)], capsys) == (1, "", f"error: cannot read {tmp_path}: Is a directory\n")


def test_not_a_definition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes((CORPUS / "simple.Dockerfile").read_bytes())
    assert run(["llb", "dump", str(path)], capsys) == (1, "", not_a_definition(path.stat().st_size))


def test_truncated_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cut.llb"
    path.write_bytes((CORPUS / "simple.llb").read_bytes()[:1000])
    assert run(["llb", "dump", "--format", "dot", str(path)], capsys) == (1, "", not_a_definition(1000))


def test_empty_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, b"")
    assert run(["llb", "dump"], capsys) == (
        1, "", "error: Definition has 0 ops; it needs at least 2 (the ops and a terminal op)\n")


def test_bad_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, b"\xff\xff\xff")
    assert run(["llb", "dump", "-"], capsys) == (1, "", not_a_definition(3))


def test_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(["llb", "dump", "--format", "png", str(CORPUS / "simple.llb")], capsys)
    assert (rc, out) == (1, "")
    assert "Invalid value for '--format': 'png' is not one of 'json', 'text', 'dot', 'svg', 'html', 'buildkit-dot'." in err


def test_subprocess_bad_input_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "cut.llb"
    path.write_bytes((CORPUS / "simple.llb").read_bytes()[:1000])
    p = subprocess.run([str(MASON), "llb", "dump", str(path)], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", not_a_definition(1000))


def test_subprocess_stdin(tmp_path: Path) -> None:
    data = (CORPUS / "cachemount.llb").read_bytes()
    p = subprocess.run([str(MASON), "llb", "dump", "--format", "buildkit-dot", "-"], input=data, capture_output=True,
                       timeout=60)
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout.decode() == (CORPUS / "cachemount.dot").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_text_is_the_ir_text_form(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mason.ir.codec import decode_definition
    from mason.ir.text import format_graph

    data = (CORPUS / f"{name}.llb").read_bytes()
    rc, out, err = run(["llb", "dump", "--format", "text", str(CORPUS / f"{name}.llb")], capsys)
    assert (rc, err) == (0, "")
    assert out == format_graph(decode_definition(data).graph)
    n_ops = len((CORPUS / f"{name}.json").read_text().splitlines()) - 1  # all but the terminal op
    lines = out.splitlines()
    assert [line.split(" ")[0] for line in lines] == [f"%{i}" for i in range(n_ops)] + ["output"]


def test_text_with_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["llb", "dump", "--format", "text", "--metadata", str(CORPUS / "metadata.llb")], capsys)
    assert rc == 0
    assert '# description=[["llb.customname","[internal] load build context"]]' in out


@pytest.mark.parametrize("name", NAMES)
def test_v0_11_definitions_dump_the_digests_of_their_own_bytes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """BuildKit v0.11.6 wrote ops in field-number order, which mason would encode otherwise: the
    dump still prints the digests of the bytes in the file, as ``buildctl debug dump-llb`` does."""
    rc, out, err = run(["llb", "dump", str(OLD_CORPUS / f"{name}.llb")], capsys)
    assert (rc, err) == (0, "")
    got = [json.loads(line)["Digest"] for line in out.splitlines()]
    want = [json.loads(line)["Digest"] for line in (OLD_CORPUS / f"{name}.json").read_text().splitlines()]
    assert got == want
    # the same ops, in v0.32.2's JSON shape (zero indices left out, the terminal "Op":{})
    ops = [json.loads(line)["Op"] for line in out.splitlines()]
    assert ops[-1]["Op"] == {} and all("index" not in i for o in ops for i in o.get("inputs", []) if not i.get("index"))


def test_a_lower_stream_dumps_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mason lower -O0`` with several stages writes a Definition stream; dump reads it: every
    op once, and each output's terminal op."""
    (tmp_path / "Dockerfile").write_text("FROM scratch AS a\nCOPY x /x\nFROM scratch AS b\nCOPY --from=a /x /y\n")
    out = tmp_path / "f.llb"
    assert main(["lower", "-O0", "-o", str(out), str(tmp_path)]) == 0
    capsys.readouterr()
    from mason.ir.codec import STREAM_MAGIC, decode_definition, read_stream

    data = out.read_bytes()
    assert data.startswith(STREAM_MAGIC)
    defs = [decode_definition(d) for d in read_stream(data)]
    rc, js, err = run(["llb", "dump", str(out)], capsys)
    assert (rc, err) == (0, "")
    digests = [json.loads(line)["Digest"] for line in js.splitlines()]
    want: list[str] = []
    for d in defs:
        for dg in [o.digest for o in d.ops] + [d.terminal_digest]:
            if dg not in want:
                want.append(dg)
    assert digests == want and len(defs) == 3  # a, b and default (= b: same terminal)
    rc, dot, _ = run(["llb", "dump", "--format", "buildkit-dot", str(out)], capsys)
    assert rc == 0 and all(f'"{dg}"' in dot for dg in want)
    rc, text, _ = run(["llb", "dump", "--format", "text", str(out)], capsys)
    assert rc == 0 and [ln.split(" =")[0] for ln in text.splitlines() if ln.startswith("output")] == \
        ["output a", "output b", "output default"]
