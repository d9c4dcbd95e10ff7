"""``mason opt``: Definitions in and out, presets, --print-after/--print-after-all/--time-passes on
stderr, several outputs as a Definition stream, and errors as one line with exit code 1."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from mason.cli.main import main
from mason.ir.codec import STREAM_MAGIC, decode_graph, encode_graph, write_stream
from mason.ir.graph import Graph
from mason.ir.ops import ConfigOp
from tests.ir.strategies import fixed_graph

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def single_output() -> Graph:
    g = fixed_graph()
    return Graph((g.outputs[0],))  # the "app" output: a ConfigOp on a merge


@pytest.fixture
def app_llb(tmp_path: Path) -> Path:
    p = tmp_path / "app.llb"
    p.write_bytes(encode_graph(single_output())[0])
    return p


def test_default_is_O1(app_llb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.llb"
    rc, stdout, err = run(["opt", str(app_llb), "-o", str(out)], capsys)
    assert (rc, stdout, err) == (0, "", "")
    data = out.read_bytes()
    assert not data.startswith(STREAM_MAGIC)  # one output: a bare Definition BuildKit reads
    g = decode_graph(data)
    assert not any(isinstance(op, ConfigOp) for op in g.ops())
    cfg = g.outputs[0].image_config
    assert cfg["config"] == {"Cmd": ["/bin/app"], "ExposedPorts": {"80/tcp": {}}}
    assert cfg["history"][-1]["created_by"] == "EXPOSE 80/tcp"


def test_O0_keeps_config_ops(app_llb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.llb"
    assert run(["opt", str(app_llb), "-O0", "-o", str(out)], capsys)[0] == 0
    assert any(isinstance(op, ConfigOp) for op in decode_graph(out.read_bytes()).ops())
    assert out.read_bytes() == app_llb.read_bytes()  # verify changes nothing


@pytest.mark.parametrize("name", sorted(p.stem for p in CORPUS.glob("*.llb")))
def test_corpus_ops_survive_O1_unchanged(name: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = CORPUS / f"{name}.llb"
    out = tmp_path / "out.llb"
    assert run(["opt", str(src), "-O1", "-o", str(out)], capsys)[0] == 0
    before, after = decode_graph(src.read_bytes()), decode_graph(out.read_bytes())
    assert [op.digest for op in after.unique_ops()] == [op.digest for op in before.unique_ops()]
    assert after.outputs[0].ref.digest == before.outputs[0].ref.digest


def test_O2_folds_the_corpus_copy_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """multistage: COPY --from=builder-a then COPY --from=builder-b become one FileOp."""
    out = tmp_path / "out.llb"
    assert run(["opt", str(CORPUS / "multistage.llb"), "-O2", "-o", str(out)], capsys)[0] == 0
    before = decode_graph((CORPUS / "multistage.llb").read_bytes())
    after = decode_graph(out.read_bytes())
    assert len(after.unique_ops()) == len(before.unique_ops()) - 1
    (f,) = [op for op in after.unique_ops() if op.kind == "file" and len(op.actions) == 3]  # type: ignore[attr-defined]
    assert [a.action.src for a in f.actions] == ["/out/a.txt", "/src/b.txt", "/src/b.sum"]  # type: ignore[attr-defined]
    # inputs: busybox, builder-a's RUN, builder-b's RUN; action k's result is input 3+k
    assert [(a.input, a.secondary_input, a.output) for a in f.actions] == [(0, 1, -1), (3, 2, -1), (4, 2, 0)]  # type: ignore[attr-defined]


def test_print_after_and_text_output(app_llb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, err = run(["opt", str(app_llb), "--print-after", "hoist-config", "--print-after", "prune", "-S"],
                          capsys)
    assert rc == 0
    headers = re.findall(r"^// -----// IR after (\S+) //----- //$", err, re.M)
    assert headers == ["hoist-config", "prune"]
    first = err.split("// -----// IR after prune")[0]
    assert " config " not in first and "output app = " in first
    assert stdout.startswith("%0 = source ") and "output app = %" in stdout  # -S: the text form


def test_print_after_all_verify_each_time_passes(app_llb: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, err = run(["opt", str(app_llb), "-O2", "--print-after-all", "--verify-each", "--time-passes",
                           "-o", str(tmp_path / "o.llb")], capsys)
    assert rc == 0 and stdout == ""
    assert re.findall(r"IR after (\S+) ", err) == ["verify", "hoist-config", "dedupe", "prune", "merge"]
    timing = err[err.index("// pass timings (ms)"):].splitlines()[1:]
    assert [re.fullmatch(r" *\d+\.\d{3}  (\S+)", ln).group(1) for ln in timing] == \
        ["verify", "hoist-config", "dedupe", "prune", "merge", "total"]  # type: ignore[union-attr]


def test_several_outputs_use_the_stream_and_prune_picks_a_target(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "two.llb"
    src.write_bytes(write_stream(encode_graph(fixed_graph())))
    out = tmp_path / "out.llb"
    assert run(["opt", str(src), "--passes", "verify,hoist-config,dedupe", "-o", str(out)], capsys)[0] == 0
    assert out.read_bytes().startswith(STREAM_MAGIC)
    assert decode_graph(out.read_bytes()).names() == ["app", "layer"]
    assert run(["opt", str(src), "--passes", "prune{targets=layer}", "-o", str(out)], capsys)[0] == 0
    g = decode_graph(out.read_bytes())
    assert g.names() == ["layer"] and not out.read_bytes().startswith(STREAM_MAGIC)


def test_stdin_to_stdout(app_llb: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(app_llb.read_bytes())))
    assert main(["opt", "-", "-O0", "-o", "-"]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == app_llb.read_bytes()


@pytest.mark.parametrize("argv, message", [
    (["--passes", "verify,hoist"], "<pipeline>:1:8: error: unknown pass 'hoist' "
                                   "(valid: dedupe, hoist-config, merge, prune, verify)"),
    (["--passes", "prune{targets=nope}"], "error: prune: no output 'nope' (outputs: app)"),
    (["--passes", "verify", "-O2"], "error: give either --passes or -O, not both"),
    (["--print-after", "hoist"], "error: --print-after: unknown pass 'hoist' "
                                 "(valid: dedupe, hoist-config, merge, prune, verify)"),
])
def test_errors_are_one_message_and_exit_1(app_llb: Path, tmp_path: Path, argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, err = run(["opt", str(app_llb), "-o", str(tmp_path / "o.llb"), *argv], capsys)
    assert rc == 1 and stdout == ""
    assert err.splitlines()[0] == message
    assert "Traceback" not in err


def test_bad_level_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["opt", "x.llb", "-O3"], capsys)
    assert rc == 1 and "-O" in err and "3" in err
    bad = tmp_path / "bad.llb"
    bad.write_bytes(b"\xff\xff")
    rc, _, err = run(["opt", str(bad), "-o", str(tmp_path / "o.llb")], capsys)
    assert rc == 1 and err.startswith("error: not an LLB Definition")
    rc, _, err = run(["opt", str(tmp_path / "missing.llb"), "-o", "-"], capsys)
    assert rc == 1 and err.startswith("error: cannot read ")
