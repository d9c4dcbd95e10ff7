"""A DAG scheduler: runs a function once per node, each as soon as all of its dependencies
are done, at most ``jobs`` at a time, on a thread pool (steps are I/O-bound: they wait on
containerd). The first failure cancels the rest: nothing new starts, the ``on_cancel`` hook
stops what is running (the solver kills its tasks), the scheduler waits for the running nodes
to wind down and raises that first error. Ctrl-C (KeyboardInterrupt in the calling thread)
does the same and re-raises.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_JOBS = 4


class CancelToken:
    """Set once when the build is cancelled (failure elsewhere, Ctrl-C)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: BaseException | None = None

    def cancel(self, reason: BaseException | None = None) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class Cancelled(Exception):
    """Raised inside a node that noticed the build was cancelled."""


def run_dag(nodes: Iterable[K], deps: Mapping[K, Iterable[K]], fn: Callable[[K], None], *,
            jobs: int = DEFAULT_JOBS, token: CancelToken | None = None,
            on_cancel: Callable[[], None] | None = None) -> None:
    """Call ``fn(node)`` for every node after ``fn`` has returned for all of ``deps[node]``
    (every dependency must be among ``nodes``). Nodes are started in the order given among
    those ready, so a topological order gives a deterministic start order with ``jobs=1``."""
    order = list(nodes)
    token = token or CancelToken()
    index = {n: i for i, n in enumerate(order)}
    waiting: dict[K, int] = {}
    children: dict[K, list[K]] = {n: [] for n in order}
    for n in order:
        ds = set(deps.get(n, ()))
        waiting[n] = len(ds)
        for d in ds:
            children[d].append(n)
    ready = [n for n in order if waiting[n] == 0]
    running: dict[cf.Future[None], K] = {}
    first_error: BaseException | None = None
    stopped = False
    pool = cf.ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mason-solve")

    def cancel(err: BaseException) -> None:
        nonlocal first_error
        if first_error is None:
            first_error = err
        if not token.is_set():
            token.cancel(err)
            if on_cancel is not None:
                try:
                    on_cancel()
                except Exception:  # noqa: BLE001 - best effort; the first error is what counts
                    pass

    try:
        while ready or running:
            while ready and len(running) < max(1, jobs) and not token.is_set():
                ready.sort(key=index.__getitem__)
                node = ready.pop(0)
                # each step in a copy of the caller's context (mason serve's per-build credentials)
                running[pool.submit(contextvars.copy_context().run, fn, node)] = node
            if not running:
                break
            done, _ = cf.wait(running, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                node = running.pop(fut)
                err = fut.exception()
                if err is not None:
                    if not isinstance(err, Cancelled) or first_error is None:
                        cancel(err)
                    continue
                for c in children[node]:
                    waiting[c] -= 1
                    if waiting[c] == 0:
                        ready.append(c)
            if token.is_set():
                ready.clear()
                if first_error is None:  # cancelled from outside: stop what runs, as on a failure
                    first_error = token.reason or Cancelled("cancelled")
                    if on_cancel is not None and running and not stopped:
                        stopped = True
                        try:
                            on_cancel()
                        except Exception:  # noqa: BLE001 - best effort, as in cancel()
                            pass
    except BaseException as e:  # Ctrl-C while waiting: cancel, wind down, re-raise
        cancel(e)
        _drain(running)
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    if first_error is not None:
        raise first_error


def _drain(running: Mapping[cf.Future[None], object]) -> None:
    """Wait for running nodes to finish after a cancel; a second Ctrl-C is ignored here so the
    clean-up (task kill, snapshot removal) completes."""
    pending = set(running)
    while pending:
        try:
            _, pending = cf.wait(pending, timeout=0.25)
        except KeyboardInterrupt:
            continue
