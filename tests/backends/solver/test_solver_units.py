"""Unit tests of the solver's pieces that need no daemon: cache keys, the result store, the
DAG scheduler, secret parsing and redaction."""

from __future__ import annotations

import threading
import time

import pytest

from mason.backends.exporters.layer import KnownLayer, SnapshotDiff
from mason.backends.solver import cachekey
from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import CancelToken, run_dag
from mason.backends.solver.secrets import LineRedactor, Redactor, parse_secret
from mason.backends.solver.store import ResultStore
from mason.backends.sources.result import Layer
from mason.ir.builder import image
from mason.ir.errors import MasonError


def test_cache_key_replaces_input_digests_by_keys():
    base = image("busybox")
    a = base.run("echo a").root()
    op = a.op
    k1 = cachekey.cache_key(op.bytes, [("sha256:" + "1" * 64, 0)])
    k2 = cachekey.cache_key(op.bytes, [("sha256:" + "2" * 64, 0)])
    assert k1 != k2  # same op, different input content
    other = image("alpine").run("echo a").root().op
    assert cachekey.cache_key(other.bytes, [("sha256:" + "1" * 64, 0)]) == k1  # input op identity ignored
    assert cachekey.cache_key(op.bytes, [("sha256:" + "1" * 64, 0)], ["x"]) != k1
    assert cachekey.strip_inputs(op.bytes) == cachekey.strip_inputs(other.bytes)
    assert op.input_ops()[0].digest.encode() not in cachekey.strip_inputs(op.bytes)


def test_store_roundtrip_and_claim(tmp_path):
    r = Result("snap-1", (KnownLayer(Layer("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:aa", 3, "sha256:bb")),
                          SnapshotDiff("base", "snap-1")), {"config": {}})
    with ResultStore(tmp_path) as s:
        assert s.get("k/0") is None
        s.put("k/0", r, description="RUN x")
        got = s.get("k/0")
        assert got is not None and got.result == r and got.result.chain == r.chain
        assert got.description == "RUN x"
        assert [x.key for x in s.records()] == ["k/0"]
        order = []

        def holder():
            with s.claim("k"):
                order.append("a-start")
                time.sleep(0.3)
                order.append("a-end")

        t = threading.Thread(target=holder)
        t.start()
        time.sleep(0.1)
        with s.claim("k"):
            order.append("b")
        t.join()
        assert order == ["a-start", "a-end", "b"]
    with ResultStore(tmp_path) as s2:  # another process's view: persisted
        assert s2.get("k/0").result.snapshot == "snap-1"


def test_run_dag_orders_and_parallelizes():
    deps = {"a": [], "b": [], "c": ["a", "b"], "d": ["c"]}
    events, lock = [], threading.Lock()
    together = threading.Barrier(2, timeout=30)  # a and b must be running at the same time

    def fn(n):
        with lock:
            events.append(f"{n}-start")
        if n in "ab":
            together.wait()  # raises BrokenBarrierError if the other never runs alongside
        with lock:
            events.append(f"{n}-end")

    run_dag(list(deps), deps, fn, jobs=4)
    pos = {e: i for i, e in enumerate(events)}
    assert pos["c-start"] > max(pos["a-end"], pos["b-end"])  # after both inputs
    assert pos["d-start"] > pos["c-end"]


def test_run_dag_first_failure_cancels_rest():
    deps = {"fail": [], "slow": [], "after": ["slow"]}
    ran, woke = [], []
    token = CancelToken()
    cancelled = threading.Event()

    def fn(n):
        ran.append(n)
        if n == "fail":
            raise MasonError("boom")
        token.wait(60)  # "slow" runs until cancelled
        woke.append(token.is_set())

    with pytest.raises(MasonError, match="boom"):
        run_dag(list(deps), deps, fn, jobs=4, token=token, on_cancel=cancelled.set)
    assert cancelled.is_set() and "after" not in ran
    assert woke in ([], [True])  # "slow" was woken by the cancellation, not by its timeout


def test_parse_secret(monkeypatch):
    assert parse_secret("id=a,src=/f").src == "/f"
    assert parse_secret("id=a,env=V").env == "V"
    monkeypatch.setenv("TOKEN", "x")
    assert parse_secret("id=TOKEN").env == "TOKEN"
    with pytest.raises(MasonError, match="id= is required"):
        parse_secret("src=/f")
    with pytest.raises(MasonError, match="unknown key"):
        parse_secret("id=a,foo=b")


def test_redaction_across_chunks():
    red = Redactor([b"topsecret"])
    out = []
    lr = LineRedactor(red, lambda s, d: out.append(d))
    lr("stdout", b"value: tops")
    lr("stdout", b"ecret\nnext")
    lr.flush()
    assert b"".join(out) == b"value: ****\nnext"


def test_redactor_add_covers_a_value_learned_later() -> None:
    from mason.backends.solver.secrets import LineRedactor, Redactor

    r = Redactor([b"first-secret"])
    out: list[bytes] = []
    lines = LineRedactor(r, lambda stream, data: out.append(data))
    r.add(b"later-secret\n")
    lines("stdout", b"a first-secret b later-secret c\n")
    assert out == [b"a **** b **** c\n"]
