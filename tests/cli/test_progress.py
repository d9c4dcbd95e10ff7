"""The plain and json progress renderers, driven by synthetic event sequences with a fake
clock: exact plain output (BuildKit's format), json lines that parse and round-trip."""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest

from mason.backends.solver.events import Status, VertexCached, VertexDone, VertexLog, VertexStarted, Warning
from mason.cli.progress import (
    JsonRenderer,
    LineSplitter,
    PlainRenderer,
    TtyRenderer,
    event_from_json,
    event_to_json,
    make_renderer,
)
from mason.ir.errors import MasonError

D1, D2, D3, D4 = (f"sha256:{c * 64}" for c in "1234")
FROM = "[stage-0 1/3] FROM docker.io/library/busybox:latest"
RUN_A = '[a 2/2] RUN echo a'
RUN_B = '[b 2/2] RUN echo b'
RUN_C = '[stage-0 3/3] RUN make'


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def drive(renderer, clock: Clock, script) -> None:
    """``script``: events, or floats that set the clock."""
    for item in script:
        if isinstance(item, float):
            clock.t = item
        else:
            renderer(item)
    renderer.close()


def plain(script) -> str:
    out, clock = io.StringIO(), Clock()
    drive(PlainRenderer(out, clock=clock), clock, script)
    return out.getvalue()


def test_plain_parallel_steps_cached_error_cancel() -> None:
    got = plain([
        VertexCached(1, D1, FROM),
        VertexStarted(2, D2, RUN_A, 100.0),
        VertexStarted(3, D3, RUN_B, 100.0),
        100.5, VertexLog(2, "stdout", b"a1\na2"),       # "a2" waits for its newline
        100.7, VertexLog(3, "stderr", b"b1\n"),
        101.0, VertexLog(2, "stdout", b"-end\n"),       # the line keeps its first byte's time
        Warning("the host network is used"),
        101.25, VertexDone(2, D2, RUN_A, 1.25),
        101.5, VertexLog(3, "stdout", b"no newline"),   # flushed at the step's end
        VertexDone(3, D3, RUN_B, 1.5, error='process "/bin/sh -c echo b" did not complete '
                   'successfully: exit code: 1\n  last 1 lines of output:\n    b1'),
        VertexStarted(4, D4, RUN_C, 101.5),
        101.6, VertexDone(4, D4, RUN_C, 0.1, cancelled=True),
        Status("exporting to image"),
    ])
    assert got == """\
#1 [stage-0 1/3] FROM docker.io/library/busybox:latest
#1 CACHED

#2 [a 2/2] RUN echo a
#2 ...

#3 [b 2/2] RUN echo b
#3 ...

#2 [a 2/2] RUN echo a
#2 0.500 a1
#2 ...

#3 [b 2/2] RUN echo b
#3 0.700 b1
#3 ...

#2 [a 2/2] RUN echo a
#2 0.500 a2-end
#2 ...

WARNING: the host network is used

#2 [a 2/2] RUN echo a
#2 DONE 1.2s

#3 [b 2/2] RUN echo b
#3 1.500 no newline
#3 ERROR: process "/bin/sh -c echo b" did not complete successfully: exit code: 1

#4 [stage-0 3/3] RUN make
#4 CANCELED

=> exporting to image
"""


def test_plain_sequential_step_is_one_block() -> None:
    got = plain([
        VertexStarted(1, D1, RUN_C, 100.0),
        100.012, VertexLog(1, "stdout", b"cc -c main.c\r\n"),
        100.5, VertexLog(1, "stderr", b"warning: x\n"),
        VertexLog(1, "stdout", b""),
        101.0, VertexDone(1, D1, RUN_C, 1.04),
        VertexCached(2, D2, RUN_A),
        Status("exporting layers"),
        Status("naming to docker.io/library/app:latest"),
        VertexCached(3, D3, RUN_B),
    ])
    assert got == """\
#1 [stage-0 3/3] RUN make
#1 0.012 cc -c main.c
#1 0.500 warning: x
#1 DONE 1.0s

#2 [a 2/2] RUN echo a
#2 CACHED

=> exporting layers
=> naming to docker.io/library/app:latest

#3 [b 2/2] RUN echo b
#3 CACHED
"""


def test_plain_partial_lines_per_stream_bytes_and_redaction() -> None:
    got = plain([
        VertexStarted(1, D1, RUN_C, 100.0),
        100.1, VertexLog(1, "stdout", b"progress 1"),
        100.2, VertexLog(1, "stderr", b"err line\n"),     # another stream: not glued to stdout's
        100.3, VertexLog(1, "stdout", b"0%\n\xff\xfebad utf-8\n"),
        VertexLog(1, "stdout", b"token=****\n"),          # the solver redacted the secret
        VertexLog(1, "stdout", b"\n"),                    # an empty line stays a line
        100.4, VertexLog(1, "stderr", b"tail without newline"),
    ])  # close() flushes the partial line although no VertexDone came
    assert got == """\
#1 [stage-0 3/3] RUN make
#1 0.200 err line
#1 0.100 progress 10%
#1 0.300 \ufffd\ufffdbad utf-8
#1 0.300 token=****
#1 0.300 \n#1 0.400 tail without newline
"""


