"""``disk_usage`` and ``prune`` against a real containerd of this module's own (its own state
dir, stopped by PID at the end), so that pruning namespace ``mason`` cannot touch the session
daemon's cache: results made by hand like the solver makes them (a snapshot committed in a build
lease, put into the cache lease, recorded), images, dangling snapshots and blobs, leases of
crashed and of running builds. Evidence comes from containerd's own lists and from ``ctr``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mason.backends.containerd.client import Client, NotFound
from mason.backends.containerd.exec import OWNER_LABEL, _process_identity
from mason.backends.exporters.layer import SnapshotDiff
from mason.backends.solver.cachekey import cache_lease_name, output_key, snapshot_name
from mason.backends.solver.gc import (
    disk_usage,
    lease_is_stale,
    parse_duration,
    parse_filters,
    parse_size,
    prune,
    usage_totals,
)
from mason.backends.solver.results import Result
from mason.backends.solver.store import ResultStore
from mason.ir.errors import MasonError
from tests.fixtures.procs import gone, mounts_under

MiB = 1 << 20
BASE_LEASE = "gc-test-base"
DEAD_OWNER = "999999999:1"  # beyond pid_max: no such process


# -- a containerd of our own ------------------------------------------------------------------

@dataclass
class World:
    """A private containerd with busybox committed, and helpers that make cache state the way
    the solver does."""

    root: Path
    address: str
    client: Client
    busybox: str
    daemon: object = None  # the ManagedContainerd (for a Solver's runc root and io dir)

    def reset(self) -> None:
        """Back to busybox alone: no images, no leases but the base one, nothing collected."""
        c = self.client
        for im in c.list_images():
            c.delete_image(im.name)
        for lid in c.list_leases():
            if lid != BASE_LEASE:
                c.delete_lease(lid)
        gc = c.create_lease(expire=60)
        c.delete_lease(gc, sync=True)
        assert self.snapshots() == {self.busybox}

    def snapshots(self) -> set[str]:
        return {s.name for s in self.client.list_snapshots()}

    def base(self) -> Result:
        return Result(self.busybox, (SnapshotDiff(None, self.busybox),))

    def commit(self, name: str, parent: str, size: int, *, lease: str | None = None,
               owner: str | None = None) -> str:
        """Commit ``name`` on ``parent`` with one file of ``size`` bytes (inside ``lease``)."""
        c = self.client.with_lease(lease) if lease else self.client
        key = f"gc-test-active-{name}"
        mounts = c.prepare(key, parent)
        upper = next(o.split("=", 1)[1] for o in mounts[0].options if o.startswith("upperdir="))
        with open(os.path.join(upper, "data"), "wb") as f:
            f.write(os.urandom(size))
        c.commit(name, key, {OWNER_LABEL: owner} if owner else None)
        return name

    def build(self, store: ResultStore, step: str, parent: Result, size: int,
              description: str | None = None) -> tuple[str, Result]:
        """A finished step as the solver leaves it: committed in a build lease, protected by the
        cache lease, recorded; the build lease gone. Returns (record key, result)."""
        key = "sha256:" + hashlib.sha256(f"{self.root}/{step}".encode()).hexdigest()
        cache_lease = cache_lease_name(store.dir.parent)  # the solver's, per state root
        with contextlib.suppress(Exception):
            self.client.create_lease(cache_lease, expire=None, labels={"mason.cache": "1"})
        lease = self.client.create_lease(expire=3600, labels={"mason.build": "1"})
        snap = self.commit(snapshot_name(key, 0), parent.snapshot, size, lease=lease,
                           owner=_process_identity(os.getpid()))
        self.client.add_lease_resource(cache_lease, snap, "snapshots/overlayfs")
        result = parent.extend(snap)
        store.put(output_key(key, 0), result, description=description or f"RUN {step}")
        self.client.delete_lease(lease)
        return output_key(key, 0), result


def age(store: ResultStore, key: str, seconds: float) -> None:
    """Pretend record ``key`` was last used ``seconds`` ago (the store has no setter)."""
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE results SET last_used = ? WHERE key = ?", (time.time() - seconds, key))


def ctr_snapshots(address: str) -> set[str]:
    out = subprocess.run(["ctr", "--address", address, "-n", "mason", "snapshots", "ls"], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}


@contextlib.contextmanager
def private_containerd(name: str) -> Iterator[World]:
    from mason.backends.containerd.daemon import ManagedContainerd
    from mason.backends.containerd.layers import import_layer
    from tests.fixtures.containerd import busybox_layer_tar

    root = Path(tempfile.mkdtemp(prefix=f"mason-{name}-"))
    daemon = ManagedContainerd.at(root)
    address = daemon.ensure_running()
    pid = daemon.pid()
    client = Client(address)
    try:
        client.ensure_namespace()
        client.create_lease(BASE_LEASE, expire=None)
        base = import_layer(client.with_lease(BASE_LEASE), busybox_layer_tar())
        yield World(root, address, client, base.chain_id, daemon)
    finally:
        client.close()
        daemon.stop()
        if pid is not None:
            assert gone(pid)
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)




@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with private_containerd("gc") as w:
        yield w


@pytest.fixture
def gc(world: World) -> Iterator[tuple[World, ResultStore]]:
    world.reset()
    state = Path(tempfile.mkdtemp(prefix="mason-gc-state-"))
    store = ResultStore(state)
    try:
        yield world, store
    finally:
        store.close()
        shutil.rmtree(state, ignore_errors=True)


# -- option values (no daemon) ----------------------------------------------------------------

def test_parse_size() -> None:
    assert parse_size("500MB") == 500_000_000
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("1.5kb") == 1500
    assert parse_size("1024") == 1024
    assert parse_size(" 3 MiB ") == 3 * MiB
    with pytest.raises(MasonError) as e:
        parse_size("12XB")
    assert e.value.message == ("invalid size '12XB': expected a number of bytes with an optional unit "
                               "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 500MB or 2GiB")


def test_parse_duration_and_filters() -> None:
    assert parse_duration("24h") == 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("250ms") == 0.25
    for bad in ("", "5", "5x", "h", "1h 2m", "-1h"):
        with pytest.raises(MasonError) as e:
            parse_duration(bad)
        assert e.value.message.startswith(f"invalid duration {bad!r}: expected a duration such as 24h")
    assert parse_filters(["until=2h"]) == {"until": 7200}
    with pytest.raises(MasonError) as e:
        parse_filters(["label=x"])
    assert e.value.message == "invalid filter 'label=x': the supported filter is until=DURATION (e.g. until=24h)"


def test_lease_staleness() -> None:
    now = time.time()
    assert lease_is_stale({"containerd.io/gc.expire": "2001-01-01T00:00:00Z"}, now)
    assert not lease_is_stale({"containerd.io/gc.expire": "2999-01-01T00:00:00Z"}, now)
    assert lease_is_stale({OWNER_LABEL: DEAD_OWNER}, now)
    assert not lease_is_stale({OWNER_LABEL: _process_identity(os.getpid())}, now)
    assert not lease_is_stale({"mason.build": "1"}, now)  # no owner, no expiry: in flight


# -- prune ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_prune_without_all_removes_only_garbage(gc) -> None:
    w, store = gc
    c = w.client
    k1, r1 = w.build(store, "one", w.base(), MiB)
    k2, r2 = w.build(store, "two", r1, MiB)
    k3, r3 = w.build(store, "three", w.base(), 2 * MiB)
    # an image built from r2's chain
    from mason.backends.exporters.image import export_image

    export_image(c, r2.chain, {}, name="gc-test/app:1")
    # garbage: a crashed build's lease (owner gone) holding a snapshot and a blob
    crashed = c.create_lease(expire=3600, labels={"mason.build": "1", OWNER_LABEL: DEAD_OWNER})
    dangling = w.commit("gc-test-dangling", w.busybox, MiB, lease=crashed)
    blob = c.with_lease(crashed).write_blob(b"left over by a crashed build").digest
    # a lease that expires holding another snapshot (containerd's own GC may beat prune to it)
    expired = c.create_lease(expire=2)  # at least 1 s from now: whole seconds
    w.commit("gc-test-expired", w.busybox, 4096, lease=expired)
    time.sleep(2.05)
    # a record whose snapshot vanished (removed behind the store's back)
    k4, r4 = w.build(store, "four", w.base(), 4096)
    c.remove_snapshot(r4.snapshot)
    before = w.snapshots()
    assert {r1.snapshot, r2.snapshot, r3.snapshot, dangling} <= before

    report = prune(c, store)

    kept = w.snapshots()
    assert kept == {w.busybox, r1.snapshot, r2.snapshot, r3.snapshot}
    assert ctr_snapshots(w.address) == kept
    assert dangling in report.snapshots and set(report.snapshots) <= {dangling, "gc-test-expired"}
    assert blob in report.content and not c.content_exists(blob)
    assert crashed in report.leases  # the expired one may have gone with containerd's own GC
    assert set(c.list_leases()) == {BASE_LEASE, cache_lease_name(store.dir.parent)}
    assert [r.key for r in report.records] == [k4] and report.vanished == 1
    assert {r.key for r in store.records()} == {k1, k2, k3}
    assert report.snapshot_bytes >= MiB and report.freed == report.snapshot_bytes + report.content_bytes
    # the image is whole: its manifest's blobs are all still there
    img = c.get_image("docker.io/gc-test/app:1")
    import json

    manifest = json.loads(c.read_blob(img.target.digest))
    for d in [manifest["config"], *manifest["layers"]]:
        assert c.content_exists(d["digest"])
    # the cache lease holds exactly what the records need
    from mason.backends.solver.gc_refs import lease_resources

    held = {rid for rid, t in lease_resources(c, cache_lease_name(store.dir.parent)) if t == "snapshots/overlayfs"}
    assert held == {w.busybox, r1.snapshot, r2.snapshot, r3.snapshot}

    again = prune(c, store)  # nothing left to do
    assert (again.records, again.snapshots, again.content, again.leases) == ([], [], [], [])


@pytest.mark.integration
def test_prune_all_keeps_records_an_image_is_built_from(gc) -> None:
    from mason.backends.exporters.image import export_image

    w, store = gc
    c = w.client
    k1, r1 = w.build(store, "one", w.base(), MiB)
    k2, r2 = w.build(store, "two", r1, MiB)
    k3, r3 = w.build(store, "three", w.base(), 2 * MiB)
    k4, r4 = w.build(store, "four", r3, MiB)
    export_image(c, r2.chain, {}, name="gc-test/app:1")

    usage = {u.key: u for u in disk_usage(c, store)}
    assert {k for k, u in usage.items() if u.shared} == {k1, k2}
    assert {k for k, u in usage.items() if u.reclaimable} == {k3, k4}

    report = prune(c, store, all=True)

    assert {r.key for r in report.records} == {k3, k4}
    assert {r.key for r in store.records()} == {k1, k2}
    assert w.snapshots() == ctr_snapshots(w.address) == {w.busybox, r1.snapshot, r2.snapshot}
    assert set(report.snapshots) == {r3.snapshot, r4.snapshot}
    assert report.snapshot_bytes >= 3 * MiB

    c.delete_image("docker.io/gc-test/app:1")
    prune(c, store, all=True)
    assert store.records() == [] and w.snapshots() == {w.busybox}


@pytest.mark.integration
def test_until_drops_records_last_used_longer_ago(gc) -> None:
    w, store = gc
    k1, r1 = w.build(store, "old", w.base(), 4096)
    k2, r2 = w.build(store, "older", w.base(), 4096)
    k3, r3 = w.build(store, "new", w.base(), 4096)
    age(store, k1, 3 * 3600)
    age(store, k2, 48 * 3600)
    age(store, k3, 60)

    report = prune(w.client, store, until=parse_duration("24h"))
    assert [r.key for r in report.records] == [k2]
    report = prune(w.client, store, **parse_filters(["until=2h"]))
    assert [r.key for r in report.records] == [k1]
    assert [r.key for r in store.records()] == [k3]
    assert w.snapshots() == {w.busybox, r3.snapshot}


@pytest.mark.integration
def test_keep_storage_drops_least_recently_used_first(gc) -> None:
    w, store = gc
    ka, ra = w.build(store, "a", w.base(), MiB)
    kb, rb = w.build(store, "b", w.base(), 2 * MiB)
    kc, rc = w.build(store, "c", w.base(), 3 * MiB)
    age(store, ka, 300)
    age(store, kb, 200)
    age(store, kc, 100)
    sizes = {u.key: u.size for u in disk_usage(w.client, store)}
    assert sizes[ka] >= MiB and sizes[kb] >= 2 * MiB and sizes[kc] >= 3 * MiB
    assert usage_totals(disk_usage(w.client, store)).total == sum(sizes.values())

    report = prune(w.client, store, keep_storage=sizes[kb] + sizes[kc])  # fits after dropping a
    assert [r.key for r in report.records] == [ka]
    report = prune(w.client, store, keep_storage=4 * MiB)
    assert [r.key for r in report.records] == [kb]
    assert [r.key for r in store.records()] == [kc]
    assert w.snapshots() == {w.busybox, rc.snapshot}
    report = prune(w.client, store, keep_storage=10 * MiB)
    assert report.records == []


@pytest.mark.integration
def test_keep_storage_takes_a_chain_from_its_top(gc) -> None:
    """Dropping a parent's record while its child's stays would free nothing: the child goes
    first even though the parent was used less recently."""
    w, store = gc
    kp, rp = w.build(store, "parent", w.base(), MiB)
    kq, rq = w.build(store, "child", rp, MiB)
    kr, rr = w.build(store, "other", w.base(), 2 * MiB)
    age(store, kp, 300)
    age(store, kq, 299)
    age(store, kr, 10)
    report = prune(w.client, store, keep_storage=int(2.5 * MiB))
    assert [r.key for r in report.records] == [kq, kp]
    assert w.snapshots() == {w.busybox, rr.snapshot}


@pytest.mark.integration
def test_running_builds_keep_what_they_hold(gc) -> None:
    w, store = gc
    c = w.client
    me = _process_identity(os.getpid())
    k1, r1 = w.build(store, "one", w.base(), 4096)
    # a running build: it holds r1 (it found it in the cache) and its own new, unrecorded result
    running = c.create_lease(expire=3600, labels={"mason.build": "1", OWNER_LABEL: me})
    c.add_lease_resource(running, r1.snapshot, "snapshots/overlayfs")
    fresh = w.commit(snapshot_name("sha256:" + "ab" * 32), r1.snapshot, 4096, lease=running, owner=me)
    c.add_lease_resource(cache_lease_name(store.dir.parent), fresh, "snapshots/overlayfs")  # protected, not yet recorded
    active = f"gc-test-step-{me}"
    c.with_lease(running).prepare(active, fresh, {OWNER_LABEL: me})  # its step running now
    # a lease without an owner label (an export, or an older mason) that has not expired
    other = c.create_lease(expire=3600)
    held = w.commit("gc-test-held", w.busybox, 4096, lease=other)

    report = prune(c, store, all=True)

    assert report.records == [] and [r.key for r in store.records()] == [k1]
    assert w.snapshots() == {w.busybox, r1.snapshot, fresh, active, held}
    assert {running, other} <= set(c.list_leases())
    # the build finishes: its step recorded, its active snapshot and lease gone
    store.put(output_key("sha256:" + "ab" * 32, 0), r1.extend(fresh), description="RUN fresh")
    c.remove_snapshot(active)
    c.delete_lease(running)
    c.delete_lease(other)
    report = prune(c, store, all=True)
    assert {r.key for r in report.records} == {k1, output_key("sha256:" + "ab" * 32, 0)}
    assert w.snapshots() == {w.busybox}


# -- crash consistency ------------------------------------------------------------------------

@pytest.mark.integration
def test_commit_without_record_is_removed_and_the_store_stays_usable(gc) -> None:
    """A build killed between Snapshots.Commit and the record insert: a snapshot named like a
    result, in the cache lease and in the build lease it never deleted."""
    w, store = gc
    c = w.client
    k1, r1 = w.build(store, "finished", w.base(), 4096)
    crashed = c.create_lease(expire=3600, labels={"mason.build": "1"})  # no owner: cannot tell
    key = "sha256:" + "cd" * 32
    torn = w.commit(snapshot_name(key), r1.snapshot, 4096, lease=crashed, owner=DEAD_OWNER)
    torn_child = w.commit(snapshot_name("sha256:" + "ce" * 32), torn, 4096, lease=crashed, owner=DEAD_OWNER)
    c.add_lease_resource(cache_lease_name(store.dir.parent), torn, "snapshots/overlayfs")

    report = prune(c, store)

    assert {torn, torn_child} <= set(report.snapshots)
    assert w.snapshots() == {w.busybox, r1.snapshot}
    assert store.get(k1) is not None and c.snapshot_exists(store.get(k1).result.snapshot)
    store.put(output_key(key, 0), r1, description="after the crash")
    assert store.get(output_key(key, 0)).description == "after the crash"


@pytest.mark.integration
def test_prune_after_kill_9(gc, tmp_path: Path) -> None:
    """A real process killed with SIGKILL in the middle of a step: the finished step's record
    and snapshot stay, the torn one and the running step's snapshot go."""
    w, store = gc
    script = tmp_path / "build.py"
    script.write_text(f"""
import hashlib, os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from tests.backends.solver.test_gc import World
from mason.backends.containerd.client import Client
from mason.backends.containerd.exec import OWNER_LABEL, _process_identity
from mason.backends.solver.cachekey import snapshot_name
from mason.backends.solver.store import ResultStore
from pathlib import Path
c = Client({w.address!r})
w = World(Path({str(w.root)!r}), {w.address!r}, c, {w.busybox!r})
store = ResultStore({str(store.dir.parent)!r})
key, done = w.build(store, "finished", w.base(), 4096)
me = _process_identity(os.getpid())
lease = c.create_lease(expire=3600, labels={{"mason.build": "1"}})
torn = w.commit(snapshot_name("sha256:" + "ef" * 32), done.snapshot, 4096, lease=lease, owner=me)
c.add_lease_resource({cache_lease_name(store.dir.parent)!r}, torn, "snapshots/overlayfs")
c.with_lease(lease).prepare("gc-test-running-step", torn, {{OWNER_LABEL: me}})
print(key, done.snapshot, torn, flush=True)
time.sleep(600)
""")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        key, done, torn = p.stdout.readline().split()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert {done, torn, "gc-test-running-step"} <= w.snapshots()

    report = prune(w.client, store)

    assert {torn, "gc-test-running-step"} <= set(report.snapshots)
    assert w.snapshots() == {w.busybox, done}
    rec = store.get(key)
    assert rec is not None and rec.result.snapshot == done  # the next build reuses it
    assert sqlite3.connect(store.path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_store_waits_for_another_writer(tmp_path: Path) -> None:
    """Opened while another connection holds a write transaction, the store waits for it."""
    ResultStore(tmp_path).close()  # the database exists
    other = sqlite3.connect(tmp_path / "solver" / "cache.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO results(key, result, snapshot, created, last_used) VALUES "
                  "('k/0', '{\"snapshot\":\"\",\"chain\":[]}', '', 0, 0)")
    done: list[object] = []

    def writer() -> None:
        try:
            with ResultStore(tmp_path) as s:
                s.put("k2/0", Result(""), description="second")
                done.append(s.get("k/0"))
        except BaseException as e:  # pragma: no cover - reported below
            done.append(e)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    assert done == []  # still waiting, not failed
    other.execute("COMMIT")
    t.join(30)
    assert len(done) == 1 and not isinstance(done[0], BaseException)
    assert done[0].key == "k/0"
    other.close()


@pytest.mark.integration
def test_disk_usage_lists_records_with_sizes(gc) -> None:
    w, store = gc
    k1, r1 = w.build(store, "one", w.base(), MiB, description="[stage-0 2/3] RUN one")
    k2, r2 = w.build(store, "two", r1, 3 * MiB, description="[stage-0 3/3] RUN two")
    usage = disk_usage(w.client, store)
    assert [u.key for u in usage] == [k2, k1]  # largest first
    assert usage[0].description == "[stage-0 3/3] RUN two" and usage[0].snapshot == r2.snapshot
    assert 3 * MiB <= usage[0].size < 3 * MiB + 64 * 1024
    assert MiB <= usage[1].size < MiB + 64 * 1024
    assert all(u.reclaimable and not u.shared and not u.in_use for u in usage)
    assert usage[0].id == k2.split(":")[1][:12]
    t = usage_totals(usage)
    assert (t.records, t.total, t.reclaimable, t.shared) == (2, usage[0].size + usage[1].size, t.total, 0)
    with contextlib.suppress(NotFound):
        w.client.remove_snapshot(r2.snapshot)
    usage = {u.key: u for u in disk_usage(w.client, store)}
    assert usage[k2].vanished and usage[k2].size == 0
