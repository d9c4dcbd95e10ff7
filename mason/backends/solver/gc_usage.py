"""``mason du``: every cache record with its own size and whether prune may take it
(:func:`disk_usage`), and the totals (:func:`usage_totals`)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mason.backends.containerd.client import Client, ContainerdError
from mason.backends.containerd.exec import OWNER_LABEL, _process_identity
from mason.backends.solver.gc_refs import Namespace, cache_lease_of, snapshot_usage
from mason.backends.solver.store import Record, ResultStore


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


class Sizes:
    """Sizes of snapshots (their own bytes), measured once each. The views a measurement
    makes live in a lease of this process's own, so a concurrent GC never takes one halfway
    (and a killed ``mason du`` leaves a stale lease, not a pinned view)."""

    def __init__(self, client: Client, ns: Namespace):
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
    ns = Namespace.read(client)
    live, _ = ns.roots(client, now, cache_lease_of(store))
    live = ns.closure(live, ())[0]
    shared = ns.image_snapshots()
    sizes = Sizes(client, ns)
    try:
        out = [usage_of(r, ns, sizes, shared, live) for r in store.records()]
    finally:
        sizes.close()
    out.sort(key=lambda u: (-u.size, -u.last_used, u.key))
    return out


def usage_of(r: Record, ns: Namespace, sizes: Sizes, shared: set[str], live: set[str]) -> UsageRecord:
    snap = r.result.snapshot
    vanished = any(s not in ns.snapshots for s in r.result.snapshots())
    size = 0 if vanished else (r.size or sizes(snap))
    return UsageRecord(r.key, r.description, snap, size, r.created, r.last_used,
                       bool(snap) and snap in shared, bool(snap) and snap in live, vanished)


__all__ = ["UsageRecord", "UsageTotals", "usage_totals", "disk_usage", "Sizes", "usage_of"]
