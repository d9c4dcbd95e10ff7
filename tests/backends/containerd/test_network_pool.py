"""The pool behind the default network's namespaces (:mod:`mason.backends.containerd.netpool`),
with stand-in items: made ahead of need, used once, destroyed in the background, drained by
close, broken by a failing maker. No timing assertions: events and counts only."""

from __future__ import annotations

import itertools
import threading

import pytest

from mason.backends.containerd.netpool import Pool, PoolClosed


class Things:
    """Records what the pool makes and destroys; ``gate`` holds the maker until set."""

    def __init__(self, fail_at: int | None = None, destroy_fails: bool = False):
        self.n = itertools.count()
        self.made: list[int] = []
        self.destroyed: list[int] = []
        self.destroy_threads: set[str] = set()
        self.fail_at = fail_at
        self.destroy_fails = destroy_fails
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def make(self) -> int:
        self.gate.wait(30)
        i = next(self.n)
        if i == self.fail_at:
            raise OSError("no bridge today")
        with self.changed:
            self.made.append(i)
            self.changed.notify_all()
        return i

    def destroy(self, i: int) -> None:
        with self.changed:
            self.destroyed.append(i)
            self.destroy_threads.add(threading.current_thread().name)
            self.changed.notify_all()
        if self.destroy_fails:
            raise RuntimeError(f"cannot destroy {i}")

    def wait_made(self, k: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.made) >= k, 30)


def test_makes_ahead_hands_out_each_item_once_and_refills() -> None:
    t = Things()
    pool = Pool(t.make, t.destroy, size=2)
    first = pool.take()  # the first take starts the maker and waits for one
    t.wait_made(3)  # then it keeps two idle
    assert pool.idle == 2
    second, third = pool.take(), pool.take()
    assert len({first, second, third}) == 3
    t.wait_made(5)
    assert pool.close() == []
    assert sorted(t.destroyed) == sorted(set(t.made) - {first, second, third})


def test_release_destroys_in_the_background_and_flush_waits() -> None:
    t = Things()
    pool = Pool(t.make, t.destroy, size=1)
    items = [pool.take() for _ in range(4)]
    for i in items:
        pool.release(i)
    assert pool.flush() == []
    assert sorted(t.destroyed) == sorted(items)
    assert threading.current_thread().name not in t.destroy_threads
    pool.close()
    assert sorted(t.destroyed) == sorted(t.made)  # nothing made is left undestroyed


def test_close_waits_for_the_item_being_made_and_destroys_it() -> None:
    t = Things()
    pool = Pool(t.make, t.destroy, size=1)
    pool.release(pool.take())
    t.gate.clear()  # the refill is now stuck in make()
    closer = threading.Thread(target=pool.close)
    closer.start()
    t.gate.set()
    closer.join(30)
    assert not closer.is_alive()
    assert sorted(t.destroyed) == sorted(t.made)
    assert not [th for th in threading.enumerate() if th.name.startswith("pool-")]
    with pytest.raises(PoolClosed):
        pool.take()


def test_a_failing_maker_breaks_the_pool_for_every_taker() -> None:
    t = Things(fail_at=0)
    pool = Pool(t.make, t.destroy, size=2)
    with pytest.raises(OSError, match="no bridge today"):
        pool.take()
    with pytest.raises(OSError, match="no bridge today"):
        pool.take()  # at once: no new attempts
    assert t.made == []
    assert pool.close() == []


def test_destroy_errors_are_reported_by_flush_and_close() -> None:
    t = Things(destroy_fails=True)
    pool = Pool(t.make, t.destroy, size=1)
    pool.release(pool.take())
    errors = pool.flush()
    assert [str(e) for e in errors] == ["cannot destroy 0"]
    assert pool.flush() == []  # reported once
    t.wait_made(2)
    assert [str(e) for e in pool.close()] == ["cannot destroy 1"]


def test_concurrent_takers_get_distinct_items() -> None:
    t = Things()
    pool = Pool(t.make, t.destroy, size=1)
    got: list[int] = []
    lock = threading.Lock()
    gate = threading.Barrier(6)

    def taker() -> None:
        gate.wait(30)
        i = pool.take()
        with lock:
            got.append(i)

    threads = [threading.Thread(target=taker) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sorted(got) == sorted(set(got)) and len(got) == 6
    pool.close()
    assert sorted(t.destroyed + got) == sorted(t.made)
