"""Garbage collection of the build cache: what it holds (:func:`disk_usage`, ``mason du``) and
freeing it (:func:`prune`, ``mason prune``).

What keeps what, in containerd's terms (the client's namespace, ``mason``):

* the **cache lease** (``mason-cache``) holds the snapshots and base blobs of the result
  store's records; prune makes it hold exactly what the kept records need
  (``Result.snapshots()`` / ``Result.blobs()``);
* **images** hold their content graph (``containerd.io/gc.ref.content.*`` labels) and, for
  unpacked base images, snapshots (``containerd.io/gc.ref.snapshot.overlayfs``). A record is
  *shared* with an image when its snapshot is one the image holds, one whose remembered layer
  (the image writer's ``gc.ref.content.mason.layer.*`` label) is one of the image's blobs, or
  a parent of either;
* every other lease is a build's (or an export's) work **in flight** unless it is *stale*: its
  ``containerd.io/gc.expire`` has passed, or its ``mason.owner`` label (``pid:starttime``, as
  on containers) names a process that is gone. Nothing an in-flight lease holds is touched;
* snapshot parents and ``gc.ref.*`` labels are followed as containerd's GC follows them.

:func:`prune` reconciles, applies the policy, then lets containerd collect:

1. containers, tasks and active snapshots of dead mason processes go (``reap_orphans``);
2. records whose snapshots vanished are dropped; the policy (``all`` / ``until`` /
   ``keep_storage``) drops more, never a shared or in-flight one, each under its key's claim
   (a build computing that key right now keeps it);
3. result snapshots (``mason-ck-…``) that no record names — a build killed between commit and
   record — are removed when their committing process is gone and nobody holds their key;
4. the cache lease is aligned with the kept records; stale leases are deleted;
5. containerd's GC runs synchronously (a lease deleted with ``sync``), so everything nothing
   references any more goes at once, atomically with respect to concurrent builds' leases.

What was freed is what existed before and not after; sizes are measured before.

The parts, each using only those listed before it: :mod:`.gc_options` (option values),
:mod:`.gc_refs` (what references what), :mod:`.gc_usage` (``mason du``), this module (prune).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mason.backends.containerd.client import Client, ContainerdError, NotFound, SnapshotInfo
from mason.backends.containerd.exec import OWNER_LABEL, _owner_alive, reap_orphans
from mason.backends.solver.gc_options import parse_duration, parse_filters, parse_size
from mason.backends.solver.gc_refs import (
    CACHE_LEASE,
    CONTENT_RESOURCE,
    RESULT_SNAPSHOT,
    SNAPSHOT_RESOURCE,
    Namespace,
    cache_lease_of,
    delete_lease_resource,
    lease_is_stale,
    lease_resources,
    snapshot_usage,
)
from mason.backends.solver.gc_usage import Sizes, UsageRecord, UsageTotals, disk_usage, usage_of, usage_totals
from mason.backends.solver.store import Cancelled as ClaimHeld
from mason.backends.solver.store import Record, ResultStore
from mason.ir.errors import MasonError

__all__ = ["UsageRecord", "UsageTotals", "PruneReport", "disk_usage", "usage_totals", "prune",
           "parse_size", "parse_duration", "parse_filters", "lease_is_stale", "snapshot_usage",
           "CACHE_LEASE"]


def _sweep_host(root: Path) -> None:
    """What a dead build left on the host under ``root`` (after :func:`reap_orphans` killed its
    tasks): its step networks (netns mounts), its task rootfs mounts (the default io dir) and its
    scratch directory (with the snapshot views mounted there)."""
    from mason.backends.containerd import rootfs
    from mason.backends.containerd.network import cleanup_stale
    from mason.backends.solver.tmpdirs import sweep_build_dirs

    with contextlib.suppress(MasonError, OSError):
        cleanup_stale(root)
    with contextlib.suppress(MasonError, OSError):
        rootfs.sweep_stale(root / "solver" / "io" / "rootfs", _owner_alive)
    with contextlib.suppress(MasonError, OSError):
        sweep_build_dirs(root / "solver" / "tmp", _owner_alive)


# -- mason prune ------------------------------------------------------------------------------

@dataclass
class PruneReport:
    """What :func:`prune` freed. ``records``: the dropped records (``vanished``: those of them
    whose snapshot was already gone); ``snapshots`` / ``content``: what left containerd."""

    records: list[UsageRecord] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    snapshot_bytes: int = 0
    content_bytes: int = 0

    @property
    def freed(self) -> int:
        return self.snapshot_bytes + self.content_bytes

    @property
    def vanished(self) -> int:
        return sum(1 for r in self.records if r.vanished)


def prune(client: Client, store: ResultStore, *, all: bool = False, keep_storage: int | None = None,
          until: float | None = None, now: float | None = None) -> PruneReport:
    """Free the build cache by policy, then everything no record, image or running build
    references.

    Without a policy only garbage goes: records whose snapshots vanished, snapshots and blobs
    of crashed builds, stale leases. ``until`` (seconds): also every record last used longer
    ago; ``all``: every record; ``keep_storage`` (bytes): records, least recently used first,
    until what the records keep on disk is at most that many bytes (with ``until``, only
    among the old ones). Records an image is built from, or a running build holds, always stay.
    """
    now = time.time() if now is None else now
    ns = Namespace.read(client)
    lease = cache_lease_of(store)
    stale = {lid for lid, labels in ns.leases.items()
             if lid not in (CACHE_LEASE, lease) and lease_is_stale(labels, now)}
    live_s, live_b = ns.roots(client, now, lease)
    live = ns.closure(live_s, live_b)[0]
    shared = ns.image_snapshots()
    sizes = Sizes(client, ns)
    records = store.records()

    # -- plan ------------------------------------------------------------------------------
    gone = [r for r in records if any(s not in ns.snapshots for s in r.result.snapshots())]
    gone = [r for r in gone if not _all_exist(client, r.result.snapshots())]  # not new since the look
    usable = [r for r in records if r not in gone]
    doomed = gone + _choose(usable, ns, sizes, shared, live, all=all, keep_storage=keep_storage,
                            until=until, now=now)
    keep_keys = {r.key for r in records} - {r.key for r in doomed}
    want_s, want_b = _needs(r for r in records if r.key in keep_keys)
    orphans = [s for s in ns.snapshots.values()
               if s.kind == "committed" and RESULT_SNAPSHOT.match(s.name) and s.name not in want_s
               and _orphan_free(s, live)]
    # measure what is likely to go while it is still there
    expect_s, _ = ns.closure(ns.ancestors(want_s) | (live - {o.name for o in orphans}) | shared,
                             want_b | live_b)
    try:
        for name in set(ns.snapshots) - expect_s:
            sizes(name)
        for r in doomed:
            sizes(r.result.snapshot)
    finally:
        sizes.close()

    # -- act ---------------------------------------------------------------------------------
    report = PruneReport()
    with contextlib.suppress(MasonError):
        reap_orphans(client)
    _sweep_host(store.dir.parent)
    for r in doomed:
        if _under_claim(store, r.key.rsplit("/", 1)[0], functools.partial(store.delete, r.key)):
            report.records.append(usage_of(r, ns, sizes, shared, live))  # measured above
    holders = _holders(client, ns, {o.name for o in orphans}) if orphans else {}
    for o in sorted(orphans, key=lambda o: -_depth(ns, o.name)):  # children first
        key = "sha256:" + RESULT_SNAPSHOT.match(o.name).group(1)  # type: ignore[union-attr]
        _under_claim(store, key, functools.partial(_remove_unrecorded, client, store, o.name, holders.get(o.name, ())))
    if lease in ns.leases:
        _align_cache_lease(client, store, now)
    for lid in sorted(stale):  # reap_orphans may have deleted dead builds' leases already
        with contextlib.suppress(NotFound):
            client.delete_lease(lid)
    _collect(client)

    after_s = {s.name for s in client.list_snapshots()}
    after_b = {c.digest for c in client.list_content()}
    report.leases = sorted(stale - set(client.list_leases()))
    report.snapshots = sorted(set(ns.snapshots) - after_s)
    report.content = sorted(set(ns.content) - after_b)
    report.snapshot_bytes = sum(sizes.known.get(s, 0) for s in report.snapshots)
    report.content_bytes = sum(ns.content[d] for d in report.content)
    return report


def _all_exist(client: Client, snapshots: Iterable[str]) -> bool:
    return all(client.snapshot_exists(s) for s in snapshots)


def _needs(records: Iterable[Record]) -> tuple[set[str], set[str]]:
    snaps: set[str] = set()
    blobs: set[str] = set()
    for r in records:
        snaps |= r.result.snapshots()
        blobs |= r.result.blobs()
    return snaps, blobs


def _choose(records: list[Record], ns: Namespace, sizes: Sizes, shared: set[str], live: set[str], *,
            all: bool, keep_storage: int | None, until: float | None, now: float) -> list[Record]:
    """The records the policy drops (``records`` is in least-recently-used order)."""
    def candidate(r: Record) -> bool:
        snap = r.result.snapshot
        if snap and (snap in shared or snap in live):
            return False
        return until is None or r.last_used < now - until

    cands = [r for r in records if candidate(r)]
    if keep_storage is None:
        return cands if (all or until is not None) else []
    # What only the records keep on disk: each snapshot they need (with its parents) once,
    # unless an image or a running build holds it anyway. Drop the
    # least recently used record whose own snapshot no other kept record needs — dropping a
    # parent's record first would free nothing — until the total fits.
    need = {r.key: ns.ancestors(r.result.snapshots()) for r in records}
    refs: dict[str, int] = {}
    for r in records:
        for s in need[r.key]:
            refs[s] = refs.get(s, 0) + 1
    own: dict[str, int] = {}
    for r in records:
        own[r.result.snapshot] = own.get(r.result.snapshot, 0) + 1
    held = shared | live  # stays whatever prune does: not the cache's storage
    total = sum(sizes(s) for s in refs if s not in held)
    dropped: list[Record] = []
    left = list(cands)
    while total > keep_storage:
        pick = next((r for r in left if r.result.snapshot
                     and refs.get(r.result.snapshot, 0) == own[r.result.snapshot]), None)
        if pick is None:
            break
        left.remove(pick)
        dropped.append(pick)
        own[pick.result.snapshot] -= 1
        for s in need[pick.key]:
            refs[s] -= 1
            if refs[s] == 0 and s not in held:
                total -= sizes(s)
    return dropped


def _orphan_free(s: SnapshotInfo, live: set[str]) -> bool:
    """A result snapshot without a record may go unless a running build may still record it:
    its committing process is alive, or (without an owner label) an in-flight lease holds it.
    A dead committer's snapshot goes even from an unexpired lease: nothing alive made it. Only
    the older, nonce-less result names are swept this way: a step result now gets a fresh name
    per run, and another state root on the same containerd may hold such a snapshot under its
    own cache lease, which containerd's GC (run by :func:`prune`) respects."""
    owner = s.labels.get(OWNER_LABEL)
    if owner:
        return not _owner_alive(owner)
    return s.name not in live