def test_plain_log_for_unknown_vertex_and_done_without_start() -> None:
    got = plain([VertexLog(7, "stdout", b"x\n"), VertexDone(8, D1, "[internal] load", 0.0, error="boom")])
    assert got == "#7\n#7 x\n#7 ...\n\n#8 [internal] load\n#8 ERROR: boom\n"


def test_line_splitter_keeps_first_byte_time() -> None:
    s = LineSplitter()
    assert s.feed("stdout", b"ab", 1.0) == []
    assert s.feed("stdout", b"c", 2.0) == []
    assert s.feed("stdout", b"d\nef\ng", 3.0) == [(1.0, b"abcd"), (3.0, b"ef")]
    assert s.flush() == [(3.0, b"g")]
    assert s.flush() == []


def test_plain_is_thread_safe() -> None:
    out, clock = io.StringIO(), Clock()
    r = PlainRenderer(out, clock=clock)
    for n in range(1, 9):
        r(VertexStarted(n, D1, f"step {n}", 100.0))

    def work(n: int) -> None:
        for i in range(200):
            r(VertexLog(n, "stdout", f"line {n}-{i}\n".encode()))
        r(VertexDone(n, D1, f"step {n}", 1.0))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    lines = out.getvalue().splitlines()
    for n in range(1, 9):
        mine = [x for x in lines if x.startswith(f"#{n} 0.000 line")]
        assert mine == [f"#{n} 0.000 line {n}-{i}" for i in range(200)]
        assert lines.count(f"#{n} DONE 1.0s") == 1


# -- json ---------------------------------------------------------------------------------------

EVENTS = [
    VertexStarted(1, D1, RUN_C, 100.0),
    VertexCached(2, D2, FROM),
    VertexLog(1, "stdout", "héllo\n".encode()),
    VertexLog(1, "stderr", b"\xff\xfe raw\n"),
    VertexLog(1, "stdout", b"secret=****\n"),
    VertexDone(1, D1, RUN_C, 1.5, error="exit code: 2"),
    VertexDone(3, D3, RUN_A, 0.5, cancelled=True),
    VertexDone(4, D4, RUN_B, 0.25),
    Warning("careful"),
    Status("exporting to image"),
]


def test_json_lines_parse_and_round_trip() -> None:
    out, clock = io.StringIO(), Clock(123.5)
    drive(JsonRenderer(out, clock=clock), clock, EVENTS)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(EVENTS)
    objs = [json.loads(line) for line in lines]
    assert [o["type"] for o in objs] == ["vertex.started", "vertex.cached", "vertex.log", "vertex.log",
                                         "vertex.log", "vertex.done", "vertex.done", "vertex.done",
                                         "warning", "status"]
    assert objs[0] == {"type": "vertex.started", "n": 1, "digest": D1, "name": RUN_C, "time": 100.0}
    assert objs[2] == {"type": "vertex.log", "n": 1, "stream": "stdout", "data": "héllo\n", "time": 123.5}
    assert objs[3]["data"] == "\ufffd\ufffd raw\n"
    assert base64.b64decode(objs[3]["data_base64"]) == b"\xff\xfe raw\n"
    assert "data_base64" not in objs[2]
    assert objs[5] == {"type": "vertex.done", "n": 1, "digest": D1, "name": RUN_C, "duration": 1.5,
                       "error": "exit code: 2", "cancelled": False, "time": 123.5}
    assert objs[8] == {"type": "warning", "message": "careful", "time": 123.5}
    assert [event_from_json(line) for line in lines] == EVENTS


def test_json_dict_round_trip() -> None:
    for ev in EVENTS:
        assert event_from_json(json.loads(json.dumps(event_to_json(ev, 1.0)))) == ev
    with pytest.raises(ValueError, match="unknown progress event type 'nope'"):
        event_from_json('{"type": "nope"}')


# -- choosing -----------------------------------------------------------------------------------

class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_renderer_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    s = io.StringIO()
    assert isinstance(make_renderer("plain", s), PlainRenderer)
    assert isinstance(make_renderer("auto", s), PlainRenderer)
    assert isinstance(make_renderer("tty", s), PlainRenderer)  # not a terminal: plain
    assert isinstance(make_renderer("json", s), JsonRenderer)
    q = make_renderer("quiet", s)
    q(VertexStarted(1, D1, "x"))
    q.close()
    assert s.getvalue() == ""
    r = make_renderer("auto", FakeTty())
    assert isinstance(r, TtyRenderer)
    r.close()
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_renderer("auto", FakeTty()), PlainRenderer)
    with pytest.raises(MasonError) as e:
        make_renderer("fancy", s)
    assert e.value.message == "unknown progress mode 'fancy' (expected one of: auto, tty, plain, json, quiet)"
