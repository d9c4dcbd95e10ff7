"""Pausing the cyclic garbage collector around a phase that allocates many long-lived objects
and frees few (a lowering building its graph): every young collection then finds almost nothing
to free, and each full one walks everything made so far.

The collector is one per process, so a pause is one too: :func:`paused` counts the phases inside
it (threads of ``mason serve`` lowering at once) and turns the collector back on when the last
one leaves — and only if it was on when the first came in (a caller that turned it off itself
keeps it off). Reference counting still frees what is dropped; only cycles wait.

Use it only where a bench shows it buys more than 20 % (issue 12), with the figure at the call.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterator

__all__ = ["paused"]

_lock = threading.Lock()
_depth = 0
_restore = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off for the ``with`` block (see the module docstring)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()
