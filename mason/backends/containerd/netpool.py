"""A small pool of things made ahead of need and destroyed after use, both off the caller's
critical path: here, CNI-configured network namespaces (like BuildKit's netns pool).

``take()`` hands out an idle item, waiting only if none is ready; a background *maker* thread
keeps ``size`` idle items (plus one for every waiting taker). An item is used once:
``release()`` queues it for destruction on background *destroyer* threads — a step may have
changed its namespace (routes, iptables rules, sysctls), so it is never handed out again.
``flush()`` waits for the queued destructions, ``close()`` stops the maker and destroys
everything still held (idle items included), in the calling thread and short-lived helpers, so
it also works from an ``atexit`` handler.

If making an item fails, the pool is *broken*: the taker that waited and every later one get
the error at once (the caller falls back, e.g. to the host network) and nothing more is made.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PoolClosed(RuntimeError):
    pass


class Pool(Generic[T]):
    def __init__(self, make: Callable[[], T], destroy: Callable[[T], None], *, size: int = 2,
                 destroyers: int = 2, name: str = "pool"):
        self._make, self._destroy = make, destroy
        self.size = max(0, size)
        self.max_destroyers = max(1, destroyers)
        self.name = name
        self._cond = threading.Condition()
        self._idle: collections.deque[T] = collections.deque()
        self._doomed: collections.deque[T] = collections.deque()
        self._waiting = 0  # takers blocked in take()
        self._making = False
        self._destroying = 0  # destroyer threads alive
        self._maker: threading.Thread | None = None
        self._threads: list[threading.Thread] = []  # background destroyers
        self._broken: BaseException | None = None
        self._closed = False
        self.errors: list[BaseException] = []  # from destroy; reported by flush()/close()

    # -- the interface ---------------------------------------------------------------------

    def take(self) -> T:
        """An idle item (waiting for the maker if none is ready). Raises the maker's error if
        the pool is broken, :class:`PoolClosed` after :meth:`close`."""
        with self._cond:
            self._start_maker()
            self._waiting += 1
            try:
                while not self._idle:
                    if self._closed:
                        raise PoolClosed(f"{self.name} is closed")
                    if self._broken is not None:
                        raise self._broken
                    self._cond.notify_all()
                    self._cond.wait()
                item = self._idle.popleft()
            finally:
                self._waiting -= 1
            self._cond.notify_all()  # the maker refills
            return item

    def start(self) -> None:
        """Start making items now, before the first :meth:`take` (which otherwise starts it)."""
        with self._cond:
            self._start_maker()

    def release(self, item: T) -> None:
        """Destroy ``item`` in the background."""
        with self._cond:
            self._doomed.append(item)
            if self._destroying < min(self.max_destroyers, len(self._doomed)):
                self._destroying += 1
                t = threading.Thread(target=self._destroyer, name=f"{self.name}-destroy", daemon=True)
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
                t.start()

    def flush(self) -> list[BaseException]:
        """Wait for every queued destruction; return (and forget) the errors they hit."""
        with self._cond:
            while self._doomed or self._destroying:
                self._cond.wait()
            errors, self.errors = self.errors, []
        return errors

    def close(self) -> list[BaseException]:
        """Stop making, wait for an item being made, destroy every idle and queued item; return
        the errors. Idempotent; ``take`` fails afterwards."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._making:
                self._cond.wait()
            self._doomed.extend(self._idle)
            self._idle.clear()
        # Destroy in parallel, in threads of our own that we join: the background destroyers
        # may be gone already at interpreter exit.
        helpers = [threading.Thread(target=self._destroyer, name=f"{self.name}-close", daemon=True)
                   for _ in range(self.max_destroyers)]
        with self._cond:
            self._destroying += len(helpers)
        for t in helpers:
            t.start()
        for t in helpers:
            t.join()
        errors = self.flush()
        with self._cond:
            threads = [t for t in [self._maker, *self._threads] if t is not None]
        for t in threads:
            if t is not threading.current_thread():
                t.join()
        return errors

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    # -- the threads -------------------------------------------------------------------------

    def _start_maker(self) -> None:
        if self._maker is None and not self._closed:
            self._maker = threading.Thread(target=self._make_loop, name=f"{self.name}-make", daemon=True)
            self._maker.start()

    def _make_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._broken is None and \
                        len(self._idle) >= self.size + self._waiting:
                    self._cond.wait()
                if self._closed or self._broken is not None:
                    return
                self._making = True
            try:
                item = self._make()
            except BaseException as e:  # noqa: BLE001 - handed to the takers
                with self._cond:
                    self._broken = e
                    self._making = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._making = False
                if self._closed:
                    self._doomed.append(item)  # close() is waiting for us and destroys it
                else:
                    self._idle.append(item)
                self._cond.notify_all()

    def _destroyer(self) -> None:
        while True:
            with self._cond:
                if not self._doomed:
                    self._destroying -= 1
                    self._cond.notify_all()
                    return
                item = self._doomed.popleft()
            try:
                self._destroy(item)
            except BaseException as e:  # noqa: BLE001 - reported by flush()/close()
                with self._cond:
                    self.errors.append(e)