def _depth(ns: Namespace, name: str) -> int:
    return len(ns.ancestors([name]))


def _under_claim(store: ResultStore, key: str, action: Callable[[], object]) -> bool:
    """Run ``action`` holding ``key``'s claim; False (and no action) if a build holds it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(store.claim(key, lambda: True))
        except ClaimHeld:
            return False
        action()
        return True


def _holders(client: Client, ns: Namespace, snaps: set[str]) -> dict[str, list[str]]:
    """The leases that hold each of ``snaps``."""
    out: dict[str, list[str]] = {}
    for lid in ns.leases:
        with contextlib.suppress(NotFound):
            for rid, t in lease_resources(client, lid):
                if t == SNAPSHOT_RESOURCE and rid in snaps:
                    out.setdefault(rid, []).append(lid)
    return out


def _remove_unrecorded(client: Client, store: ResultStore, name: str, leases: Iterable[str]) -> None:
    """Let go of a result snapshot no record names: out of every lease (the dead build's, the
    cache lease), then removed; if containerd refuses the removal (a child it still counts),
    the GC that follows takes it, as nothing references it any more."""
    # under the claim: a record may have appeared since the plan (a build finished the step)
    if any(name in r.result.snapshots() for r in store.records()):
        return
    for lid in leases:
        with contextlib.suppress(NotFound):
            delete_lease_resource(client, lid, name, SNAPSHOT_RESOURCE)
    with contextlib.suppress(ContainerdError):
        client.remove_snapshot(name)


def _align_cache_lease(client: Client, store: ResultStore, now: float) -> None:
    """Make the cache lease hold what the kept records need: no more (what it held for dropped
    records, or for results never recorded) and no less (repairs a chain's snapshots)."""
    lease = cache_lease_of(store)
    have = lease_resources(client, lease)
    want_s, want_b = _needs(store.records())
    extra = [(rid, t) for rid, t in have
             if (t == SNAPSHOT_RESOURCE and rid not in want_s) or (t == CONTENT_RESOURCE and rid not in want_b)]
    if extra:
        # A build between protect() and put() holds its new snapshot in its own lease: keep
        # those. Leases are read after the records, then the records once more, so a result
        # recorded meanwhile is seen by one of the two looks.
        ns = Namespace.read(client)
        in_flight_s, in_flight_b = ns.roots(client, now, lease)
        want_s, want_b = _needs(store.records())
        for rid, t in extra:
            held = rid in (in_flight_s | want_s if t == SNAPSHOT_RESOURCE else in_flight_b | want_b)
            exists = rid in (ns.snapshots if t == SNAPSHOT_RESOURCE else ns.content)
            if held and exists:
                continue
            with contextlib.suppress(NotFound):
                delete_lease_resource(client, lease, rid, t)
    have_s = {rid for rid, t in have if t == SNAPSHOT_RESOURCE}
    have_b = {rid for rid, t in have if t == CONTENT_RESOURCE}
    for s in sorted(want_s - have_s):
        if client.snapshot_exists(s):
            client.add_lease_resource(lease, s, SNAPSHOT_RESOURCE)
    for b in sorted(want_b - have_b):
        if client.content_exists(b):
            client.add_lease_resource(lease, b, CONTENT_RESOURCE)


def _collect(client: Client) -> None:
    """Run containerd's garbage collector now and wait for it (a lease deleted with ``sync``)."""
    lease = client.create_lease(expire=60, labels={"mason.gc": "1"})
    client.delete_lease(lease, sync=True)

