"""mason.ir.gcpause: the one process-wide GC pause (lowering), counted across threads."""

from __future__ import annotations

import gc
import threading

from mason.ir import gcpause


def test_pause_nests_and_restores_only_what_it_found() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer phase is still inside
    assert gc.isenabled()
    gc.disable()  # a caller that turned it off keeps it off
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_thread_leaving_first_does_not_turn_it_on_under_another() -> None:
    inside, leave, seen = threading.Event(), threading.Event(), []

    def other() -> None:
        with gcpause.paused():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(10)
    with gcpause.paused():
        leave.set()
        t.join(10)
        seen.append(gc.isenabled())  # the other thread left: still paused for this one
    assert seen == [False] and gc.isenabled()


def test_an_error_inside_still_restores() -> None:
    try:
        with gcpause.paused():
            raise ValueError("x")
    except ValueError:
        pass
    assert gc.isenabled()
