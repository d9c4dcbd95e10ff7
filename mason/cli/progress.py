"""Progress renderers: sinks over the solver's events (:mod:`mason.backends.solver.events`) that
draw a build for a person or a program. Rendering only, no build logic. Every renderer is
thread-safe (the solver calls it from its worker threads) and has ``close()``, which flushes
what is pending (partial log lines, the tty view's final summary).

``make_renderer(mode, stream)`` picks one: ``plain``, ``tty``, ``json``, ``quiet`` (nothing), or
``auto`` (tty when ``stream`` is a terminal, else plain; ``tty`` on something that is not a
terminal falls back to plain too).

**plain** — BuildKit's ``--progress=plain`` format::

    #3 [stage-0 2/3] RUN make
    #3 0.512 cc -c main.c
    #3 DONE 1.2s

    #2 [stage-0 1/3] FROM docker.io/library/busybox
    #2 CACHED

A header ``#N NAME`` opens a step's block; output lines carry ``#N``, the seconds since the step
started and the text (split on newlines per stream; a partial line waits for its newline or the
step's end); the block ends with ``#N DONE 1.2s``, ``#N CACHED``, ``#N ERROR: message`` (first
line of the error; the command prints the whole error) or ``#N CANCELED``. When parallel steps
interleave, leaving an unfinished step prints ``#N ...`` and coming back prints its header
again, as BuildKit does. Warnings print as ``WARNING: message``, driver status as ``=> message``.

**json** — one JSON object per line, each with ``type`` and ``time`` (unix seconds)::

    {"type": "vertex.started", "n": 1, "digest": "sha256:…", "name": "[stage-0 1/2] RUN make", "time": 1714557784.2}
    {"type": "vertex.cached",  "n": 2, "digest": "sha256:…", "name": "…", "time": …}
    {"type": "vertex.log",     "n": 1, "stream": "stdout", "data": "text\\n", "time": …}
    {"type": "vertex.done",    "n": 1, "digest": "sha256:…", "name": "…", "duration": 1.25,
                               "error": null, "cancelled": false, "time": …}
    {"type": "warning", "message": "…", "time": …}
    {"type": "status",  "message": "…", "time": …}

Log chunks are passed on as they come (not split into lines). ``data`` is the chunk decoded as
UTF-8 with ``errors="replace"``; when the bytes are not valid UTF-8, ``data_base64`` holds them
exactly. :func:`event_from_json` turns a line back into the event value.

**tty** — a live view (rich) of the running steps with timers and the last lines of their
output; finished steps collapse to one line with their time, cached ones are marked; ``close``
replaces the view with a summary of every step (and the output tail of failed ones).
"""

from __future__ import annotations

import base64
import collections
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

from mason.backends.solver.events import Event, Status, VertexCached, VertexDone, VertexLog, VertexStarted, Warning
from mason.ir.errors import MasonError

MODES = ("auto", "tty", "plain", "json", "quiet")
Clock = Callable[[], float]


class Renderer(Protocol):
    def __call__(self, event: Event) -> None: ...
    def close(self) -> None: ...


def make_renderer(mode: str = "auto", stream: IO[str] | None = None, *, clock: Clock = time.time) -> Renderer:
    """A renderer for ``--progress=MODE`` writing to ``stream`` (default: stderr)."""
    stream = sys.stderr if stream is None else stream
    if mode not in MODES:
        raise MasonError(f"unknown progress mode {mode!r} (expected one of: {', '.join(MODES)})")
    if mode == "json":
        return JsonRenderer(stream, clock=clock)
    if mode == "quiet":
        return QuietRenderer()
    if mode in ("auto", "tty") and is_terminal(stream):
        return TtyRenderer(stream, clock=clock)
    return PlainRenderer(stream, clock=clock)


class QuietRenderer:
    """``--progress=quiet``: shows nothing."""

    def __call__(self, event: Event) -> None:
        pass

    def close(self) -> None:
        pass


def is_terminal(stream: IO[str]) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return bool(tty) and os.environ.get("TERM") != "dumb"


# -- lines --------------------------------------------------------------------------------------

