"""The pass manager: pipeline parsing (options, nesting, errors listing valid names), presets,
registration rules and the run options (print-after, verify-each, time-passes)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

from mason.ir.builder import image
from mason.ir.errors import MasonError
from mason.ir.graph import Graph, Output
from mason.ir.ops import FileAction, FileOp, MkDir, Ref
from mason.passes import (
    LEVELS,
    PASSES,
    Pass,
    format_pipeline,
    parse_pipeline,
    pipeline_for_level,
    register_pass,
    run_pipeline,
)
from mason.passes.dedupe import Dedupe
from mason.passes.hoist_config import HoistConfig
from mason.passes.merge import Merge
from mason.passes.prune import Prune
from mason.passes.verify import Verify
from tests.passes.helpers import digests

ALL = "dedupe, hoist-config, merge, prune, verify"


def small_graph() -> Graph:
    s = image("busybox", platform="linux/amd64").config(("label", "a", "1"), created_by="LABEL a=1")
    return Graph.of(s.run("true").root().ref, {"config": {}})


# ---------------------------------------------------------------- parsing

def test_registry_has_every_pass_under_its_module_name() -> None:
    assert sorted(PASSES) == ["dedupe", "hoist-config", "merge", "prune", "verify"]
    for name, cls in PASSES.items():
        assert cls.__module__ == "mason.passes." + name.replace("-", "_")
        assert cls.name == name


def test_parse_plain_and_presets() -> None:
    assert parse_pipeline("verify,hoist-config,dedupe,prune") == [Verify(), HoistConfig(), Dedupe(), Prune()]
    assert parse_pipeline("") == []
    assert parse_pipeline("  verify ,\n dedupe ") == [Verify(), Dedupe()]
    assert pipeline_for_level(0) == "verify"
    assert pipeline_for_level(1) == "verify,hoist-config,dedupe,prune"
    assert pipeline_for_level(2) == "verify,hoist-config,dedupe,prune,merge"
    assert LEVELS[2].startswith(LEVELS[1])
    with pytest.raises(MasonError, match=r"unknown optimization level 3 \(valid: 0, 1, 2\)"):
        pipeline_for_level(3)


def test_parse_options_lists_and_values() -> None:
    assert parse_pipeline("prune{targets=a,b}") == [Prune(("a", "b"))]
    assert parse_pipeline("prune{targets=a,b},verify") == [Prune(("a", "b")), Verify()]
    assert parse_pipeline("prune{ targets = app }") == [Prune(("app",))]
    assert parse_pipeline("prune{targets=}") == [Prune(())]
    assert parse_pipeline("prune{}") == [Prune()]
    assert parse_pipeline('prune{targets="a,b","c}d"}') == [Prune(("a,b", "c}d"))]
    assert parse_pipeline("prune{targets={x,{y}},z}") == [Prune(("{x,{y}}", "z"))]
    assert parse_pipeline("merge{files=false,layers=true}") == [Merge(files=False, layers=True)]
    assert parse_pipeline("merge{files=0}") == [Merge(files=False)]
    assert parse_pipeline("merge{layers}") == [Merge(layers=True)]
    assert parse_pipeline("merge{files=no,layers=off}") == [Merge(False, False)]


def test_format_pipeline_round_trips() -> None:
    for text in ["verify,hoist-config,dedupe,prune{targets=a,b},merge{files=false}",
                 'prune{targets="a,b",c}', "verify"]:
        passes = parse_pipeline(text)
        assert parse_pipeline(format_pipeline(passes)) == passes
    assert format_pipeline(parse_pipeline("prune{targets=a,b},merge{files=true}")) == "prune{targets=a,b},merge"


@pytest.mark.parametrize("text, col, message", [
    ("foo", 1, f"unknown pass 'foo' (valid: {ALL})"),
    ("verify,hoist,dedupe", 8, f"unknown pass 'hoist' (valid: {ALL})"),
    ("prune{target=a}", 7, "unknown option 'target' for pass 'prune' (valid: targets)"),
    ("merge{files=true,foo=1}", 18, "unknown option 'foo' for pass 'merge' (valid: files, layers)"),
    ("verify{x=1}", 8, "unknown option 'x' for pass 'verify' (valid: none)"),
    ("prune{targets=a", 16, "unterminated options: expected ',' or '}'"),
    ("verify,,dedupe", 8, "expected a pass name, found ','"),
    ("verify,", 8, "expected a pass name, found the end"),
    ("verify dedupe", 8, "expected ',' or the end after pass 'verify', found 'd'"),
    ("merge{files=maybe}", 7, "option 'files' of pass 'merge' takes true or false, not 'maybe'"),
    ("merge{files=true,files=false}", 18, "option 'files' given twice for pass 'merge'"),
    ('prune{targets="a}', 15, "unterminated string"),
    ("prune{targets={a,{b}", 15, "unbalanced '{'"),
    ("prune{=a}", 7, "expected an option name before '='"),
])
def test_parse_errors_point_at_the_problem(text: str, col: int, message: str) -> None:
    with pytest.raises(MasonError) as ei:
        parse_pipeline(text)
    e = ei.value
    assert e.message == message
    assert e.loc is not None and (e.loc.file, e.loc.line, e.loc.col) == ("<pipeline>", 1, col)
    shown = e.format().splitlines()
    assert shown[0] == f"<pipeline>:1:{col}: error: {message}"
    assert shown[1] == "    " + text and shown[2] == "    " + " " * (col - 1) + "^"


def test_register_pass_rules() -> None:
    @dataclass(frozen=True)
    class Odd(Pass):
        name: ClassVar[str] = "Odd_Name"

    with pytest.raises(ValueError, match="not kebab-case"):
        register_pass(Odd)

    @dataclass(frozen=True)
    class Misplaced(Pass):
        name: ClassVar[str] = "misplaced"

    Misplaced.__module__ = "mason.passes.elsewhere"
    with pytest.raises(ValueError, match=r"must live in mason/passes/misplaced.py"):
        register_pass(Misplaced)
    assert "misplaced" not in PASSES


def test_register_pass_outside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mason.passes.manager.PASSES", dict(PASSES))
    from mason.passes import manager

    @register_pass
    @dataclass(frozen=True)
    class CountOps(Pass):
        name: ClassVar[str] = "count-ops"
        limit: int = 10

    assert manager.PASSES["count-ops"] is CountOps
    assert manager.parse_pipeline("count-ops{limit=0x10}") == [CountOps(16)]
    with pytest.raises(MasonError, match="takes an integer, not 'many'"):
        manager.parse_pipeline("count-ops{limit=many}")


# ---------------------------------------------------------------- running

def test_run_pipeline_never_mutates_its_input() -> None:
    g = small_graph()
    before = digests(g)
    cfg = g.outputs[0].image_config
    out = run_pipeline(g, LEVELS[2])
    assert digests(g) == before and g.outputs[0].image_config is cfg and cfg == {"config": {}}
    assert digests(out) != before


def test_print_after_prints_the_ir_after_that_pass() -> None:
    buf = io.StringIO()
    run_pipeline(small_graph(), LEVELS[1], print_after={"hoist-config"}, out=buf)
    text = buf.getvalue()
    assert text.startswith("// -----// IR after hoist-config //----- //\n%0 = source ")
    assert text.count("IR after") == 1 and " config " not in text and "output default = %1" in text


def test_print_after_all_and_options_in_headers() -> None:
    buf = io.StringIO()
    run_pipeline(small_graph(), "verify,prune{targets=default},dedupe", print_after_all=True, out=buf)
    headers = re.findall(r"^// -----// IR after (.*) //----- //$", buf.getvalue(), re.M)
    assert headers == ["verify", "prune{targets=default}", "dedupe"]


def test_print_after_unknown_pass_lists_valid_names() -> None:
    with pytest.raises(MasonError, match=rf"--print-after: unknown pass 'hoist' \(valid: {ALL}\)"):
        run_pipeline(small_graph(), "verify", print_after=["hoist"])


def test_time_passes_prints_ms_per_pass() -> None:
    buf = io.StringIO()
    run_pipeline(small_graph(), LEVELS[2], time_passes=True, out=buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "// pass timings (ms)"
    names = [re.fullmatch(r" *\d+\.\d{3}  (\S+)", ln).group(1) for ln in lines[1:]]  # type: ignore[union-attr]
    assert names == ["verify", "hoist-config", "dedupe", "prune", "merge", "total"]


@dataclass(frozen=True)
class Breaker(Pass):
    """A buggy pass: points the output at a FileOp whose action names a missing input."""

    name: ClassVar[str] = "breaker"

    def run(self, graph: Graph) -> Graph:
        bad = FileOp((FileAction(3, -1, 0, MkDir("/x")),), inputs=(graph.outputs[0].ref,))
        return Graph((Output("default", Ref(bad)),))


def test_verify_each_names_the_pass_that_broke_the_graph() -> None:
    g = small_graph()
    assert run_pipeline(g, [Breaker()]).outputs[0].ref.op.kind == "file"  # unchecked without it
    with pytest.raises(MasonError, match=r"^error: after pass breaker: file op sha256:[0-9a-f]{64}: "
                                         r"actions\[0\] \(mkdir\)\.input: 3 out of range"):
        run_pipeline(g, [Verify(), Breaker(), Dedupe()], verify_each=True)
