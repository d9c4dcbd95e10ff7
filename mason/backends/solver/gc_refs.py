"""What references what in containerd's namespace, for :mod:`.gc`: one look at it
(:class:`Namespace`: snapshots, blobs, leases, images, container snapshots), the closure of
references as containerd's GC walks them, what in-flight work holds, what images are built from;
the containerd calls the client does not have yet, and a snapshot's own size."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mason.backends.containerd.client import (
    GC_EXPIRE,
    SNAPSHOTTER,
    Client,
    ContainerdError,
    Image,
    NotFound,
    SnapshotInfo,
)
from mason.backends.containerd.exec import OWNER_LABEL, _owner_alive
from mason.backends.exporters.image import parse_time
from mason.backends.exporters.layer import GC_REF_CONTENT
from mason.backends.solver.cachekey import cache_lease_name
from mason.backends.solver.store import ResultStore

CACHE_LEASE = "mason-cache"  # the solver's (solver.CACHE_LEASE; not imported: solver imports the world)
SNAPSHOT_RESOURCE = f"snapshots/{SNAPSHOTTER}"
CONTENT_RESOURCE = "content"
GC_ROOT = "containerd.io/gc.root"
GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
LAYER_REF = f"{GC_REF_CONTENT}.mason.layer."
RESULT_SNAPSHOT = re.compile(r"^mason-ck-([0-9a-f]{64})-(\d+)$")


# -- containerd calls (the client's; snapshot_usage below still measures on disk)

def lease_resources(client: Client, lease_id: str) -> set[tuple[str, str]]:
    return set(client.list_lease_resources(lease_id))


def delete_lease_resource(client: Client, lease_id: str, rid: str, rtype: str) -> None:
    client.delete_lease_resource(lease_id, rid, rtype)


def container_snapshots(client: Client) -> set[str]:
    return set(client.list_container_snapshots())


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
    """Bytes a snapshot itself holds (its own layer, not its parents'): a walk of the
    snapshot's own directory (a committed snapshot's is the first ``lowerdir`` of a view, or a
    one-layer view's bind source; an active one's is its ``upperdir``), counted as containerd's
    Snapshots.Usage counts. 0 when it cannot be measured."""
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


# -- what references what ---------------------------------------------------------------------

def lease_is_stale(labels: dict[str, str], now: float | None = None) -> bool:
    """Expired (``gc.expire`` passed) or owned by a process that is gone."""
    now = time.time() if now is None else now
    exp = parse_time(labels.get(GC_EXPIRE))
    if exp is not None and exp <= now:
        return True
    owner = labels.get(OWNER_LABEL, "")
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
class Namespace:
    """One look at the namespace: every snapshot, blob, lease, image and container snapshot."""

    snapshots: dict[str, SnapshotInfo]
    content: dict[str, int]  # digest -> size
    content_labels: dict[str, dict[str, str]]
    leases: dict[str, dict[str, str]]
    images: list[Image]
    container_snapshots: set[str]

    @classmethod
    def read(cls, client: Client) -> "Namespace":
        content = client.list_content()
        return cls({s.name: s for s in client.list_snapshots()}, {c.digest: c.size for c in content},
                   {c.digest: dict(c.labels) for c in content}, client.list_leases(), client.list_images(),
                   container_snapshots(client))

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
                for rid, rtype in lease_resources(client, lid):
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


def cache_lease_of(store: ResultStore) -> str:
    """The cache lease of the store's state root (:func:`.cachekey.cache_lease_name`)."""
    return cache_lease_name(store.dir.parent)


__all__ = ["CACHE_LEASE", "SNAPSHOT_RESOURCE", "CONTENT_RESOURCE", "RESULT_SNAPSHOT", "Namespace",
           "lease_resources", "delete_lease_resource", "snapshot_usage", "lease_is_stale", "cache_lease_of"]
