"""Build records: every build's metadata, steps and full output, kept under the state directory
for ``mason history`` and ``mason logs``. :class:`HistoryRecorder` is an event sink (see
:mod:`.events`) that writes them as the build goes; :func:`list_builds` and :func:`load_build`
read them back; :func:`replay_events` turns a record back into events for a renderer.

One directory per build, ``<root>/history/<build id>/``::

    record.json   {"version", "id", "status", "pid", "started", "ended", "error", "meta",
                   "steps", "warnings"} — written when the build starts (status "running") and
                   when it ends ("finished" | "failed" | "cancelled"), atomically
    steps.jsonl   append-only journal of step events ({"e": "started"|"cached"|"done"|
                   "warning"|"status", ...}), the truth while the build runs
    logs/N.log    step N's output exactly as received (stdout and stderr interleaved; secrets
                   were redacted by the solver), never clipped
    logs/N.idx    one line per output chunk: "<seconds since the step started> <stream> <bytes>"
    graph.json    the solved graph (vertices, edges; credentials redacted), attached by the
                  driver before the solve (``mason history --graph``)
    lock          flock'd while the build runs

Every write goes straight to the OS (no user-space buffering), and everything is fsync'd when
the build ends, so a killed build keeps all it had written: its record still says "running",
its lock is free, and readers report it as ``interrupted`` with the steps from the journal.
Build ids sort by start time: ``20240501T120304123Z-a1b2c3`` (UTC, milliseconds, random).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mason.backends.solver.events import (
    Event,
    EventSink,
    Status,
    VertexCached,
    VertexDone,
    VertexLog,
    VertexStarted,
    Warning,
)
from mason.ir.errors import MasonError

HISTORY_DIR = "history"
VERSION = 1
FINAL = ("finished", "failed", "cancelled")


def new_build_id(now: float | None = None) -> str:
    ms = round((time.time() if now is None else now) * 1000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ms // 1000))
    return f"{stamp}{ms % 1000:03d}Z-{secrets.token_hex(3)}"


def history_dir(root: str | Path) -> Path:
    return Path(root) / HISTORY_DIR


# -- records ------------------------------------------------------------------------------------

@dataclass
class StepRecord:
    n: int
    name: str = ""
    digest: str = ""
    status: str = "running"  # running | done | cached | error | cancelled
    started: float | None = None
    duration: float | None = None
    error: str | None = None

    @property
    def cached(self) -> bool:
        return self.status == "cached"

    def to_json(self) -> dict:
        return {"n": self.n, "name": self.name, "digest": self.digest, "status": self.status,
                "cached": self.cached, "started": self.started, "duration": self.duration,
                "error": self.error}

    @classmethod
    def from_json(cls, o: Mapping) -> "StepRecord":
        return cls(int(o["n"]), o.get("name", ""), o.get("digest", ""), o.get("status", "running"),
                   o.get("started"), o.get("duration"), o.get("error"))


@dataclass
class BuildRecord:
    id: str
    dir: Path
    status: str  # running | finished | failed | cancelled | interrupted (running, process gone)
    started: float
    ended: float | None = None
    error: str | None = None
    meta: dict = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    @property
    def target(self) -> str | None:
        t = self.meta.get("target")
        return t if isinstance(t, str) else None

    @property
    def tags(self) -> list[str]:
        tags = self.meta.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    @property
    def duration(self) -> float | None:
        return self.ended - self.started if self.ended is not None else None

    @property
    def ran(self) -> int:
        return sum(1 for s in self.steps if s.status != "cached")

    @property
    def cached(self) -> int:
        return sum(1 for s in self.steps if s.status == "cached")

    def step(self, n: int) -> StepRecord:
        for s in self.steps:
            if s.n == n:
                return s
        have = ", ".join(str(s.n) for s in self.steps) or "none"
        raise MasonError(f"build {self.id} has no step {n} (steps: {have})")

    def log(self, n: int) -> bytes:
        """Step ``n``'s whole output (b"" if it printed nothing)."""
        try:
            return (self.dir / "logs" / f"{n}.log").read_bytes()
        except FileNotFoundError:
            return b""

    def attachment(self, name: str) -> object | None:
        """The JSON the build attached as ``name`` (:meth:`HistoryRecorder.attach`); None if
        there is none or it does not parse."""
        try:
            return json.loads((self.dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def log_chunks(self, n: int) -> Iterator[tuple[float, str, bytes]]:
        """Step ``n``'s output as received: (seconds since the step started, stream, bytes).
        Bytes past the index (a build killed between the two writes) come last, as stdout."""
        data = self.log(n)
        pos, last = 0, 0.0
        with contextlib.suppress(FileNotFoundError):
            for line in (self.dir / "logs" / f"{n}.idx").read_text().splitlines():
                try:
                    el, stream, size = line.split(" ")
                    last, size_i = float(el), int(size)
                except ValueError:
                    break  # a torn last line
                if pos + size_i > len(data):
                    break
                yield last, stream, data[pos:pos + size_i]
                pos += size_i
        if pos < len(data):
            yield last, "stdout", data[pos:]


def json_bytes(obj: object) -> bytes:
    """``obj`` as the record writes JSON (what :meth:`HistoryRecorder.attach` also takes)."""
    return json.dumps(obj, indent=1, default=str).encode("utf-8")


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(obj if isinstance(obj, bytes) else json_bytes(obj))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_path(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the recorder -------------------------------------------------------------------------------

class HistoryRecorder:
    """An event sink that records one build under ``<root>/history/<build_id>/`` and passes
    every event on to ``forward`` (the progress renderer). Use it as a context manager, or
    call :meth:`finish`; an exception leaving the ``with`` block marks the build failed
    (KeyboardInterrupt: cancelled). Thread-safe. If the directory cannot be made or the disk
    fails, recording stops with one warning (passed on with the next event) and the build goes
    on."""

    def __init__(self, root: str | Path, build_id: str | None = None, meta: Mapping | None = None, *,
                 forward: EventSink | None = None, clock: Callable[[], float] = time.time):
        self.id = build_id or new_build_id()
        self.dir = history_dir(root) / self.id
        self.forward = forward
        self._clock = clock
        self._lock = threading.Lock()
        self._steps: dict[int, StepRecord] = {}
        self._logs: dict[int, tuple[int, int]] = {}  # n -> (log fd, idx fd)
        self._warnings: list[str] = []
        self._statuses: list[str] = []
        self._meta = dict(meta or {})
        self._started = clock()
        self._broken = False
        self.status = "running"
        self._lockfd = self._journal = -1
        self._warning: Warning | None = None  # to pass on with the next event
        self._pending: list[threading.Thread] = []  # attach_later threads
        try:
            (self.dir / "logs").mkdir(parents=True, exist_ok=False)
            self._lockfd = os.open(self.dir / "lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            self._journal = os.open(self.dir / "steps.jsonl",
                                    os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o644)
            self._write_record(None, None)
        except OSError as e:
            self._fail(e)

    # events
    def __call__(self, event: Event) -> None:
        with self._lock:
            if self.status == "running" and not self._broken:
                try:
                    self._record(event)
                except OSError as e:
                    self._fail(e)
            warn, self._warning = self._warning, None
        if self.forward is not None:
            if warn is not None:
                self.forward(warn)
            self.forward(event)

    def _fail(self, e: OSError) -> None:
        self._broken = True
        self._warning = Warning(f"build history: cannot write {self.dir}: {e.strerror or e}; "
                                "this build's logs are not stored")

    def _record(self, ev: Event) -> None:
        t = self._clock()
        if isinstance(ev, VertexLog):
            s = self._step(ev.n)
            log, idx = self._log_fds(ev.n)
            _write_all(log, ev.data)
            el = max(0.0, t - s.started) if s.started is not None else 0.0
            _write_all(idx, f"{el:.3f} {ev.stream} {len(ev.data)}\n".encode())
        elif isinstance(ev, VertexStarted):
            s = self._step(ev.n, ev.name, ev.digest)
            s.status, s.started = "running", ev.time
            self._append({"e": "started", "n": ev.n, "name": ev.name, "digest": ev.digest, "t": ev.time})
        elif isinstance(ev, VertexCached):
            s = self._step(ev.n, ev.name, ev.digest)
            s.status, s.duration = "cached", 0.0
            self._append({"e": "cached", "n": ev.n, "name": ev.name, "digest": ev.digest, "t": t})
        elif isinstance(ev, VertexDone):
            s = self._step(ev.n, ev.name, ev.digest)
            s.status = "cancelled" if ev.cancelled else "error" if ev.error is not None else "done"
            s.duration, s.error = ev.duration, ev.error
            self._close_log(ev.n)
            self._append({"e": "done", "n": ev.n, "name": ev.name, "digest": ev.digest, "t": t,
                          "duration": ev.duration, "error": ev.error, "cancelled": ev.cancelled})
        elif isinstance(ev, Warning):
            self._warnings.append(ev.message)
            self._append({"e": "warning", "message": ev.message, "t": t})
        elif isinstance(ev, Status):
            self._statuses.append(ev.message)
            self._append({"e": "status", "message": ev.message, "t": t})

    def _step(self, n: int, name: str = "", digest: str = "") -> StepRecord:
        s = self._steps.get(n)
        if s is None:
            s = self._steps[n] = StepRecord(n, name, digest)
        s.name, s.digest = name or s.name, digest or s.digest
        return s

    def _append(self, obj: dict) -> None:
        _write_all(self._journal, (json.dumps(obj, default=str) + "\n").encode())

    def _log_fds(self, n: int) -> tuple[int, int]:
        fds = self._logs.get(n)
        if fds is None:
            flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
            base = self.dir / "logs"
            fds = self._logs[n] = (os.open(base / f"{n}.log", flags, 0o644), os.open(base / f"{n}.idx", flags, 0o644))
        return fds

    def _close_log(self, n: int) -> None:
        for fd in self._logs.pop(n, ()):
            os.close(fd)

    def attach(self, name: str, obj: object) -> None:
        """Store ``obj`` as JSON in the build's directory as ``name`` (a plain file name, e.g.
        ``graph.json``), atomically; ``bytes`` are JSON already (:func:`json_bytes`); a disk
        failure stops recording as any other does."""
        if "/" in name or name in ("", ".", "..", "record.json", "steps.jsonl", "lock", "logs"):
            raise ValueError(f"not an attachment name: {name!r}")
        with self._lock:
            if self.status != "running" or self._broken or self._lockfd < 0:
                return
            try:
                _write_json(self.dir / name, obj)
            except OSError as e:
                self._fail(e)

    def attach_later(self, name: str, make: Callable[[], object]) -> None:
        """:meth:`attach` what ``make()`` returns, computed on a thread of its own (it overlaps
        the build, which mostly waits on containerd); :meth:`finish` waits for it. A failing
        ``make`` stores nothing and warns once."""
        def run() -> None:
            try:
                obj = make()
            except Exception as e:  # noqa: BLE001 - an attachment must never fail the build
                with self._lock:
                    self._warning = Warning(f"build history: {name} not stored: {e}")
                return
            self.attach(name, obj)

        t = threading.Thread(target=run, name=f"mason-history-{name}", daemon=True)
        self._pending.append(t)
        t.start()

    # metadata and the end
    def update(self, **meta: object) -> None:
        """Add to the build's metadata (e.g. the image digest once exported); stored at the end."""
        with self._lock:
            self._meta.update(meta)

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        """End the record (``finished``, ``failed`` or ``cancelled``), fsync everything and
        release the lock. Idempotent."""
        if status not in FINAL:
            raise ValueError(f"status must be one of {FINAL}")
        for t in self._pending:
            t.join()
        with self._lock:
            if self.status != "running":
                return
            self.status = status
            for n in list(self._logs):
                with contextlib.suppress(OSError):
                    self._close_log(n)
            if self._lockfd < 0:
                return  # the directory could not be made: nothing to end
            try:
                for p in (self.dir / "logs").iterdir():
                    _fsync_path(p)
                os.fsync(self._journal)
                self._write_record(self._clock(), error)
                _fsync_path(self.dir / "logs")
                _fsync_path(self.dir)
            except OSError:
                pass  # reported once already, or the build's own error matters more
            finally:
                if self._journal >= 0:
                    os.close(self._journal)
                os.close(self._lockfd)  # releases the flock

    def _write_record(self, ended: float | None, error: str | None) -> None:
        _write_json(self.dir / "record.json", {
            "version": VERSION, "id": self.id, "status": self.status, "pid": os.getpid(),
            "started": self._started, "ended": ended, "error": error, "meta": self._meta,
            "steps": [s.to_json() for s in sorted(self._steps.values(), key=lambda s: s.n)],
            "warnings": self._warnings, "statuses": self._statuses,
        })

    def __enter__(self) -> "HistoryRecorder":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.finish("finished")
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("cancelled", "interrupted")
        else:
            msg = exc.message if isinstance(exc, MasonError) else (str(exc) or kind.__name__)
            self.finish("failed", msg)


# -- reading ------------------------------------------------------------------------------------

def _lock_held(d: Path) -> bool:
    try:
        fd = os.open(d / "lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _opt(v: object, kind: type | tuple[type, ...]) -> bool:
    return v is None or isinstance(v, kind)


def _strings(v: object) -> bool:
    return v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def _valid_step(o: object) -> bool:
    return (isinstance(o, dict) and isinstance(o.get("n"), int) and not isinstance(o["n"], bool)
            and _opt(o.get("name"), str) and _opt(o.get("digest"), str)
            and _opt(o.get("status"), str) and (o.get("started") is None or _num(o["started"]))
            and (o.get("duration") is None or _num(o["duration"]))
            and _opt(o.get("error"), str))


def _valid_record(o: object) -> bool:
    """Whether a parsed ``record.json`` has the shape this module writes (a damaged or foreign
    file is skipped, never trusted field by field)."""
    if not isinstance(o, dict):
        return False
    steps = o.get("steps")
    return (_opt(o.get("id"), str) and _opt(o.get("status"), str)
            and (o.get("started") is None or _num(o["started"]))
            and (o.get("ended") is None or _num(o["ended"]))
            and _opt(o.get("error"), str) and _opt(o.get("meta"), dict)
            and (steps is None or (isinstance(steps, list) and all(map(_valid_step, steps))))
            and _strings(o.get("warnings")) and _strings(o.get("statuses")))


def _read(d: Path) -> BuildRecord | None:
    """The record of the build in ``d``; None if there is none or it is not readable (missing,
    truncated, not JSON, not an object of the expected shape)."""
    try:
        o = json.loads((d / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _valid_record(o):
        return None
    rec = BuildRecord(o.get("id") or d.name, d, o.get("status") or "running",
                      float(o.get("started") or 0.0), o.get("ended"), o.get("error"),
                      dict(o.get("meta") or {}),
                      [StepRecord(s["n"], s.get("name") or "", s.get("digest") or "",
                                  s.get("status") or "running", s.get("started"), s.get("duration"),
                                  s.get("error")) for s in o.get("steps") or ()],
                      list(o.get("warnings") or ()), list(o.get("statuses") or ()))
    if rec.status not in FINAL:
        _from_journal(rec)
        if not _lock_held(d):
            rec.status = "interrupted"
    return rec


def _from_journal(rec: BuildRecord) -> None:
    """Steps, warnings and statuses of a build that has not ended, from its journal."""
    steps: dict[int, StepRecord] = {}
    rec.warnings, rec.statuses = [], []
    try:
        lines = (rec.dir / "steps.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if not isinstance(o, dict):
            continue  # not a line this module wrote
        e = o.get("e")
        if e in ("warning", "status"):
            msg = o.get("message", "")
            (rec.warnings if e == "warning" else rec.statuses).append(
                msg if isinstance(msg, str) else str(msg))
            continue
        n = o.get("n")
        if not isinstance(n, int) or isinstance(n, bool):
            continue
        name, dg = o.get("name"), o.get("digest")
        s = steps.setdefault(n, StepRecord(n))
        s.name = name if name and isinstance(name, str) else s.name
        s.digest = dg if dg and isinstance(dg, str) else s.digest
        if e == "started":
            t = o.get("t")
            s.status, s.started = "running", t if _num(t) else None
        elif e == "cached":
            s.status, s.duration = "cached", 0.0
        elif e == "done":
            d, err = o.get("duration"), o.get("error")
            s.duration = d if _num(d) else None
            s.error = err if err is None or isinstance(err, str) else str(err)
            s.status = "cancelled" if o.get("cancelled") else "error" if s.error is not None else "done"
    rec.steps = [steps[n] for n in sorted(steps)]


def list_builds(root: str | Path) -> list[BuildRecord]:
    """Every recorded build, oldest first."""
    base = history_dir(root)
    try:
        dirs = sorted(p for p in base.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [r for r in map(_read, dirs) if r is not None]


def load_build(root: str | Path, build: str | None = None) -> BuildRecord:
    """The build named by ``build`` — a whole id, a prefix of one, or a prefix of its random
    part — or the latest build when ``build`` is None."""
    base = history_dir(root)
    try:
        ids = sorted(p.name for p in base.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        ids = []
    if not ids:
        raise MasonError(f"no builds recorded under {root}")
    if build is None:
        # the latest build that has a readable record (not a stray directory sorting last)
        for bid in reversed(ids):
            rec = _read(base / bid)
            if rec is not None:
                return rec
        raise MasonError(f"no readable build records under {root}")
    if build in ids:
        matches = [build]
    else:
        matches = [i for i in ids if i.startswith(build) or i.partition("-")[2].startswith(build)]
    if not matches:
        raise MasonError(f"no build {build!r} under {root} (see `mason history`)")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
        raise MasonError(f"build {build!r} is ambiguous: {len(matches)} builds match ({shown})")
    rec = _read(base / matches[0])
    if rec is None:
        raise MasonError(f"build {matches[0]} has no readable record under {root}")
    return rec


def prune_history(root: str | Path, *, keep: int | None = None, before: float | None = None) -> list[str]:
    """Remove the records of builds that are over (never a running one): all but the newest
    ``keep``, and those started before ``before`` (unix seconds). Returns the ids removed."""
    import shutil

    over = [r for r in list_builds(root) if r.status != "running"]
    doomed = {r.id for r in over if before is not None and r.started < before}
    if keep is not None:
        doomed |= {r.id for r in over[:max(0, len(over) - keep)]}
    for bid in sorted(doomed):
        shutil.rmtree(history_dir(root) / bid, ignore_errors=True)
    return sorted(doomed)


def replay_events(rec: BuildRecord, step: int | None = None) -> Iterator[tuple[float, Event]]:
    """The record as (time, event) pairs, one step after another in step order, then the
    warnings and statuses: feed them to a renderer whose clock returns that time. A step that
    was still running when an ``interrupted`` build died ends with the error "interrupted"."""
    steps = [rec.step(step)] if step is not None else sorted(rec.steps, key=lambda s: s.n)
    for s in steps:
        if s.status == "cached":
            yield (s.started or rec.started), VertexCached(s.n, s.digest, s.name)
            continue
        t0 = s.started if s.started is not None else rec.started
        yield t0, VertexStarted(s.n, s.digest, s.name, t0)
        last = t0
        for el, stream, data in rec.log_chunks(s.n):
            last = t0 + el
            yield last, VertexLog(s.n, stream, data)
        dur = s.duration if s.duration is not None else last - t0
        if s.status == "done":
            yield t0 + dur, VertexDone(s.n, s.digest, s.name, dur)
        elif s.status == "error":
            yield t0 + dur, VertexDone(s.n, s.digest, s.name, dur, error=s.error or "failed")
        elif s.status == "cancelled":
            yield t0 + dur, VertexDone(s.n, s.digest, s.name, dur, cancelled=True)
        elif rec.status == "interrupted":
            yield last, VertexDone(s.n, s.digest, s.name, dur, error="interrupted")
    if step is None:
        end = rec.ended if rec.ended is not None else rec.started
        for w in rec.warnings:
            yield end, Warning(w)
        for m in rec.statuses:
            yield end, Status(m)


__all__ = ["HistoryRecorder", "BuildRecord", "StepRecord", "list_builds", "load_build",
           "replay_events", "prune_history", "new_build_id", "history_dir"]
