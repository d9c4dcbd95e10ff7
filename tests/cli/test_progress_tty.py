"""The tty renderer on a rich Console that pretends to be a terminal: the live view shows the
running steps, their timers and output tails; close() leaves a summary of every step."""

from __future__ import annotations

import io
import re

from rich.console import Console

from mason.backends.solver.events import Status, VertexCached, VertexDone, VertexLog, VertexStarted, Warning
from mason.cli.progress import TtyRenderer

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
D = "sha256:" + "a" * 64


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def make(height: int = 40) -> tuple[TtyRenderer, io.StringIO, Clock]:
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, force_terminal=True, width=100, height=height, color_system="standard")
    return TtyRenderer(console=console, clock=clock, refresh_per_second=50), buf, clock


def text(buf: io.StringIO) -> str:
    return ANSI.sub("", buf.getvalue())


def test_live_view_shows_running_steps_timers_and_tails() -> None:
    r, buf, clock = make()
    r(VertexCached(1, D, "[stage-0 1/3] FROM docker.io/library/busybox"))
    r(VertexStarted(2, D, "[a 2/2] RUN sleep 2", 100.0))
    r(VertexStarted(3, D, "[b 2/2] RUN make [bold]all[/bold]", 100.0))  # no rich markup
    r(VertexLog(3, "stdout", b"compiling main.c\ncompiling util.c\n"))
    r(VertexLog(3, "stdout", b"10%\r50%\r100%\n"))
    clock.t = 102.5
    r.refresh()
    live = text(buf)
    assert "[+] Building 2.5s (1/3)" in live
    assert "=> CACHED [stage-0 1/3] FROM docker.io/library/busybox" in live
    assert re.search(r"=> \[a 2/2\] RUN sleep 2 +2\.5s", live)
    assert "=> [b 2/2] RUN make [bold]all[/bold]" in live
    assert "=> => # compiling util.c" in live
    assert "=> => # 100%" in live and "50%" not in live
    r(VertexDone(2, D, "[a 2/2] RUN sleep 2", 2.04))
    r(VertexDone(3, D, "[b 2/2] RUN make [bold]all[/bold]", 2.5))
    r(Status("exporting to image"))
    clock.t = 103.0
    r.close()
    out = text(buf)
    summary = out[out.rindex("[+] Building"):]
    assert summary.splitlines()[0] == "[+] Building 3.0s (3/3) FINISHED"
    assert re.search(r"=> CACHED \[stage-0 1/3\] FROM docker.io/library/busybox +0\.0s", summary)
    assert re.search(r"=> \[a 2/2\] RUN sleep 2 +2\.0s", summary)
    assert re.search(r"=> \[b 2/2\] RUN make \[bold\]all\[/bold\] +2\.5s", summary)
    assert "=> exporting to image" in summary
    assert "# compiling" not in summary  # finished steps are collapsed to one line


def test_summary_shows_failure_with_output_tail_and_warnings() -> None:
    r, buf, clock = make()
    r(VertexStarted(1, D, "[stage-0 2/2] RUN false", 100.0))
    clock.t = 100.25
    r(VertexLog(1, "stderr", b"something broke\npassword=****"))
    r(Warning("the host network is used"))
    clock.t = 100.5
    r(VertexDone(1, D, "[stage-0 2/2] RUN false", 0.5, error="exit code: 1"))
    r(VertexStarted(2, D, "[b 1/1] RUN sleep 9", 100.0))
    r(VertexDone(2, D, "[b 1/1] RUN sleep 9", 0.5, cancelled=True))
    r.close()
    out = text(buf)
    assert "WARNING: the host network is used" in out
    summary = out[out.rindex("[+] Building"):]
    assert summary.splitlines()[0] == "[+] Building 0.5s (2/2) FAILED"
    assert re.search(r"=> ERROR \[stage-0 2/2\] RUN false +0\.5s", summary)
    assert re.search(r"=> CANCELED \[b 1/1\] RUN sleep 9 +0\.5s", summary)
    assert "------\n > [stage-0 2/2] RUN false:\n0.250 something broke\n0.250 password=****\n------" in summary


def test_live_view_keeps_running_steps_when_short_of_room() -> None:
    r, buf, clock = make(height=8)
    for n in range(1, 30):
        r(VertexCached(n, D, f"[s {n}/40] COPY f{n} ."))
    r(VertexStarted(30, D, "[s 30/40] RUN long", 100.0))
    r.refresh()
    frame = text(buf)
    frame = frame[frame.rindex("[+] Building"):]
    assert "RUN long" in frame
    assert "COPY f29 ." in frame and "COPY f1 ." not in frame
    r.close()
    assert "COPY f1 ." in text(buf)  # the summary has everything
