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
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mason.backends.containerd.client import (
    GC_EXPIRE,
    SNAPSHOTTER,
    Client,
    ContainerdError,
    Image,
    NotFound,
    SnapshotInfo,
)
from mason.backends.containerd.exec import OWNER_LABEL, _owner_alive, _process_identity, reap_orphans
from mason.backends.exporters.image import parse_time
from mason.backends.exporters.layer import GC_REF_CONTENT
from mason.backends.solver.cachekey import cache_lease_name
from mason.backends.solver.store import Cancelled as ClaimHeld
from mason.backends.solver.store import Record, ResultStore
from mason.ir.errors import MasonError

__all__ = ["UsageRecord", "UsageTotals", "PruneReport", "disk_usage", "usage_totals", "prune",
           "parse_size", "parse_duration", "parse_filters", "lease_is_stale", "snapshot_usage",
           "CACHE_LEASE"]

CACHE_LEASE = "mason-cache"  # the solver's (solver.CACHE_LEASE; not imported: solver imports the world)
SNAPSHOT_RESOURCE = f"snapshots/{SNAPSHOTTER}"
CONTENT_RESOURCE = "content"
GC_ROOT = "containerd.io/gc.root"
GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
LAYER_REF = f"{GC_REF_CONTENT}.mason.layer."
RESULT_SNAPSHOT = re.compile(r"^mason-ck-([0-9a-f]{64})-(\d+)$")


# -- containerd calls the client does not have yet --------------------------------------------
# TODO(containerd client): Client.list_lease_resources / delete_lease_resource /
# list_container_snapshots / snapshot_usage; until then the client's own stubs and metadata.

def _lease_resources(client: Client, lease_id: str) -> set[tuple[str, str]]:
    fn = getattr(client, "list_lease_resources", None)
    if fn is not None:
        return set(fn(lease_id))
    pb = client.pb.leases
    r = client._call(f"list resources of lease {lease_id}", client._leases.ListResources,
                     pb.ListResourcesRequest(id=lease_id))
    return {(x.id, x.type) for x in r.resources}


def _delete_lease_resource(client: Client, lease_id: str, rid: str, rtype: str) -> None:
    fn = getattr(client, "delete_lease_resource", None)
    if fn is not None:
        fn(lease_id, rid, rtype)
        return
    pb = client.pb.leases
    req = pb.DeleteResourceRequest(id=lease_id, resource=pb.Resource(id=rid, type=rtype))
    client._call(f"remove {rtype} {rid} from lease {lease_id}", client._leases.DeleteResource, req)


def _container_snapshots(client: Client) -> set[str]:
    fn = getattr(client, "list_container_snapshots", None)
    if fn is not None:
        return set(fn())
    r = client._call("list containers", client._containers.List, client.pb.containers.ListContainersRequest())
    return {c.snapshot_key for c in r.containers if c.snapshot_key and c.snapshotter in ("", SNAPSHOTTER)}


def _disk_usage(path: str) -> int:
    """Bytes allocated under ``path`` (blocks × 512, each inode once), as containerd counts."""
    seen: set[tuple[int, int]] = set()
    total = 0
    todo = [path]
    while todo:
        p = todo.pop()
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        if os.path.isdir(p) and not os.path.islink(p):
            with contextlib.suppress(OSError):
                todo.extend(os.path.join(p, n) for n in os.listdir(p))
    return total


def snapshot_usage(client: Client, info: SnapshotInfo) -> int:
    """Bytes a snapshot itself holds (its own layer, not its parents'): containerd's
    Snapshots.Usage when the client offers it, else a walk of the snapshot's own directory
    (a committed snapshot's is the first ``lowerdir`` of a view, or a one-layer view's bind
    source; an active one's is its ``upperdir``). 0 when it cannot be measured."""
    fn = getattr(client, "snapshot_usage", None)
    if fn is not None:
        with contextlib.suppress(ContainerdError):
            return int(fn(info.name))
        return 0
    try:
        if info.kind == "active":
            mounts = client.mounts(info.name)
            return _disk_usage(_own_dir(mounts, "upperdir")) if mounts else 0
        if info.kind != "committed":
            return 0
        key = f"mason-du-view-{os.getpid()}-{time.monotonic_ns()}"
        try:
            mounts = client.view(key, info.name)
            return _disk_usage(_own_dir(mounts, "lowerdir")) if mounts else 0
        finally:
            with contextlib.suppress(ContainerdError):
                client.remove_snapshot(key)
    except (ContainerdError, OSError):
        return 0