class LineSplitter:
    """Splits one step's output into lines, per stream. A partial line waits for its newline
    (or :meth:`flush`) and keeps the time its first byte arrived."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[float, list[bytes]]] = {}

    def feed(self, stream: str, data: bytes, t: float) -> list[tuple[float, bytes]]:
        start, parts = self._parts.pop(stream, (t, []))
        if b"\n" not in data:
            if data:
                parts.append(data)
            if parts:
                self._parts[stream] = (start, parts)
            return []
        lines = (b"".join(parts) + data).split(b"\n")
        rest = lines.pop()
        out = [(start if i == 0 else t, line) for i, line in enumerate(lines)]
        if rest:
            self._parts[stream] = (t, [rest])
        return out

    def flush(self) -> list[tuple[float, bytes]]:
        out = [(t, b"".join(parts)) for t, parts in self._parts.values()]
        self._parts.clear()
        return sorted(out, key=lambda x: x[0])


def line_text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", "replace")


def first_line(message: str) -> str:
    return message.split("\n", 1)[0]


class _Vertex:
    __slots__ = ("n", "name", "digest", "started", "done", "lines", "state", "duration", "error", "tail")

    def __init__(self, n: int, name: str = "", digest: str = ""):
        self.n, self.name, self.digest = n, name, digest
        self.started: float | None = None
        self.done = False
        self.lines = LineSplitter()
        self.state = "running"  # running | done | cached | error | cancelled
        self.duration: float | None = None
        self.error: str | None = None
        self.tail: collections.deque[tuple[float, str]] = collections.deque(maxlen=10)

    def update(self, name: str, digest: str) -> None:
        self.name = name or self.name
        self.digest = digest or self.digest

    def elapsed(self, t: float) -> float:
        return max(0.0, t - self.started) if self.started is not None else 0.0


# -- plain --------------------------------------------------------------------------------------

class PlainRenderer:
    """BuildKit's plain progress format (see the module docstring)."""

    def __init__(self, stream: IO[str], *, clock: Clock = time.time):
        self._w = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._v: dict[int, _Vertex] = {}
        self._current: int | None = None
        self._block: str | None = None  # what was printed last: "vertex" | "line"
        self._closed = False

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                return
            t = self._clock()
            if isinstance(event, VertexLog):
                v = self._vertex(event.n)
                for lt, line in v.lines.feed(event.stream, event.data, t):
                    self._line(v, lt, line)
            elif isinstance(event, VertexStarted):
                v = self._vertex(event.n, event.name, event.digest)
                v.started, v.done = event.time, False
                self._switch(v)
            elif isinstance(event, VertexCached):
                v = self._vertex(event.n, event.name, event.digest)
                self._end(v, f"#{v.n} CACHED")
            elif isinstance(event, VertexDone):
                v = self._vertex(event.n, event.name, event.digest)
                for lt, line in v.lines.flush():
                    self._line(v, lt, line)
                if event.cancelled:
                    self._end(v, f"#{v.n} CANCELED")
                elif event.error is not None:
                    self._end(v, f"#{v.n} ERROR: {first_line(event.error)}")
                else:
                    self._end(v, f"#{v.n} DONE {event.duration:.1f}s")
            elif isinstance(event, Warning):
                self._text(f"WARNING: {event.message}")
            elif isinstance(event, Status):
                self._text(f"=> {event.message}")
            self._w.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for v in sorted(self._v.values(), key=lambda v: v.n):
                for lt, line in v.lines.flush():
                    self._line(v, lt, line)
            self._closed = True
            self._w.flush()

    def _vertex(self, n: int, name: str = "", digest: str = "") -> _Vertex:
        v = self._v.get(n)
        if v is None:
            v = self._v[n] = _Vertex(n, name, digest)
        else:
            v.update(name, digest)
        return v

    def _leave(self) -> None:
        cur = self._v.get(self._current) if self._current is not None else None
        if cur is not None and not cur.done:
            self._w.write(f"#{cur.n} ...\n")
        self._current = None

    def _switch(self, v: _Vertex) -> None:
        if self._current == v.n:
            return
        self._leave()
        if self._block is not None:
            self._w.write("\n")
        self._w.write(f"#{v.n} {v.name}".rstrip() + "\n")
        self._current, self._block = v.n, "vertex"

    def _line(self, v: _Vertex, t: float, line: bytes) -> None:
        self._switch(v)
        stamp = f"{v.elapsed(t):.3f} " if v.started is not None else ""
        self._w.write(f"#{v.n} {stamp}{line_text(line)}\n")

    def _end(self, v: _Vertex, text: str) -> None:
        self._switch(v)
        self._w.write(text + "\n")
        v.done = True
        self._current = None

    def _text(self, text: str) -> None:
        self._leave()
        if self._block == "vertex":
            self._w.write("\n")
        self._w.write(text + "\n")
        self._block = "line"


