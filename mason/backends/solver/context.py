"""The build's context the op runners get (:class:`SolveContext`): the leased client, the
executor, secrets, events, the cancel token, and what a step makes the first time it needs it
(cache mounts, the network pool, the registry client)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from mason.backends.containerd.client import AlreadyExists, Client, NotFound
from mason.backends.containerd.exec import Executor
from mason.backends.solver.events import EventSink, Warning
from mason.backends.solver.options import SolveOptions
from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import CancelToken

if TYPE_CHECKING:
    from mason.backends.solver.solver import Solver

SNAPSHOT_RESOURCE = "snapshots/overlayfs"
CONTENT_RESOURCE = "content"


class SolveContext:
    """What the op runners get: the leased client, the executor, secrets, events, the
    cancel token. One per build."""

    def __init__(self, solver: "Solver", client: Client, executor: Executor, opts: SolveOptions,
                 events: EventSink, tmpdir: Path, lease: str = ""):
        self.solver = solver
        self.client = client
        self.lease = lease
        self.executor = executor
        self.opts = opts
        self.store = solver.store
        if opts.secrets is None:
            from mason.backends.solver.secrets import Secrets

            self.secrets = Secrets()
        else:
            self.secrets = cast("Secrets", opts.secrets)
        self.entitlements = set(opts.entitlements)
        self.events = events
        self.token = opts.cancel or CancelToken()
        self.tmpdir = tmpdir
        self.started = time.time()  # results recorded since are this build's own (see Solve._lookup)
        self._cache_mounts = self._network = None
        self._registry = opts.registry
        self._lock = threading.Lock()

    # made when a step first needs them: a fully cached build imports no exec machinery
    @property
    def cache_mounts(self):
        with self._lock:
            if self._cache_mounts is None:
                from mason.backends.solver.mounts import CacheMounts

                rc = self.opts.remote_cache
                self._cache_mounts = CacheMounts(self.solver.root, restore=getattr(rc, "restore_mount", None))
            return self._cache_mounts

    @property
    def network(self):
        with self._lock:
            if self._network is None:
                from mason.backends.solver.execop import Network

                events = self.events
                self._network = Network(self.solver.root, lambda m: events(Warning(m)), self.opts.network_default)
            return self._network

    def close_network(self) -> None:
        """Destroy the build's pool of prepared namespaces and wait for the teardowns (a failure
        is a warning); nothing to do if no step asked for a network."""
        with self._lock:
            net = self._network
        if net is not None:
            net.close()

    def hold(self, result: Result) -> None:
        """Put a cached result's snapshots and blobs into this build's lease (before using
        them: a concurrent ``mason prune`` leaves leased things alone)."""
        if not self.lease:
            return
        c = self.solver.client
        for s in _chain_heads(result):
            with contextlib.suppress(AlreadyExists, NotFound):
                c.add_lease_resource(self.lease, s, SNAPSHOT_RESOURCE)
        for b in result.blobs():
            with contextlib.suppress(AlreadyExists, NotFound):
                c.add_lease_resource(self.lease, b, CONTENT_RESOURCE)

    def registry(self):
        with self._lock:
            if self._registry is None:
                from mason.backends.sources.registry import RegistryClient

                self._registry = RegistryClient(insecure_registries=self.opts.insecure_registries)
            return self._registry


def _chain_heads(result: Result) -> list[str]:
    """The snapshots whose lease keeps all of ``result``'s alive: a leased snapshot keeps its
    parents (containerd's GC and ``mason prune`` both walk parents), and a step's snapshot is
    prepared on its input's, so a linear chain needs only its top; a merge adds the heads of
    the other inputs' chains. (One lease call per head instead of one per layer.)"""
    from mason.backends.exporters.layer import SnapshotDiff

    heads = [result.snapshot] if result.snapshot else []
    cur = result.snapshot or None
    for item in reversed(result.chain):
        if not isinstance(item, SnapshotDiff):
            continue
        if item.upper != cur:
            heads.append(item.upper)
        cur = item.lower
    return heads


__all__ = ["SolveContext", "SNAPSHOT_RESOURCE", "CONTENT_RESOURCE"]