def _own_dir(mounts, option: str) -> str:
    m = mounts[0]
    if m.type == "bind":
        return m.source
    for o in m.options:
        if o.startswith(option + "="):
            return o.split("=", 1)[1].split(":", 1)[0]
    return ""


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


# -- what references what ---------------------------------------------------------------------

def lease_is_stale(labels: dict[str, str], now: float | None = None) -> bool:
    """Expired (``gc.expire`` passed) or owned by a process that is gone."""
    now = time.time() if now is None else now
    exp = parse_time(labels.get(GC_EXPIRE))
    if exp is not None and exp <= now:
        return True
    owner = labels.get(OWNER_LABEL)
    return bool(owner) and not _owner_alive(owner)


def _label_refs(labels: dict[str, str]) -> tuple[list[str], list[str]]:
    snaps, blobs = [], []
    for k, v in labels.items():
        if k.startswith(GC_REF_CONTENT):
            blobs.append(v)
        elif k.startswith(GC_REF_SNAPSHOT) and k[len(GC_REF_SNAPSHOT):].split("/", 1)[0] == SNAPSHOTTER:
            snaps.append(v)
    return snaps, blobs


@dataclass
class _Namespace:
    """One look at the namespace: every snapshot, blob, lease, image and container snapshot."""

    snapshots: dict[str, SnapshotInfo]
    content: dict[str, int]  # digest -> size
    content_labels: dict[str, dict[str, str]]
    leases: dict[str, dict[str, str]]
    images: list[Image]
    container_snapshots: set[str]

    @classmethod
    def read(cls, client: Client) -> "_Namespace":
        content = client.list_content()
        return cls({s.name: s for s in client.list_snapshots()}, {c.digest: c.size for c in content},
                   {c.digest: dict(c.labels) for c in content}, client.list_leases(), client.list_images(),
                   _container_snapshots(client))

    def closure(self, snaps: Iterable[str], blobs: Iterable[str]) -> tuple[set[str], set[str]]:
        """Everything reachable from ``snaps`` and ``blobs`` the way containerd's GC walks:
        snapshot parents and ``gc.ref.*`` labels on snapshots and blobs."""
        out_s: set[str] = set()
        out_b: set[str] = set()
        todo_s, todo_b = [s for s in snaps if s in self.snapshots], [b for b in blobs if b in self.content]
        while todo_s or todo_b:
            while todo_s:
                s = todo_s.pop()
                if s in out_s:
                    continue
                out_s.add(s)
                info = self.snapshots[s]
                more_s, more_b = _label_refs(dict(info.labels))
                if info.parent:
                    more_s.append(info.parent)
                todo_s += [x for x in more_s if x in self.snapshots and x not in out_s]
                todo_b += [x for x in more_b if x in self.content and x not in out_b]
            while todo_b:
                b = todo_b.pop()
                if b in out_b:
                    continue
                out_b.add(b)
                more_s, more_b = _label_refs(self.content_labels[b])
                todo_s += [x for x in more_s if x in self.snapshots and x not in out_s]
                todo_b += [x for x in more_b if x in self.content and x not in out_b]
        return out_s, out_b

    def ancestors(self, snaps: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for s in snaps:
            while s and s in self.snapshots and s not in out:
                out.add(s)
                s = self.snapshots[s].parent
        return out

    def roots(self, client: Client, now: float, cache_lease: str = CACHE_LEASE) -> tuple[set[str], set[str]]:
        """What in-flight work holds: non-stale leases other than the cache lease, containers,
        ``gc.root`` objects, non-committed snapshots of live mason processes."""
        snaps, blobs = set(self.container_snapshots), set()
        for lid, labels in self.leases.items():
            if lid in (CACHE_LEASE, cache_lease) or lease_is_stale(labels, now):
                continue
            with contextlib.suppress(NotFound):
                for rid, rtype in _lease_resources(client, lid):
                    if rtype == SNAPSHOT_RESOURCE:
                        snaps.add(rid)
                    elif rtype == CONTENT_RESOURCE:
                        blobs.add(rid)
        for s in self.snapshots.values():
            owner = s.labels.get(OWNER_LABEL)
            if GC_ROOT in s.labels or (s.kind != "committed" and owner and _owner_alive(owner)):
                snaps.add(s.name)
        blobs |= {d for d, labels in self.content_labels.items() if GC_ROOT in labels}
        return snaps, blobs

    def image_snapshots(self) -> set[str]:
        """Snapshots a record may not lose because an image is built from them."""
        snaps, blobs = self.closure((), (im.target.digest for im in self.images))
        uppers = {name for name, info in self.snapshots.items()
                  if any(k.startswith(LAYER_REF) and v in blobs for k, v in info.labels.items())}
        return snaps | self.ancestors(uppers)


# -- mason du ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class UsageRecord:
    """One cache record as ``mason du`` shows it. ``size``: bytes its own snapshot holds;
    ``shared``: an image is built from it; ``in_use``: a running build holds it;
    ``vanished``: its snapshot is gone (prune drops the record)."""

    key: str
    description: str
    snapshot: str
    size: int
    created: float
    last_used: float
    shared: bool
    in_use: bool
    vanished: bool = False

    @property
    def id(self) -> str:
        """The key's prefix: 12 hex digits, plus ``/N`` for outputs other than the first."""
        digest, _, index = self.key.partition("/")
        short = digest.split(":", 1)[-1][:12]
        return short if index in ("", "0") else f"{short}/{index}"

    @property
    def reclaimable(self) -> bool:
        return not (self.shared or self.in_use)


@dataclass(frozen=True)
class UsageTotals:
    records: int
    total: int  # bytes, each snapshot once
    reclaimable: int
    shared: int


def usage_totals(records: Iterable[UsageRecord]) -> UsageTotals:
    seen: set[str] = set()
    n = total = reclaimable = shared = 0
    for r in records:
        n += 1
        if r.snapshot in seen:
            continue
        seen.add(r.snapshot)
        total += r.size
        if r.reclaimable:
            reclaimable += r.size
        if r.shared:
            shared += r.size
    return UsageTotals(n, total, reclaimable, shared)


class _Sizes:
    """Sizes of snapshots (their own bytes), measured once each. The views a measurement
    makes live in a lease of this process's own, so a concurrent GC never takes one halfway
    (and a killed ``mason du`` leaves a stale lease, not a pinned view)."""

    def __init__(self, client: Client, ns: _Namespace):
        self.client, self.ns = client, ns
        self.known: dict[str, int] = {}
        self._lease: str | None = None

    def __call__(self, snapshot: str) -> int:
        if not snapshot or snapshot not in self.ns.snapshots:
            return 0
        if snapshot not in self.known:
            if self._lease is None:
                self._lease = self.client.create_lease(
                    expire=3600, labels={"mason.gc": "1", OWNER_LABEL: _process_identity(os.getpid()) or ""})
            lc = self.client.with_lease(self._lease)
            self.known[snapshot] = snapshot_usage(lc, self.ns.snapshots[snapshot])
        return self.known[snapshot]

    def close(self) -> None:
        if self._lease is not None:
            with contextlib.suppress(ContainerdError):
                self.client.delete_lease(self._lease)
            self._lease = None


def disk_usage(client: Client, store: ResultStore, *, now: float | None = None) -> list[UsageRecord]:
    """Every cache record with its size and whether prune may take it; largest first."""
    now = time.time() if now is None else now
    ns = _Namespace.read(client)
    live, _ = ns.roots(client, now, _lease_of(store))
    live = ns.closure(live, ())[0]
    shared = ns.image_snapshots()
    sizes = _Sizes(client, ns)
    try:
        out = [_usage(r, ns, sizes, shared, live) for r in store.records()]
    finally:
        sizes.close()
    out.sort(key=lambda u: (-u.size, -u.last_used, u.key))
    return out


def _usage(r: Record, ns: _Namespace, sizes: _Sizes, shared: set[str], live: set[str]) -> UsageRecord:
    snap = r.result.snapshot
    vanished = any(s not in ns.snapshots for s in r.result.snapshots())
    size = 0 if vanished else (r.size or sizes(snap))
    return UsageRecord(r.key, r.description, snap, size, r.created, r.last_used,
                       bool(snap) and snap in shared, bool(snap) and snap in live, vanished)


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
    ns = _Namespace.read(client)
    lease = _lease_of(store)
    stale = {lid for lid, labels in ns.leases.items()
             if lid not in (CACHE_LEASE, lease) and lease_is_stale(labels, now)}
    live_s, live_b = ns.roots(client, now, lease)
    live = ns.closure(live_s, live_b)[0]
    shared = ns.image_snapshots()
    sizes = _Sizes(client, ns)
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
        if _under_claim(store, r.key.rsplit("/", 1)[0], lambda r=r: store.delete(r.key)):
            report.records.append(_usage(r, ns, sizes, shared, live))  # measured above
    holders = _holders(client, ns, {o.name for o in orphans}) if orphans else {}
    for o in sorted(orphans, key=lambda o: -_depth(ns, o.name)):  # children first
        key = "sha256:" + RESULT_SNAPSHOT.match(o.name).group(1)  # type: ignore[union-attr]
        _under_claim(store, key, lambda o=o: _remove_unrecorded(client, store, o.name, holders.get(o.name, ())))
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


def _choose(records: list[Record], ns: _Namespace, sizes: _Sizes, shared: set[str], live: set[str], *,
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


def _depth(ns: _Namespace, name: str) -> int:
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


def _holders(client: Client, ns: _Namespace, snaps: set[str]) -> dict[str, list[str]]:
    """The leases that hold each of ``snaps``."""
    out: dict[str, list[str]] = {}
    for lid in ns.leases:
        with contextlib.suppress(NotFound):
            for rid, t in _lease_resources(client, lid):
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
            _delete_lease_resource(client, lid, name, SNAPSHOT_RESOURCE)
    with contextlib.suppress(ContainerdError):
        client.remove_snapshot(name)


def _lease_of(store: ResultStore) -> str:
    """The cache lease of the store's state root (:func:`.cachekey.cache_lease_name`)."""
    return cache_lease_name(store.dir.parent)


def _align_cache_lease(client: Client, store: ResultStore, now: float) -> None:
    """Make the cache lease hold what the kept records need: no more (what it held for dropped
    records, or for results never recorded) and no less (repairs a chain's snapshots)."""
    lease = _lease_of(store)
    have = _lease_resources(client, lease)
    want_s, want_b = _needs(store.records())
    extra = [(rid, t) for rid, t in have
             if (t == SNAPSHOT_RESOURCE and rid not in want_s) or (t == CONTENT_RESOURCE and rid not in want_b)]
    if extra:
        # A build between protect() and put() holds its new snapshot in its own lease: keep
        # those. Leases are read after the records, then the records once more, so a result
        # recorded meanwhile is seen by one of the two looks.
        ns = _Namespace.read(client)
        in_flight_s, in_flight_b = ns.roots(client, now, lease)
        want_s, want_b = _needs(store.records())
        for rid, t in extra:
            held = rid in (in_flight_s | want_s if t == SNAPSHOT_RESOURCE else in_flight_b | want_b)
            exists = rid in (ns.snapshots if t == SNAPSHOT_RESOURCE else ns.content)
            if held and exists:
                continue
            with contextlib.suppress(NotFound):
                _delete_lease_resource(client, lease, rid, t)
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


# -- option values ----------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """``500MB``, ``2GiB``, ``1.5g``, ``1024``: bytes (kB/MB/GB/TB powers of 1000, as mason
    prints sizes; KiB/MiB/GiB/TiB powers of 1024)."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise MasonError(f"invalid size {text!r}: expected a number of bytes with an optional unit "
                         "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 500MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_duration(text: str) -> float:
    """``24h``, ``90m``, ``1h30m``, ``7d``, ``1.5h``: seconds (units ms, s, m, h, d, w)."""
    s = text.strip()
    parts = list(_DURATION.finditer(s))
    if not s or "".join(p.group(0) for p in parts) != s:
        raise MasonError(f"invalid duration {text!r}: expected a duration such as 24h, 90m or 1h30m "
                         "(units: ms, s, m, h, d, w)")
    return sum(float(p.group(1)) * _SECONDS[p.group(2)] for p in parts)


def parse_filters(filters: Iterable[str]) -> dict[str, float]:
    """``--filter`` values (``until=DURATION``) as keyword arguments of :func:`prune`."""
    out: dict[str, float] = {}
    for f in filters:
        name, sep, value = f.partition("=")
        if not sep or name.strip() != "until":
            raise MasonError(f"invalid filter {f!r}: the supported filter is until=DURATION (e.g. until=24h)")
        out["until"] = parse_duration(value)
    return out