# -- json ---------------------------------------------------------------------------------------

def event_to_json(event: Event, t: float) -> dict:
    """The JSON object of one event received at ``t`` (see the module docstring)."""
    if isinstance(event, VertexStarted):
        return {"type": "vertex.started", "n": event.n, "digest": event.digest, "name": event.name,
                "time": event.time}
    if isinstance(event, VertexCached):
        return {"type": "vertex.cached", "n": event.n, "digest": event.digest, "name": event.name, "time": t}
    if isinstance(event, VertexLog):
        obj = {"type": "vertex.log", "n": event.n, "stream": event.stream,
               "data": event.data.decode("utf-8", "replace"), "time": t}
        try:
            event.data.decode("utf-8")
        except UnicodeDecodeError:
            obj["data_base64"] = base64.b64encode(event.data).decode("ascii")
        return obj
    if isinstance(event, VertexDone):
        return {"type": "vertex.done", "n": event.n, "digest": event.digest, "name": event.name,
                "duration": event.duration, "error": event.error, "cancelled": event.cancelled, "time": t}
    if isinstance(event, Warning):
        obj = {"type": "warning", "message": event.message, "time": t}
        if event.rule is not None:
            obj.update(rule=event.rule, location=event.location)
        return obj
    if isinstance(event, Status):
        return {"type": "status", "message": event.message, "time": t}
    raise TypeError(f"not a progress event: {event!r}")


def event_from_json(line: str | dict) -> Event:
    """The event value of one JSON line (the receive ``time`` of non-start events is dropped)."""
    o = json.loads(line) if isinstance(line, str) else line
    kind = o.get("type")
    if kind == "vertex.started":
        return VertexStarted(o["n"], o["digest"], o["name"], o["time"])
    if kind == "vertex.cached":
        return VertexCached(o["n"], o["digest"], o["name"])
    if kind == "vertex.log":
        b64 = o.get("data_base64")
        data = base64.b64decode(b64) if b64 is not None else o["data"].encode("utf-8")
        return VertexLog(o["n"], o["stream"], data)
    if kind == "vertex.done":
        return VertexDone(o["n"], o["digest"], o["name"], o["duration"], o.get("error"),
                          bool(o.get("cancelled", False)))
    if kind == "warning":
        return Warning(o["message"], o.get("rule"), o.get("location"))
    if kind == "status":
        return Status(o["message"])
    raise ValueError(f"unknown progress event type {kind!r}")


class JsonRenderer:
    """One JSON object per line (see the module docstring)."""

    def __init__(self, stream: IO[str], *, clock: Clock = time.time):
        self._w, self._clock = stream, clock
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event_to_json(event, self._clock()), ensure_ascii=False)
        with self._lock:
            self._w.write(line + "\n")
            self._w.flush()

    def close(self) -> None:
        with self._lock:
            self._w.flush()


# -- tty ----------------------------------------------------------------------------------------

