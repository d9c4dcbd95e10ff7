"""``mason logs`` and ``mason history`` over records written by HistoryRecorder in a
temporary state root."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mason.backends.solver.events import Status, VertexCached, VertexDone, VertexLog, VertexStarted, Warning
from mason.backends.solver.history import HistoryRecorder
from mason.cli.main import main

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")
FIRST, SECOND = "20240501T120000000Z-aaa111", "20240501T130000000Z-bbb222"


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def root(tmp_path: Path) -> Path:
    c = Clock(1000.0)
    with HistoryRecorder(tmp_path, FIRST, {"target": "app", "tags": ["app:latest", "app:v1"]}, clock=c) as rec:
        rec(VertexCached(1, D1, "[stage-0 1/3] FROM docker.io/library/busybox"))
        rec(VertexStarted(2, D2, "[a 2/3] RUN make", 1000.0))
        rec(VertexStarted(3, D3, "[b 2/3] RUN test", 1000.0))
        c.t = 1000.25
        rec(VertexLog(3, "stdout", b"b out\n"))
        c.t = 1000.5
        rec(VertexLog(2, "stdout", b"cc main.c\nld app"))
        rec(VertexLog(2, "stderr", b"bad \xff byte\n"))
        rec(Warning("the host network is used"))
        c.t = 1001.0
        rec(VertexDone(3, D3, "[b 2/3] RUN test", 1.0))
        c.t = 1001.25
        rec(VertexDone(2, D2, "[a 2/3] RUN make", 1.25))
        rec(Status("exporting to image"))
        c.t = 1062.0
    c = Clock(4600.0)
    with pytest.raises(RuntimeError):
        with HistoryRecorder(tmp_path, SECOND, {"target": None, "tags": []}, clock=c) as rec:
            rec(VertexCached(1, D1, "[stage-0 1/3] FROM docker.io/library/busybox"))
            rec(VertexStarted(2, D2, "[stage-0 2/3] RUN false", 4600.0))
            rec(VertexLog(2, "stderr", b"token=****\n"))
            c.t = 4600.5
            rec(VertexDone(2, D2, "[stage-0 2/3] RUN false", 0.5, error="exit code: 1\n  last lines…"))
            raise RuntimeError("step 2 failed")
    return tmp_path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


FIRST_LOGS = """\
#1 [stage-0 1/3] FROM docker.io/library/busybox
#1 CACHED

#2 [a 2/3] RUN make
#2 0.500 cc main.c
#2 0.500 bad \ufffd byte
#2 0.500 ld app
#2 DONE 1.2s

#3 [b 2/3] RUN test
#3 0.250 b out
#3 DONE 1.0s

WARNING: the host network is used
=> exporting to image
"""


def test_logs_replays_a_build_by_id_prefix(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["logs", "--root", str(root), "20240501T12"], capsys) == (0, FIRST_LOGS, "")
    assert run(["logs", "aaa1", "--root", str(root)], capsys) == (0, FIRST_LOGS, "")


def test_logs_defaults_to_latest_build_and_mason_root(root: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASON_ROOT", str(root))
    rc, out, err = run(["logs"], capsys)
    assert (rc, err) == (0, "")
    assert out == ("#1 [stage-0 1/3] FROM docker.io/library/busybox\n#1 CACHED\n\n"
                   "#2 [stage-0 2/3] RUN false\n#2 0.000 token=****\n#2 ERROR: exit code: 1\n")


def test_logs_one_step(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["logs", FIRST, "--step", "3", "--root", str(root)], capsys)
    assert (rc, out) == (0, "#3 [b 2/3] RUN test\n#3 0.250 b out\n#3 DONE 1.0s\n")


def test_logs_errors(root: Path, tmp_path_factory: pytest.TempPathFactory,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["logs", FIRST, "--step", "9", "--root", str(root)], capsys) == (
        1, "", f"error: build {FIRST} has no step 9 (steps: 1, 2, 3)\n")
    assert run(["logs", "nope", "--root", str(root)], capsys) == (
        1, "", f"error: no build 'nope' under {root} (see `mason history`)\n")
    empty = tmp_path_factory.mktemp("empty")
    assert run(["logs", "--root", str(empty)], capsys) == (1, "", f"error: no builds recorded under {empty}\n")


def test_history_lists_builds_newest_first(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def at(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    rc, out, err = run(["history", "--root", str(root)], capsys)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "BUILD ID                    CREATED              STATUS    TARGET  TAGS               STEPS            DURATION",
        f"{SECOND}  {at(4600)}  failed    -       -                  1 ran, 1 cached  0.5s",
        f"{FIRST}  {at(1000)}  finished  app     app:latest,app:v1  2 ran, 1 cached  1m02s",
    ]


def test_history_shows_interrupted_and_empty(root: Path, tmp_path_factory: pytest.TempPathFactory,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rec = HistoryRecorder(root, "20240501T140000000Z-ccc333", {"target": "app"})
    rec(VertexStarted(1, D1, "[stage-0 1/1] RUN sleep 100"))
    rows = run(["history", "--root", str(root)], capsys)[1].splitlines()
    assert rows[1].split()[3:5] == ["running", "app"]
    os.close(rec._lockfd)  # what the kernel does when the process is killed
    rows = run(["history", "--root", str(root)], capsys)[1].splitlines()
    assert rows[1].split()[3:] == ["interrupted", "app", "-", "1", "ran,", "0", "cached", "-"]
    rc, out, _ = run(["logs", "ccc", "--root", str(root)], capsys)
    assert out == "#1 [stage-0 1/1] RUN sleep 100\n#1 ERROR: interrupted\n"
    empty = tmp_path_factory.mktemp("empty")
    assert run(["history", "--root", str(empty)], capsys) == (0, "", f"no builds recorded under {empty}\n")
