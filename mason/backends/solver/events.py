"""Progress events: what the solver tells the outside world. Rendering (plain, tty, json)
lives in ``mason.cli``; the solver only calls an :data:`EventSink` with these values, from any
of its worker threads (a sink must be thread-safe; :class:`Recorder` is).

Every vertex event carries the vertex's number ``n`` (1-based, stable within one build, in
start order of the graph's topological order), its digest and its display ``name``
(``[stage k/n] INSTRUCTION`` for Dockerfile steps, else ``llb.customname`` or a summary of
the op). Log data is already redacted (secret values replaced with ``****``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True, slots=True)
class VertexStarted:
    n: int
    digest: str
    name: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class VertexCached:
    n: int
    digest: str
    name: str


@dataclass(frozen=True, slots=True)
class VertexLog:
    n: int
    stream: str  # "stdout" | "stderr"
    data: bytes


@dataclass(frozen=True, slots=True)
class VertexDone:
    n: int
    digest: str
    name: str
    duration: float
    error: str | None = None  # set when the vertex failed
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Warning:  # noqa: A001 - the event's natural name
    """A warning for the user; a build check's carries its ``rule`` and ``location``
    (``file:line:col``)."""

    message: str
    rule: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """A driver-level step outside the graph (resolving, exporting, naming the image)."""

    message: str


Event = Union[VertexStarted, VertexCached, VertexLog, VertexDone, Warning, Status]
EventSink = Callable[[Event], None]


def null_sink(_event: Event) -> None:
    pass


class Recorder:
    """A sink that keeps every event (tests, the Python API's build report)."""

    def __init__(self, forward: EventSink | None = None):
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.forward = forward

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
        if self.forward is not None:
            self.forward(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    def logs(self, n: int) -> bytes:
        return b"".join(e.data for e in self.of(VertexLog) if e.n == n)
