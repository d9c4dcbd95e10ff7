"""Network work a cancelled build can stop at once.

:class:`Streams` collects the sockets of the requests made for one piece of work (httpcore's
``trace`` extension reports each new connection; a response reports the connection it came on,
which covers a pooled one), so another thread can shut them down. :func:`run_cancellable` runs
the work on a thread of its own while the caller polls the build's cancel token: once it turns
true (Ctrl-C, SIGTERM, a failure elsewhere, a ``mason serve`` client gone) or the caller is
interrupted, the sockets are shut down, the thread gets :data:`CANCEL_GRACE` to end and
:class:`~mason.backends.solver.scheduler.Cancelled` is raised. A request still waiting on a
pooled connection's response headers, or still in ``connect(2)``, has no socket known yet: that
thread is left to its timeout, the caller does not wait for it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mason.backends.solver.scheduler import Cancelled

CANCEL_GRACE = 0.5
POLL = 0.05

T = TypeVar("T")

__all__ = ["CANCEL_GRACE", "POLL", "Streams", "run_cancellable"]


class Streams:
    """The network streams some requests used, so another thread can shut their sockets down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[object] = []
        self._closed = False

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        """httpcore's ``trace`` extension hook."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")) and "return_value" in info:
            self.add(info["return_value"])

    def add_response(self, resp: Any) -> None:
        """The connection a response came on (a pooled one reports no connect)."""
        ext = getattr(resp, "extensions", None) or {}
        if ext.get("network_stream") is not None:
            self.add(ext["network_stream"])

    def add(self, stream: object) -> None:
        with self._lock:
            self._streams.append(stream)
            closed = self._closed
        if closed:  # connected just after the cancel
            self.shutdown()

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            streams = list(self._streams)
        for st in streams:
            get = getattr(st, "get_extra_info", None)
            sock = get("socket") if get is not None else None
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def run_cancellable(work: Callable[[], T], cancel: Callable[[], bool] | None, streams: Streams,
                    what: str, name: str = "mason-fetch") -> T:
    """``work()`` on a thread of its own, stopped when ``cancel()`` turns true (or the caller is
    interrupted: a KeyboardInterrupt in the main thread): ``streams`` are shut down and
    :class:`Cancelled` (``what cancelled``) is raised."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
        finally:
            done.set()

    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    finished = False
    try:
        while not done.wait(POLL):
            if cancel is not None and cancel():
                raise Cancelled(f"{what} cancelled")
        finished = True
    finally:
        if not finished:
            streams.shutdown()
            done.wait(CANCEL_GRACE)
    if "error" in box:
        raise box["error"]
    return box["result"]
