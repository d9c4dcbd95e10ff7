"""Build records: steps and full output stored as the build goes, read back by list/load,
never clipped, and a build killed with SIGKILL shows as ``interrupted`` with what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mason.backends.solver import history as hist
from mason.backends.solver.events import Recorder, Status, VertexCached, VertexDone, VertexLog, VertexStarted, Warning
from mason.backends.solver.history import (
    HistoryRecorder,
    list_builds,
    load_build,
    new_build_id,
    prune_history,
    replay_events,
)
from mason.ir.errors import MasonError

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")
META = {"context": "/src/app", "dockerfile": "/src/app/Dockerfile", "target": "app",
        "tags": ["app:latest", "app:1"]}
REPO = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def record_build(root: Path, build_id: str = "20240501T120000000Z-aaaaaa", **kw) -> HistoryRecorder:
    clock = Clock()
    rec = HistoryRecorder(root, build_id, META, clock=clock, **kw)
    rec(VertexCached(1, D1, "[stage-0 1/3] FROM busybox"))
    rec(VertexStarted(2, D2, "[stage-0 2/3] RUN make", 1000.0))
    clock.t = 1000.5
    rec(VertexLog(2, "stdout", b"line one\nline "))
    clock.t = 1001.0
    rec(VertexLog(2, "stderr", b"\xffraw\n"))
    rec(VertexLog(2, "stdout", b"two\n"))
    rec(Warning("careful"))
    clock.t = 1001.5
    rec(VertexDone(2, D2, "[stage-0 2/3] RUN make", 1.5))
    rec(VertexStarted(3, D3, "[stage-0 3/3] RUN false", 1001.5))
    rec(VertexLog(3, "stdout", b"token=****\n"))
    clock.t = 1002.0
    rec(VertexDone(3, D3, "[stage-0 3/3] RUN false", 0.5, error="exit code: 1"))
    rec(Status("exporting to image"))
    return rec


def test_record_steps_and_logs(tmp_path: Path) -> None:
    fwd = Recorder()
    rec = record_build(tmp_path, forward=fwd)
    assert len(fwd.events) == 11  # everything forwarded to the renderer
    rec.update(image="sha256:feed")
    rec.finish("failed", "step 3 failed")
    d = tmp_path / "history" / "20240501T120000000Z-aaaaaa"
    raw = json.loads((d / "record.json").read_text())
    assert raw["status"] == "failed" and raw["error"] == "step 3 failed"
    assert raw["meta"] == {**META, "image": "sha256:feed"}
    assert raw["started"] == 1000.0 and raw["ended"] == 1002.0
    assert raw["steps"] == [
        {"n": 1, "name": "[stage-0 1/3] FROM busybox", "digest": D1, "status": "cached", "cached": True,
         "started": None, "duration": 0.0, "error": None},
        {"n": 2, "name": "[stage-0 2/3] RUN make", "digest": D2, "status": "done", "cached": False,
         "started": 1000.0, "duration": 1.5, "error": None},
        {"n": 3, "name": "[stage-0 3/3] RUN false", "digest": D3, "status": "error", "cached": False,
         "started": 1001.5, "duration": 0.5, "error": "exit code: 1"},
    ]
    assert (d / "logs" / "2.log").read_bytes() == b"line one\nline \xffraw\ntwo\n"
    b = load_build(tmp_path)
    assert (b.id, b.status, b.target, b.tags, b.ran, b.cached, b.duration) == (
        "20240501T120000000Z-aaaaaa", "failed", "app", ["app:latest", "app:1"], 2, 1, 2.0)
    assert b.warnings == ["careful"] and b.statuses == ["exporting to image"]
    assert list(b.log_chunks(2)) == [(0.5, "stdout", b"line one\nline "), (1.0, "stderr", b"\xffraw\n"),
                                     (1.0, "stdout", b"two\n")]
    assert b.log(3) == b"token=****\n" and b.log(1) == b""


def test_context_manager_statuses(tmp_path: Path) -> None:
    with HistoryRecorder(tmp_path, "20240501T120000001Z-000001", META) as rec:
        rec(VertexStarted(1, D1, "x"))
    with pytest.raises(MasonError):
        with HistoryRecorder(tmp_path, "20240501T120000002Z-000002", META):
            raise MasonError("Dockerfile parse failed")
    with pytest.raises(KeyboardInterrupt):
        with HistoryRecorder(tmp_path, "20240501T120000003Z-000003", META):
            raise KeyboardInterrupt
    got = [(b.status, b.error) for b in list_builds(tmp_path)]
    assert got == [("finished", None), ("failed", "Dockerfile parse failed"), ("cancelled", "interrupted")]


def test_five_megabyte_log_is_not_clipped(tmp_path: Path) -> None:
    data = b"".join(b"%08d %s\n" % (i, b"x" * (i % 200)) for i in range(50_000))
    data += os.urandom(1 << 20)  # binary too
    assert len(data) > 5 * 1024 * 1024
    with HistoryRecorder(tmp_path, meta=META) as rec:
        rec(VertexStarted(1, D1, "[stage-0 2/2] RUN big"))
        for i in range(0, len(data), 65536):
            rec(VertexLog(1, "stdout", data[i:i + 65536]))
        rec(VertexDone(1, D1, "[stage-0 2/2] RUN big", 3.0))
    b = load_build(tmp_path)
    assert b.log(1) == data
    assert b"".join(c for _, _, c in b.log_chunks(1)) == data


def test_running_build_is_running_then_interrupted_after_sigkill(tmp_path: Path) -> None:
    live = HistoryRecorder(tmp_path, "20240501T120000000Z-aaaaaa", META)
    live(VertexStarted(1, D1, "[stage-0 1/1] RUN sleep"))
    assert [b.status for b in list_builds(tmp_path)] == ["running"]  # its lock is held
    live.finish()
    script = textwrap.dedent(f"""
        import os, signal
        from mason.backends.solver.events import *
        from mason.backends.solver.history import HistoryRecorder
        rec = HistoryRecorder({str(tmp_path)!r}, "20240501T130000000Z-bbbbbb", {{"target": "app"}})
        rec(VertexCached(1, "{D1}", "[stage-0 1/3] FROM busybox"))
        rec(VertexStarted(2, "{D2}", "[stage-0 2/3] RUN make", 5000.0))
        rec(VertexLog(2, "stdout", b"done\\n"))
        rec(VertexDone(2, "{D2}", "[stage-0 2/3] RUN make", 1.0))
        rec(VertexStarted(3, "{D3}", "[stage-0 3/3] RUN sleep 100", 5001.0))
        rec(VertexLog(3, "stdout", b"started sleeping\\nhalf a li"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    builds = list_builds(tmp_path)
    assert [b.id for b in builds] == ["20240501T120000000Z-aaaaaa", "20240501T130000000Z-bbbbbb"]
    b = builds[1]
    assert b.status == "interrupted" and b.ended is None and b.target == "app"
    assert [(s.n, s.status, s.duration) for s in b.steps] == [(1, "cached", 0.0), (2, "done", 1.0),
                                                               (3, "running", None)]
    assert b.steps[2].name == "[stage-0 3/3] RUN sleep 100"
    assert b.log(3) == b"started sleeping\nhalf a li"
    last = list(replay_events(b))[-1][1]
    assert last == VertexDone(3, D3, "[stage-0 3/3] RUN sleep 100", last.duration, error="interrupted")


def test_index_missing_last_chunk_still_yields_bytes(tmp_path: Path) -> None:
    with HistoryRecorder(tmp_path, meta=META) as rec:
        rec(VertexStarted(1, D1, "x"))
        rec(VertexLog(1, "stderr", b"indexed\n"))
    b = load_build(tmp_path)
    with open(b.dir / "logs" / "1.log", "ab") as f:
        f.write(b"after the index\n")  # as if killed between the two writes
    with open(b.dir / "logs" / "1.idx", "a") as f:
        f.write("0.1 std")  # and a torn index line
    chunks = list(b.log_chunks(1))
    assert [(s, d) for _, s, d in chunks] == [("stderr", b"indexed\n"), ("stdout", b"after the index\n")]
    # the bytes past the index carry the last indexed time (the torn "0.1" line is not read);
    # the indexed time itself is however long the recorder took, so it is not a fixed value
    assert chunks[1][0] == chunks[0][0] != 0.1


def test_load_build_by_prefix(tmp_path: Path) -> None:
    for bid in ("20240501T120000000Z-abc111", "20240501T130000000Z-abc222", "20240602T090000000Z-fff333"):
        HistoryRecorder(tmp_path, bid, META).finish()
    assert load_build(tmp_path).id == "20240602T090000000Z-fff333"
    assert load_build(tmp_path, "20240501T13").id == "20240501T130000000Z-abc222"
    assert load_build(tmp_path, "fff").id == "20240602T090000000Z-fff333"
    assert load_build(tmp_path, "abc1").id == "20240501T120000000Z-abc111"
    with pytest.raises(MasonError) as e:
        load_build(tmp_path, "abc")
    assert e.value.message == ("build 'abc' is ambiguous: 2 builds match "
                               "(20240501T120000000Z-abc111, 20240501T130000000Z-abc222)")
    with pytest.raises(MasonError) as e:
        load_build(tmp_path, "zzz")
    assert e.value.message == f"no build 'zzz' under {tmp_path} (see `mason history`)"
    with pytest.raises(MasonError) as e:
        load_build(tmp_path / "empty")
    assert e.value.message == f"no builds recorded under {tmp_path / 'empty'}"
    with pytest.raises(MasonError) as e:
        load_build(tmp_path).step(4)
    assert e.value.message == "build 20240602T090000000Z-fff333 has no step 4 (steps: none)"


def test_build_ids_sort_by_time() -> None:
    ids = [new_build_id(t) for t in (1.0, 1.001, 59.999, 1e9, 1.7e9)]
    assert ids == sorted(ids)
    assert new_build_id(1714564984.123).startswith("20240501T120304123Z-")
    assert new_build_id(5.0) != new_build_id(5.0)


def test_write_failure_warns_once_and_build_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fwd = Recorder()
    rec = HistoryRecorder(tmp_path, meta=META, forward=fwd)

    def full(fd: int, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hist, "_write_all", full)
    rec(VertexStarted(1, D1, "x"))
    rec(VertexLog(1, "stdout", b"y\n"))
    rec.finish()
    warnings = fwd.of(Warning)
    assert len(warnings) == 1 and "No space left on device" in warnings[0].message
    assert len(fwd.of(VertexLog)) == 1 and load_build(tmp_path).status == "finished"


def test_replay_events_in_step_order(tmp_path: Path) -> None:
    record_build(tmp_path).finish()
    b = load_build(tmp_path)
    got = list(replay_events(b))
    assert got[0] == (b.started, VertexCached(1, D1, "[stage-0 1/3] FROM busybox"))
    assert got[1] == (1000.0, VertexStarted(2, D2, "[stage-0 2/3] RUN make", 1000.0))
    assert got[2] == (1000.5, VertexLog(2, "stdout", b"line one\nline "))
    assert got[5] == (1001.5, VertexDone(2, D2, "[stage-0 2/3] RUN make", 1.5))
    assert got[-3][1] == VertexDone(3, D3, "[stage-0 3/3] RUN false", 0.5, error="exit code: 1")
    assert [e for _, e in got[-2:]] == [Warning("careful"), Status("exporting to image")]
    assert [e for _, e in replay_events(b, 3)] == [
        VertexStarted(3, D3, "[stage-0 3/3] RUN false", 1001.5), VertexLog(3, "stdout", b"token=****\n"),
        VertexDone(3, D3, "[stage-0 3/3] RUN false", 0.5, error="exit code: 1")]


def test_unwritable_root_warns_and_build_goes_on(tmp_path: Path) -> None:
    (tmp_path / "history").write_text("not a directory")
    fwd = Recorder()
    with HistoryRecorder(tmp_path, meta=META, forward=fwd) as rec:
        rec(VertexStarted(1, D1, "x"))
        rec(VertexDone(1, D1, "x", 0.1))
    assert [type(e).__name__ for e in fwd.events] == ["Warning", "VertexStarted", "VertexDone"]
    assert fwd.events[0].message.startswith(f"build history: cannot write {tmp_path}/history/")
    assert list_builds(tmp_path) == []


def test_prune_history_keeps_newest_and_running(tmp_path: Path) -> None:
    for i in range(4):
        HistoryRecorder(tmp_path, f"20240501T12000{i}000Z-00000{i}", META, clock=Clock(1000.0 + i)).finish()
    running = HistoryRecorder(tmp_path, "20240501T120009000Z-000009", META, clock=Clock(999.0))
    assert prune_history(tmp_path, before=1001.5) == ["20240501T120000000Z-000000", "20240501T120001000Z-000001"]
    assert prune_history(tmp_path, keep=1) == ["20240501T120002000Z-000002"]
    assert [b.id for b in list_builds(tmp_path)] == ["20240501T120003000Z-000003", "20240501T120009000Z-000009"]
    running.finish()


def test_attachments(tmp_path: Path) -> None:
    import threading

    gate = threading.Event()
    seen: list[object] = []
    rec = HistoryRecorder(tmp_path, "20240501T120000000Z-cccccc", META, forward=seen.append)
    rec.attach("now.json", {"a": 1})

    def later() -> dict:
        gate.wait(10)
        return {"b": [2]}

    rec.attach_later("later.json", later)
    rec.attach_later("broken.json", lambda: 1 / 0)
    for bad in ("", "../x.json", "record.json", "logs"):
        with pytest.raises(ValueError):
            rec.attach(bad, {})
    assert not (tmp_path / "history" / rec.id / "later.json").exists()  # still being made
    gate.set()
    rec.finish()  # waits for it
    b = load_build(tmp_path, rec.id)
    assert b.attachment("now.json") == {"a": 1} and b.attachment("later.json") == {"b": [2]}
    assert b.attachment("broken.json") is None and b.attachment("missing.json") is None
    (b.dir / "bad.json").write_text("{not json")
    assert b.attachment("bad.json") is None
    rec.attach("after.json", {})  # the record is closed: nothing more is stored
    assert b.attachment("after.json") is None