class TtyRenderer:
    """A live view with rich; on ``close``, a summary of every step. Give it a ``console``
    (tests: ``Console(file=StringIO(), force_terminal=True)``) or a ``stream``."""

    def __init__(self, stream: IO[str] | None = None, *, console=None, clock: Clock = time.time,
                 tail_lines: int = 6, refresh_per_second: float = 8):
        from rich.console import Console
        from rich.live import Live

        self.console = console if console is not None else Console(file=stream or sys.stderr)
        self._clock = clock
        self._tail = tail_lines
        self._lock = threading.Lock()
        self._v: dict[int, _Vertex] = {}
        self._order: list[int | str] = []  # vertex numbers and status messages, in order seen
        self._t0 = clock()
        self._closed = False
        real = self.console.file in (sys.stdout, sys.stderr)
        self._live = Live(console=self.console, get_renderable=self._render, transient=True,
                          refresh_per_second=refresh_per_second, redirect_stdout=real, redirect_stderr=real)
        self._live.start()

    def __call__(self, event: Event) -> None:
        note = None
        with self._lock:
            if self._closed:
                return
            t = self._clock()
            if isinstance(event, VertexLog):
                v = self._vertex(event.n)
                for lt, line in v.lines.feed(event.stream, event.data, t):
                    v.tail.append((v.elapsed(lt), _last_cr(line_text(line))))
            elif isinstance(event, VertexStarted):
                v = self._vertex(event.n, event.name, event.digest)
                v.started, v.state = event.time, "running"
            elif isinstance(event, VertexCached):
                v = self._vertex(event.n, event.name, event.digest)
                v.state, v.duration = "cached", 0.0
            elif isinstance(event, VertexDone):
                v = self._vertex(event.n, event.name, event.digest)
                for lt, line in v.lines.flush():
                    v.tail.append((v.elapsed(lt), _last_cr(line_text(line))))
                v.duration = event.duration
                v.state = "cancelled" if event.cancelled else "error" if event.error is not None else "done"
                v.error = event.error
            elif isinstance(event, Status):
                self._order.append(event.message)
            elif isinstance(event, Warning):
                note = event.message
        if note is not None:  # printed outside our lock: rich's refresh thread takes both
            from rich.text import Text

            self._live.console.print(Text(f"WARNING: {note}", style="yellow"))

    def refresh(self) -> None:
        """Redraw now (the view also redraws by itself several times a second)."""
        self._live.refresh()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for v in self._v.values():
                for lt, line in v.lines.flush():
                    v.tail.append((v.elapsed(lt), _last_cr(line_text(line))))
        self._live.stop()
        self.console.print(self._summary())

    def _vertex(self, n: int, name: str = "", digest: str = "") -> _Vertex:
        v = self._v.get(n)
        if v is None:
            v = self._v[n] = _Vertex(n, name, digest)
            self._order.append(n)
        else:
            v.update(name, digest)
        return v

    def _header(self, now: float, final: bool):
        from rich.text import Text

        done = sum(1 for v in self._v.values() if v.state != "running")
        word = ""
        if final:
            failed = any(v.state in ("error", "cancelled") for v in self._v.values())
            word = " FAILED" if failed else " FINISHED"
        return Text(f"[+] Building {now - self._t0:.1f}s ({done}/{len(self._v)}){word}",
                    style="bold red" if word == " FAILED" else "bold")

    def _row(self, table, item: int | str, now: float) -> bool:
        """Add ``item``'s line to ``table``; True if it is still running."""
        from rich.text import Text

        if isinstance(item, str):
            table.add_row(Text(f" => {item}", style="blue"), Text(""))
            return False
        v = self._v[item]
        label = {"cached": "CACHED ", "error": "ERROR ", "cancelled": "CANCELED "}.get(v.state, "")
        style = {"running": "cyan", "cached": "blue dim", "error": "red", "cancelled": "yellow"}.get(v.state, "blue")
        secs = v.elapsed(now) if v.state == "running" else (v.duration or 0.0)
        table.add_row(Text(f" => {label}{v.name}", style=style), Text(f"{secs:.1f}s", style=style))
        return v.state == "running"

    def _table(self):
        from rich.table import Table

        table = Table.grid(expand=True)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        return table

    def _render(self):
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            now = self._clock()
            running = [n for n in self._order if isinstance(n, int) and self._v[n].state == "running"]
            # finished lines that still fit under the terminal's height, newest last
            used = sum(1 + min(self._tail, len(self._v[n].tail)) for n in running)
            room = max(0, self.console.size.height - 2 - used)
            finished = [i for i in self._order if not (isinstance(i, int) and i in running)]
            table = self._table()
            for item in finished[len(finished) - room:] if room else []:
                self._row(table, item, now)
            for n in running:
                self._row(table, n, now)
                v = self._v[n]
                for _, text in list(v.tail)[-self._tail:]:
                    table.add_row(Text(f" => => # {text}", style="dim"), Text(""))
            return Group(self._header(now, final=False), table)

    def _summary(self):
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            now = self._clock()
            table = self._table()
            for item in self._order:
                self._row(table, item, now)
            parts = [self._header(now, final=True), table]
            for n in self._order:
                v = self._v.get(n) if isinstance(n, int) else None
                if v is None or v.state != "error":
                    continue
                box = ["------", f" > {v.name}:"]
                box += [f"{t:.3f} {text}" for t, text in v.tail]
                box.append("------")
                parts.append(Text("\n".join(box), style="red"))
            return Group(*parts)


def _last_cr(text: str) -> str:
    """What a terminal would show of a line rewritten with carriage returns."""
    return text.rsplit("\r", 1)[-1]


__all__ = ["make_renderer", "MODES", "PlainRenderer", "JsonRenderer", "TtyRenderer", "QuietRenderer", "Renderer",
           "LineSplitter", "event_to_json", "event_from_json", "is_terminal"]
