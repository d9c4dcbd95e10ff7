"""Issue 11 (a growing self-referencing ENV: 20,000 lines of ``ENV A=$A$A`` ran for minutes,
unbounded — BuildKit and a shell have no limit either): variable expansion is charged to one
budget per Dockerfile (16 MiB), so a doubling or steadily growing variable stops with one located
error at the line that crosses it, in time linear in the budget; ordinary Dockerfiles, including
large expansions below the budget, lower as before. The lint and outline passes, which expand
words too, stay bounded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mason.driver import LowerRequest, lower_request
from mason.frontends.dockerfile.checks import lint
from mason.frontends.dockerfile.outline import outline
from mason.frontends.dockerfile.shell import EXPANSION_LIMIT, ExpansionBudget, ShellError, ShellLex
from mason.frontends.dockerfile.syntax import parse_dockerfile
from mason.ir.errors import MasonError

ROOT = Path(__file__).resolve().parents[2]


def _doubling(n: int = 20_000) -> str:
    return "FROM scratch\nENV A=x\n" + "ENV A=$A$A\n" * n + "COPY Dockerfile /d\n"


def _growing(n: int = 20_000, step: str = "abcdefgh") -> str:
    return "FROM scratch\nENV A=x\n" + f"ENV A=${{A}}{step}\n" * n + "COPY Dockerfile /d\n"


def _lower(tmp_path: Path, text: str):
    (tmp_path / "Dockerfile").write_text(text)
    return lower_request(LowerRequest(context=str(tmp_path), resolve=False))


def _crossing_line(step_len: int) -> int:
    """The Dockerfile line (of :func:`_growing`) whose expansion crosses the budget: ENV line k
    (line k+2) substitutes A, 1 + step_len*(k-1) characters long."""
    spent, k = 0, 0
    while spent <= EXPANSION_LIMIT:
        k += 1
        spent += 1 + step_len * (k - 1)
    return k + 2


def test_doubling_env_is_one_located_error(tmp_path):
    with pytest.raises(MasonError) as ei:
        _lower(tmp_path, _doubling())
    e = ei.value
    # ENV line k (line k+2) substitutes 2**k characters: 2**(k+1)-2 in all passes 16 MiB at k=24
    assert e.loc is not None and e.loc.line == 26
    assert "16 MiB" in e.message and "ENV A=$A$A" in e.message


def test_growing_env_stops_at_the_line_crossing_the_budget(tmp_path):
    with pytest.raises(MasonError) as ei:
        _lower(tmp_path, _growing())
    assert ei.value.loc is not None and ei.value.loc.line == _crossing_line(8)


def test_arg_growth_is_bounded_too(tmp_path):
    text = "FROM scratch\nARG A=x\n" + "ARG A=$A$A\n" * 20_000 + "COPY Dockerfile /d\n"
    with pytest.raises(MasonError) as ei:
        _lower(tmp_path, text)
    assert ei.value.loc is not None and ei.value.loc.line == 26


def test_replace_all_product_is_charged_as_it_grows():
    """``${a//x/$B}``: every match gets B, so the result is a product of two sizes; it is
    refused while it is being built, not after."""
    lex = ShellLex()
    env = {"a": "x" * 4096, "B": "y" * 4096}  # 16 MiB of output from 8 KiB of input
    budget = ExpansionBudget(1 << 20)
    with pytest.raises(ShellError, match="MiB"):
        lex.process_word("${a//x/$B}", env, budget=budget)
    assert budget.left >= -(4096 + 1)  # stopped within one replacement of the limit


def test_large_expansions_below_the_budget_still_lower(tmp_path):
    low = _lower(tmp_path, _growing(1000))
    env = low.image_config["config"]["Env"]
    assert env[-1] == "A=x" + "abcdefgh" * 1000
    assert len(low.image_config["history"]) == 1002


def test_lint_and_outline_stay_bounded():
    text = _doubling()
    result = parse_dockerfile(text)
    report = lint(result, text)  # the words it cannot expand it leaves to the build
    assert not report.failed
    assert outline(result, text) is not None


def test_cli_error_line_no_traceback(tmp_path):
    (tmp_path / "Dockerfile").write_text(_doubling())
    p = subprocess.run([sys.executable, "-m", "mason", "lower", "--no-resolve", "-o", os.devnull,
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"{tmp_path / 'Dockerfile'}:26:1: error: variable expansion produces "
                               "more than 16 MiB"), p.stderr
