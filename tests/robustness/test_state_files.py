"""A damaged state directory is the user's disk, not a reason to crash: ``mason history`` and
``mason logs`` over records that are truncated, not JSON objects or of the wrong types."""

from __future__ import annotations

from pathlib import Path

import pytest

from mason.backends.solver.events import VertexDone, VertexLog, VertexStarted
from mason.backends.solver.history import HistoryRecorder

BUILD = "20240501T120000000Z-aaa111"
D = "sha256:" + "1" * 64


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with HistoryRecorder(tmp_path, BUILD, {"target": "x"}) as rec:
        rec(VertexStarted(1, D, "RUN x", 1.0))
        rec(VertexLog(1, "stdout", b"hi\n"))
        rec(VertexDone(1, D, "RUN x", 1.0))
    return tmp_path


RECORDS = {
    "empty": b"",
    "truncated": b'{"version": 1, "id": "x", "sta',
    "a list": b"[]",
    "null": b"null",
    "a string": b'"record"',
    "started not a number": b'{"version": 1, "id": "x", "started": "yesterday", "status": "finished"}',
    "steps not a list": b'{"version": 1, "id": "x", "started": 1, "status": "finished", "steps": "many"}',
    "meta not an object": b'{"version": 1, "id": "x", "started": 1, "status": "finished", "meta": 3}',
    "not UTF-8": b"\xff\xfe",
}


@pytest.mark.parametrize("data", list(RECORDS.values()), ids=list(RECORDS))
@pytest.mark.parametrize("cmd", [["history"], ["logs"], ["logs", BUILD]])
def test_damaged_record(root: Path, capsys, cmd, data):
    (root / "history" / BUILD / "record.json").write_bytes(data)
    from mason.cli.main import main

    capsys.readouterr()
    rc = main([*cmd, "--root", str(root)])
    _, err = capsys.readouterr()
    assert rc in (0, 1), err  # 70 is an internal error (a crash)
    assert "internal error" not in err and "Traceback" not in err, err
    if rc == 1:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_junk_in_the_history_directory_does_not_hide_builds(root: Path, capsys):
    """A stray directory (a copy, an editor's backup) sorts after the real builds."""
    from mason.cli.main import main

    (root / "history" / "zz-junk").mkdir()
    capsys.readouterr()
    assert main(["logs", "--root", str(root)]) == 0, capsys.readouterr().err
