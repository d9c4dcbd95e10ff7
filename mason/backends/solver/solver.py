"""The solve loop: execute an LLB graph on containerd, every reachable op once, inputs first,
independent ops in parallel (:func:`.scheduler.run_dag`), with a persistent cache.

Per vertex (memoized by digest):

1. its **cache key** (:mod:`.cachekey`) from the op and its inputs' keys (sources: the loader's
   content checksum or pinned digest; a ConfigOp's key is its input's: it changes no file);
2. unless ``--no-cache`` / ``ignore_cache``, a **lookup** in the result store (:mod:`.store`):
   a hit whose snapshots still exist is the result — no container starts;
3. otherwise, under the key's inter-process claim (a second build waits, then hits), it
   **runs** (:mod:`.execop`, :mod:`.mergediff`; sources through ``backends/sources``), the new
   snapshots are committed under fresh names (the key plus a nonce, like BuildKit's random
   snapshot IDs: a step that ran again never finds an earlier run's snapshot in its place),
   protected by the long-lived cache lease, and recorded — replacing the key's earlier record
   in this root's store (its snapshot stays until ``mason prune`` unless something references
   it). A step that ignores the cache (``--no-cache``, ``--no-cache-filter``) still reuses a
   result recorded *during this build* (by a concurrent build or a twin vertex with the same
   key): it is as new as the build.

Everything a build creates happens inside one lease (``containerd.io/gc.expire`` as a safety
net if mason dies); the lease goes at the end, so whatever was not committed and recorded is
garbage for containerd's GC. The first failure cancels the rest: running tasks are killed,
their snapshots removed; Ctrl-C the same.

The modules, each using only those above it: :mod:`.names` (progress names, stages),
:mod:`.options` (what a solve is asked and answers), :mod:`.context` (:class:`SolveContext`, what
the op runners get), :mod:`.keyinputs` (what a key hashes besides the op), :mod:`.phases` (one
solve: keys, plan, run), :mod:`.session` (:class:`BuildSession`), and this one (:class:`Solver`,
which re-exports the public names).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from mason.backends.containerd.client import AlreadyExists, Client, Unavailable
from mason.backends.containerd.exec import OWNER_LABEL, Executor, _owner_alive, reap_orphans, reap_owned
from mason.backends.fstree import remove_tree
from mason.backends.solver import cachekey
from mason.backends.solver.context import CONTENT_RESOURCE, SNAPSHOT_RESOURCE, SolveContext
from mason.backends.solver.events import EventSink, null_sink
from mason.backends.solver.names import normalize_stage, stage_of, vertex_name
from mason.backends.solver.options import LocalDir, SolvedOutput, SolvedVertex, SolveOptions
from mason.backends.solver.results import Result
from mason.backends.solver.session import BuildSession
from mason.backends.solver.store import ResultStore
from mason.ir.errors import MasonError
from mason.ir.graph import Graph

CACHE_LEASE = "mason-cache"  # the old, per-namespace name; see cachekey.cache_lease_name
BUILD_LEASE_EXPIRE = 24 * 3600.0


class Solver:
    """Solves graphs on one containerd, with the result store under ``root``."""

    def __init__(self, client: Client, root: str | Path, *, runc_root: str | None = None,
                 io_dir: str | None = None, restart: Callable[[], object] | None = None):
        self.client = client
        # mason's own containerd: how to start it again when it died under a build
        self.restart = restart
        self.root = Path(root)
        self.store = ResultStore(self.root)
        self.runc_root = runc_root
        self.io_dir = io_dir or str(self.root / "solver" / "io")
        # the executor's levers (DESIGN.md "containerd"; bench/containerd_step_bench.py)
        self.group_shims = True
        self.background_delete = True
        self.mount_rootfs = True
        self.cache_lease = cachekey.cache_lease_name(self.root)
        self._cache_lease_ok = False
        self._salt: bytes | None = None

    def salt(self) -> bytes:
        """This root's secret for hashing values in key manifests (env, args): comparable from
        build to build, never reversible from the database alone."""
        if self._salt is None:
            p = self.root / "solver" / "explain.salt"
            try:
                self._salt = p.read_bytes()
            except FileNotFoundError:
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.with_name(f"explain.salt.{os.getpid()}")
                tmp.write_bytes(os.urandom(32))
                os.chmod(tmp, 0o600)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, p)
                tmp.unlink()
                self._salt = p.read_bytes()
        return self._salt

    def close(self) -> None:
        self.store.close()

    # -- the build ------------------------------------------------------------------------

    def solve(self, graph: Graph, outputs: Sequence[str] | None = None, options: SolveOptions | None = None,
              events: EventSink = null_sink) -> dict[str, SolvedOutput]:
        """Solve the named outputs of ``graph`` (all by default) in a build session of its own."""
        with self.session(options, events) as sess:
            return sess.solve(graph, outputs)

    @contextlib.contextmanager
    def session(self, options: SolveOptions | None = None, events: EventSink = null_sink):
        """A build: its lease, executor and secrets, for one or more :meth:`BuildSession.solve`
        calls and the exports after them (``session.client`` is bound to the lease, so nothing
        the build made can be collected before the outputs are written). Everything is released
        at the end of the block."""
        opts = options or SolveOptions()
        self._ensure_cache_lease()
        with contextlib.suppress(MasonError):
            reap_orphans(self.client)
        self._sweep_networks()
        ex = Executor(self.client, io_dir=self.io_dir, runc_root=self.runc_root, group_shims=self.group_shims,
                      background_delete=self.background_delete, mount_rootfs=self.mount_rootfs)
        tmpdir = self._build_dir(ex.owner)
        # mason.owner (pid:starttime, as on containers): prune can tell a dead build's lease
        lease = self.client.create_lease(expire=BUILD_LEASE_EXPIRE,
                                         labels={"mason.build": "1", OWNER_LABEL: ex.owner})
        lc = self.client.with_lease(lease)
        ex.client = lc
        ctx = SolveContext(self, lc, ex, opts, events, tmpdir, lease)
        try:
            yield BuildSession(ctx)
        except BaseException:
            self._recover(ex)
            raise
        finally:
            with contextlib.suppress(BaseException):
                ex.close()
            with contextlib.suppress(Exception):  # Network.close already turns failures into warnings
                ctx.close_network()
            ctx.secrets.close()
            remove_tree(tmpdir, ignore_errors=True)
            with contextlib.suppress(MasonError):
                self.client.delete_lease(lease)

    def _build_dir(self, owner: str) -> Path:
        """This build's scratch directory, after sweeping those of builds that died."""
        from mason.backends.solver.tmpdirs import new_build_dir, sweep_build_dirs

        base = self.root / "solver" / "tmp"
        with contextlib.suppress(OSError):
            sweep_build_dirs(base, _owner_alive)
        return new_build_dir(base, owner)

    def _recover(self, ex: Executor) -> None:
        """After a failed build: if mason's own containerd died under it (killed, crashed), start
        it again — it finds the shims still running the build's steps — and kill and delete
        those steps, so nothing of the build outlives it. One stopped on purpose (``mason daemon
        stop``, which kills the tasks first) stays stopped; another containerd is not ours to
        start: its steps wait for the next mason command's orphan sweep."""
        if self.restart is None:
            return
        try:
            self.client.version()
            return
        except Unavailable:
            pass
        except MasonError:
            return
        with contextlib.suppress(Exception):
            if self.restart() is False:  # stopped on purpose (mason daemon stop): not started again
                return
            self.client.wait_ready(timeout=30)  # the channel reconnects after its back-off
            reap_owned(self.client, ex.owner)

    def _sweep_networks(self) -> None:
        """Tear down the step networks a dead mason left under this root (next to the containerd
        orphan sweep). Without a ``network`` directory there is nothing to import or do."""
        if not (self.root / "network").is_dir():
            return
        from mason.backends.containerd.network import cleanup_stale

        with contextlib.suppress(MasonError, OSError):
            cleanup_stale(self.root)

    def _ensure_cache_lease(self) -> None:
        if self._cache_lease_ok:
            return
        with contextlib.suppress(AlreadyExists):
            self.client.create_lease(self.cache_lease, expire=None,
                                     labels={"mason.cache": "1", "mason.root": os.path.realpath(self.root)})
        self._cache_lease_ok = True

    def protect(self, result: Result, inputs: Iterable[Result] = ()) -> None:
        """Keep ``result``'s new snapshot and blobs alive after the build (the cache lease)."""
        known = {s for r in inputs for s in (r.snapshot,) if s}
        blobs = {b for r in inputs for b in r.blobs()}
        if result.snapshot and result.snapshot not in known:
            with contextlib.suppress(AlreadyExists):
                self.client.add_lease_resource(self.cache_lease, result.snapshot, SNAPSHOT_RESOURCE)
        for b in result.blobs() - blobs:
            with contextlib.suppress(AlreadyExists):
                self.client.add_lease_resource(self.cache_lease, b, CONTENT_RESOURCE)


__all__ = ["Solver", "BuildSession", "SolveOptions", "SolveContext", "SolvedOutput", "SolvedVertex", "LocalDir",
           "vertex_name", "stage_of", "normalize_stage",
           "CACHE_LEASE"]
