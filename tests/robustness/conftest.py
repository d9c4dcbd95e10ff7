"""Helpers for the adversarial tests: run the CLI in-process or as a real process and check the
house rule for bad input — exit code 1, ``error: …`` (or a located ``FILE:LINE:COL: error:``
with the source line and a caret), no traceback, nothing half-written left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import build_env  # noqa: F401 - the fixture, for the secret scans

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
MASON = [sys.executable, "-m", "mason"]

LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: .+")


@dataclass
class Run:
    rc: int
    out: str
    err: str


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    """``mason ARGV`` in this process; any exception escaping ``main`` fails the test."""
    from mason.cli.main import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return Run(rc, out, err)


def run_proc(argv: list[str], *, stdin: bytes | None = b"", cwd: str | Path | None = None,
             env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """``mason ARGV`` as a real process (how a user meets it)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MASON_")}
    e.update(env or {})
    p = subprocess.run([*MASON, *map(str, argv)], input=stdin, capture_output=True, cwd=cwd, env=e,
                       timeout=timeout)
    return Run(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def assert_user_error(r: Run, *, match: str | None = None) -> str:
    """Exit code 1; stderr is ``error: …`` on one line, or located errors each followed by the
    source line and a caret; no traceback and no internal error. Returns the first error line."""
    assert r.rc == 1, f"exit code {r.rc}, stderr:\n{r.err}"
    assert "Traceback" not in r.err, r.err
    assert "internal error" not in r.err, r.err
    raw = r.err.splitlines()
    lines = [ln for ln in raw if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ") or LOCATED.match(ln)]
    assert errors, f"no error line in:\n{r.err}"
    if errors[0].startswith("error: "):
        others = [ln for ln in lines if " warning: " not in ln and not ln.startswith("warning: ")]
        assert others == [errors[0]], f"expected exactly one error line, got:\n{r.err}"
    else:  # located: each error line, then the source line, then a caret under the column
        for i, ln in enumerate(raw):
            m = LOCATED.match(ln)
            if m:
                assert i + 2 < len(raw), f"no source line and caret after {ln!r}:\n{r.err}"
                caret = raw[i + 2]
                assert caret.strip() == "^", f"no caret after {ln!r}:\n{r.err}"
                assert caret.index("^") - 4 == int(m["col"]) - 1, f"caret not under column {m['col']}:\n{r.err}"
    if match is not None:
        assert re.search(match, r.err), f"{match!r} not in:\n{r.err}"
    return errors[0]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}
