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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mason.backends.containerd.client import AlreadyExists, Client, NotFound, Unavailable
from mason.backends.containerd.exec import (
    EXECUTOR_LABEL,
    MANAGED_LABEL,
    OWNER_LABEL,
    Executor,
    reap_orphans,
    reap_owned,
)
from mason.backends.solver import cachekey, entitlements
from mason.backends.solver.events import EventSink, VertexCached, VertexDone, VertexStarted, Warning, null_sink
from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import DEFAULT_JOBS, Cancelled, CancelToken, run_dag
from mason.backends.solver.store import Cancelled as ClaimCancelled
from mason.backends.solver.store import ResultStore
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.imageconfig import empty_image_config
from mason.ir.layers import fold_image_config, layer_chain
from mason.ir.ops import ConfigOp, Copy, DiffOp, ExecOp, FileOp, MergeOp, NetMode, Op, Ref, SourceOp
from mason.ir.urls import redact_text, split_userinfo

CACHE_LEASE = "mason-cache"  # the old, per-namespace name; see cachekey.cache_lease_name
SNAPSHOT_RESOURCE = "snapshots/overlayfs"
CONTENT_RESOURCE = "content"
BUILD_LEASE_EXPIRE = 24 * 3600.0
CUSTOM_NAME = "llb.customname"
STAGE_KEY = "mason.stage"  # the Dockerfile lowering's stage of an op (name, or index)


@dataclass(frozen=True)
class LocalDir:
    """A ``local://NAME`` source: a client directory and the exclude patterns the driver adds
    (the context's ``.dockerignore``) when the op carries none. ``sync``, when set, is called
    with the op's attrs before the directory is first read, and returns the directory to read
    (``mason serve`` fetches the client's files there, filtered as the op asks)."""

    path: str
    exclude: tuple[str, ...] = ()
    sync: Callable[[Mapping[str, str]], str] | None = field(default=None, compare=False)


@dataclass
class SolveOptions:
    jobs: int = DEFAULT_JOBS
    no_cache: bool = False
    entitlements: frozenset[str] = frozenset()
    locals: Mapping[str, LocalDir] = field(default_factory=dict)
    secrets: object | None = None  # a solver.secrets.Secrets
    insecure_registries: tuple[str, ...] = ()
    oci_layouts: Mapping[str, str] = field(default_factory=dict)
    registry: object | None = None  # a RegistryClient to use (else one is made when needed)
    network_default: str = "default"  # LLB's default network: "default" (CNI bridge) or "host"
    no_cache_filter: tuple[str, ...] = ()  # stages whose steps run again (names or indexes)
    explain: bool = False  # compute SolvedOutput.explain (why each step that ran missed)
    target_id: str | None = None  # what "the same target" is for --explain (default: see _target_id)
    cancel: CancelToken | None = None  # set from outside (mason serve: the client went away) to cancel
    # imported remote caches (a mason.backends.cache.importer.RemoteCache): consulted after a
    # local miss; a hit is materialized only when its files are needed
    remote_cache: object | None = None
    # materialize remote hits that are outputs (False: the caller exports them as images and
    # fetches only what it needs, e.g. nothing for a push)
    materialize_outputs: bool = True
    # every step's cgroup limits (--memory bytes, --cpu-quota/--cpu-period µs): how the machine
    # runs the steps, not what they are (no part of a cache key)
    memory: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None


@dataclass(frozen=True)
class SolvedOutput:
    name: str
    result: Result
    image_config: dict | None
    cache_key: str
    explain: tuple[str, ...] = ()  # with SolveOptions.explain: one line per step that ran


@dataclass(frozen=True)
class SolvedVertex:
    """A vertex of a finished solve, for exporting the cache: its cache key, its results
    (empty when it has none: a source, or a step behind a hit whose record is gone), its inputs
    as (vertex digest, output index), and whether its metadata allows exporting it."""

    digest: str
    key: str
    name: str
    kind: str
    outputs: tuple[Result, ...]
    inputs: tuple[tuple[str, int], ...]
    export: bool = True


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
            self.secrets = opts.secrets
        self.entitlements = set(opts.entitlements)
        self.events = events
        self.token = opts.cancel or CancelToken()
        self.tmpdir = tmpdir
        self.started = time.time()  # results recorded since are this build's own (see _Build._lookup)
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
        tmpdir = self.root / "solver" / "tmp" / f"build-{uuid.uuid4().hex[:12]}"
        tmpdir.mkdir(parents=True)
        ex = Executor(self.client, io_dir=self.io_dir, runc_root=self.runc_root, group_shims=self.group_shims,
                      background_delete=self.background_delete, mount_rootfs=self.mount_rootfs)
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
            shutil.rmtree(tmpdir, ignore_errors=True)
            with contextlib.suppress(MasonError):
                self.client.delete_lease(lease)

    def _recover(self, ex: Executor) -> None:
        """After a failed build: if mason's own containerd died under it (killed, crashed), start
        it again — it finds the shims still running the build's steps — and kill and delete
        those steps, so nothing of the build outlives it. Another containerd is not ours to
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
            self.restart()
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


class BuildSession:
    """One build's lease and machinery (see :meth:`Solver.session`)."""

    def __init__(self, ctx: SolveContext):
        self.ctx = ctx
        self.client = ctx.client
        self._builds: list[_Build] = []

    def solve(self, graph: Graph, outputs: Sequence[str] | None = None) -> dict[str, SolvedOutput]:
        outs = [graph.output(n) for n in outputs] if outputs else list(graph.outputs)
        b = _Build(self.ctx)
        self._builds.append(b)
        solved = b.run([o.ref for o in outs])
        if self.ctx.opts.materialize_outputs:
            for o in outs:
                if solved[o.ref.op.digest][0][o.ref.index].remote:
                    b.materialized(o.ref.op.digest, o.ref.index)
        self.ctx.executor.flush()
        explained = self._record(b, [o.name for o in outs])
        result = {}
        for o in outs:
            r, key = solved[o.ref.op.digest]
            result[o.name] = SolvedOutput(o.name, r[o.ref.index], _output_config(o, b.base_config), key,
                                          explained)
        return result

    def materialize(self, result: Result) -> Result:
        """``result`` with its files in a snapshot: a remote cache hit is fetched and unpacked
        (and recorded in the local cache); anything else is returned as it is."""
        if not result.remote:
            return result
        for b in reversed(self._builds):
            for d, (outs, _) in list(b.results.items()):
                for i, r in enumerate(outs):
                    if r is result:
                        return b.materialized(d, i)
        rc = self.ctx.opts.remote_cache
        return rc.materialize(self.ctx.client, result)  # type: ignore[union-attr]

    def cache_mount_ids(self) -> list[str]:
        """The ids of the ``type=cache`` mounts of this session's exec steps, in graph order."""
        from mason.ir.ops import ExecOp, MountType

        ids: dict[str, None] = {}
        for b in self._builds:
            for d in b.order:
                op = b.ops[d]
                if isinstance(op, ExecOp):
                    for m in op.mounts:
                        if m.mount_type == MountType.CACHE:
                            ids[m.cache.id if m.cache is not None and m.cache.id else m.dest] = None
        return list(ids)

    def vertices(self) -> list[SolvedVertex]:
        """Every vertex of this session's solves, inputs first, with what is known of its
        results; a step the plan never looked at (behind a hit) is looked up now, so a fully
        cached build can still export every record (``mode=max``)."""
        out: list[SolvedVertex] = []
        seen: set[str] = set()
        for b in self._builds:
            for d in b.order:
                if d in seen:
                    continue
                seen.add(d)
                op = b.ops[d]
                if d not in b.results and not isinstance(op, (SourceOp, ConfigOp)) and b._use_cache(op):
                    b._lookup(d)
                got = b.results.get(d)
                outs = tuple(got[0]) if got is not None and not isinstance(op, SourceOp) else ()
                out.append(SolvedVertex(d, b.keys.get(d, ""), vertex_name(op), op.kind, outs,
                                        tuple((r.op.digest, r.index) for r in op.inputs),
                                        op.metadata.export_cache is not False))
        return out

    def _record(self, b: "_Build", names: list[str]) -> tuple[str, ...]:
        """Store this solve's key manifest for its target; with ``explain``, compare it with the
        previous one first. A manifest identical to the last one is not stored again."""
        from mason.backends.solver import explain as ex

        opts = self.ctx.opts
        target = opts.target_id or _target_id(names, opts.locals)
        manifest = b.manifest()
        prev = self.ctx.store.last_manifest(target)
        lines: tuple[str, ...] = ()
        if opts.explain:
            lines = tuple(ex.explain(ex.decode(prev[2]) if prev else None, manifest))
        fp = ex.fingerprint(manifest)
        if prev is None or prev[1] != fp:
            self.ctx.store.put_manifest(target, fp, ex.encode(manifest))
        return lines


class _Source:
    """A source vertex's state: what its key needs (a local scan, a pinned or loaded digest)
    and, once loaded, its result. Loading waits until a vertex that needs its files runs."""

    __slots__ = ("index", "local", "loaded", "digest", "lock")

    def __init__(self) -> None:
        self.index = None  # ContextIndex of a local source
        self.local: tuple[str, str, dict] | None = None  # (name, directory, attrs)
        self.loaded: Result | None = None
        self.digest: str | None = None
        self.lock = threading.Lock()


class _Build:
    """One solve, in three phases (as BuildKit's solver: keys first, then only what is needed):

    1. **keys** — every vertex's cache key, inputs first, each once. Sources only do what their
       key needs: a ``local://`` source is scanned (not copied), an image pinned by digest is
       not touched; other sources are loaded (their key is what they resolve to).
    2. **plan** — from the outputs backwards: a vertex whose result is in the store (and whose
       snapshots still exist, checked *after* they are held in the build's lease) ends the walk
       on that path; every other one must run, and so must its inputs be available.
    3. **run** — the vertices that must run, on the scheduler; each under its key's claim,
       looking the store up once more first (another build may have just made it).

    A fully cached build therefore loads no source and starts no container."""

    def __init__(self, ctx: SolveContext):
        self.ctx = ctx
        self.results: dict[str, tuple[list[Result], str]] = {}
        self.keys: dict[str, str] = {}
        self.numbers: dict[str, int] = {}
        self.ops: dict[str, Op] = {}
        self.sources: dict[str, _Source] = {}
        self.facts: dict[str, dict] = {}  # digest -> explain facts (inputs' selections, …)
        self.status: dict[str, str] = {}  # digest -> "ran" | "cached" | "remote" | "loaded"
        self.remote: dict[str, str] = {}  # digest -> the remote cache that answered it
        self.order: list[str] = []
        self._mat_locks: dict[str, threading.Lock] = {}
        self._mat_guard = threading.Lock()

    def run(self, refs: list[Ref]) -> dict[str, tuple[list[Result], str]]:
        from mason.ir.ops import walk_ops

        ctx = self.ctx
        order: list[str] = []
        for op in walk_ops(r.op for r in refs):
            if op.digest not in self.ops:
                self.ops[op.digest] = op
                order.append(op.digest)
        # every op's entitlements, before anything is loaded or looked up: a cached result is
        # no way around them (BuildKit checks a Definition's when it loads it)
        entitlements.check((self.ops[d] for d in order), ctx.entitlements)
        self.order = order
        n = 0
        for d in order:
            if not isinstance(self.ops[d], ConfigOp):
                n += 1
                self.numbers[d] = n
        # 1. keys: sources in parallel (scans, unpinned loads), then the rest inputs first
        srcs = [d for d in order if isinstance(self.ops[d], SourceOp)]
        run_dag(srcs, {}, self._source_key, jobs=ctx.opts.jobs, token=ctx.token, on_cancel=self._kill_running)
        for d in order:
            if d not in self.keys:
                self.keys[d] = self._key(d)
        # 2. plan (steps that ignore the cache run even where a later step hits: --no-cache-filter)
        forced = [d for d in order if not isinstance(self.ops[d], (SourceOp, ConfigOp))
                  and not self._use_cache(self.ops[d])]
        need = self._plan([r.op.digest for r in refs] + forced)
        self._check_platforms(need)  # a RUN this host cannot run fails now, before anything runs
        if any(isinstance(self.ops[d], ExecOp) and self.ops[d].network == NetMode.UNSET for d in need):
            ctx.network.prewarm(ctx.executor)  # the first RUN then finds a namespace ready
        for d in order:
            if d not in need and d in self.numbers and not isinstance(self.ops[d], SourceOp):
                self.status[d] = "remote" if d in self.remote else "cached"
                ctx.events(VertexCached(self.numbers[d], d, vertex_name(self.ops[d])))
        # 3. run
        todo = [d for d in order if d in need]
        deps = {d: {r.op.digest for r in self.ops[d].inputs if r.op.digest in need} for d in todo}
        run_dag(todo, deps, self._vertex, jobs=ctx.opts.jobs, token=ctx.token, on_cancel=self._kill_running)
        return self.results

    def _check_platforms(self, need: set[str]) -> None:
        """Every RUN that must run is for a platform this host runs, natively or through QEMU
        (registered on the spot as root: :func:`~mason.backends.containerd.binfmt.require`)."""
        from mason.ir.resolver import PlatformSpec

        host = PlatformSpec.default()
        foreign = []
        for d in sorted(need, key=lambda d: self.numbers.get(d, 0)):
            op = self.ops[d]
            if isinstance(op, ExecOp) and op.platform is not None:
                p = PlatformSpec(op.platform.os, op.platform.architecture, op.platform.variant).normalized()
                if p.architecture != host.architecture or p.os != host.os:
                    foreign.append((p, op.loc))
        if foreign:
            from mason.backends.containerd.binfmt import require

            require(foreign, host=host)

    def _kill_running(self) -> None:
        c, ex = self.ctx.solver.client, self.ctx.executor
        # this build's steps only (a long-lived process, mason serve, runs other builds' too);
        # one filter with its conditions ANDed: containerd ORs the filters of a list
        for cid in c.list_containers([f'labels."{EXECUTOR_LABEL}"=={ex.id},labels."{MANAGED_LABEL}"==step']):
            with contextlib.suppress(MasonError):
                c.kill_task(cid, 9, all=True)

    # -- 1. keys --------------------------------------------------------------------------------

    def _source_key(self, d: str) -> None:
        ctx = self.ctx
        op = self.ops[d]
        assert isinstance(op, SourceOp)
        st = self.sources[d] = _Source()
        ident = op.identifier
        if ident.startswith("local://"):
            from mason.backends.solver.contenthash import ContextIndex
            from mason.backends.sources.local import scan_local

            name, path, attrs = _local_spec(ctx, op)
            try:
                scan = scan_local(path, attrs, cache_dir=ctx.solver.root / "solver")
            except MasonError as e:
                raise MasonError(e.message, e.loc or op.loc) from None
            st.local, st.index = (name, path, attrs), ContextIndex(scan)
            st.digest = scan.checksum
            self.keys[d] = cachekey.cache_key(op.bytes, [], [scan.checksum])
            return
        pinned = _pinned_digest(ident)
        if pinned is not None:
            st.digest = pinned
            self.keys[d] = cachekey.cache_key(_key_bytes(op), [], [pinned])
            return
        self._load_source(d)  # the key is what it resolves to

    def _key(self, d: str) -> str:
        op = self.ops[d]
        if isinstance(op, ConfigOp):
            # identity on the filesystem: a key derived from the input's alone, so an EXPOSE
            # edit left in the chain (-O0) invalidates nothing
            r = op.inputs[0]
            return cachekey.cache_key(b"", [(self.keys[r.op.digest], r.index)], ["config-identity"])
        in_keys: list[tuple[str, int]] = []
        selected: dict[int, object] = {}
        for i, r in enumerate(op.inputs):
            src = self.sources.get(r.op.digest)
            if src is not None and src.index is not None:
                sel = _selection(op, i, src.index)
                selected[i] = sel
                in_keys.append(("content:" + sel.checksum, r.index))
            else:
                in_keys.append((self.keys[r.op.digest], r.index))
        if selected:
            self.facts[d] = {"selected": selected}
        return cachekey.cache_key(op.bytes, in_keys)

    # -- 2. plan --------------------------------------------------------------------------------

    def _use_cache(self, op: Op) -> bool:
        o = self.ctx.opts
        if o.no_cache or op.metadata.ignore_cache:
            return False
        if o.no_cache_filter:
            st = stage_of(op)
            if st is not None and normalize_stage(st) in {normalize_stage(f) for f in o.no_cache_filter}:
                return False
        return True

    def _plan(self, outputs: list[str]) -> set[str]:
        """The vertices that must run (or load): iterative, from the outputs backwards."""
        need: set[str] = set()
        seen: set[str] = set()
        stack = list(reversed(outputs))
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            op = self.ops[d]
            if isinstance(op, SourceOp):
                need.add(d)
                continue
            if not isinstance(op, ConfigOp) and self._use_cache(op) and self._lookup(d):
                continue
            need.add(d)
            stack.extend(r.op.digest for r in reversed(op.inputs))
        return need

    def _lookup(self, d: str, since: float | None = None) -> bool:
        """A store hit for ``d`` whose snapshots still exist: its result. The snapshots are put
        in the build's lease *before* they are checked, so a concurrent prune cannot take them
        between the check and their use. ``since``: only records created at or after it."""
        ctx = self.ctx
        op, key = self.ops[d], self.keys[d]
        outs = []
        for i in range(max(op.num_outputs(), 1)):
            rec = ctx.store.get(cachekey.output_key(key, i))
            if rec is None or (since is not None and rec.created < since):
                return since is None and self._remote_lookup(d)
            ctx.hold(rec.result)
            if rec.result.snapshot and not ctx.client.snapshot_exists(rec.result.snapshot):
                ctx.store.delete(rec.key)  # pruned behind our back: a miss
                return since is None and self._remote_lookup(d)
            outs.append(rec.result)
        self.results[d] = (outs, key)
        return True

    def _remote_lookup(self, d: str) -> bool:
        """A hit in the imported remote caches: its result, not materialized (no blob fetched)."""
        rc = self.ctx.opts.remote_cache
        if not rc:
            return False
        op, key = self.ops[d], self.keys[d]
        outs = []
        for i in range(max(op.num_outputs(), 1)):
            r = rc.lookup(cachekey.output_key(key, i))  # type: ignore[attr-defined]
            if r is None:
                return False
            outs.append(r)
        self.remote[d] = outs[0].remote
        self.results[d] = (outs, key)
        return True

    def materialized(self, d: str, i: int) -> Result:
        """Output ``i`` of vertex ``d`` with its files in a snapshot: a remote hit is fetched and
        unpacked once (under a per-vertex lock), recorded in this root's store and protected; a
        corrupt or missing blob is reported, its records dropped, and the vertex computed here."""
        from mason.backends.cache.importer import BadBlob

        with self._mat_guard:
            lock = self._mat_locks.setdefault(d, threading.Lock())
        ctx = self.ctx
        with lock:
            while True:
                outs, key = self.results[d]
                res = outs[i]
                if not res.remote:
                    return res
                try:
                    new = ctx.opts.remote_cache.materialize(ctx.client, res)  # type: ignore[union-attr]
                except BadBlob as e:
                    ctx.opts.remote_cache.mark_bad(e.digest, e.message)  # type: ignore[union-attr]
                    del self.results[d]
                    self.remote.pop(d, None)
                    self._recompute(d)
                    continue
                ctx.solver.protect(new)
                okey = cachekey.output_key(key, i)
                ctx.store.delete(okey)
                ctx.store.put(okey, new, description=vertex_name(self.ops[d]))
                outs[i] = new
                return new

    def _recompute(self, d: str) -> None:
        """Make ``d``'s result after its remote hit failed: plan it again (the bad records no
        longer answer) and run what that needs, inputs first, here."""
        need = self._plan([d])
        for x in self.order:
            if x in need and (x == d or x not in self.results):
                self._vertex(x)

    # -- 3. run ---------------------------------------------------------------------------------

    def _vertex(self, d: str) -> None:
        ctx = self.ctx
        if ctx.token.is_set():
            raise Cancelled()
        op = self.ops[d]
        if isinstance(op, SourceOp):
            self._load_source(d)
            return
        inputs = [self._input(r) for r in op.inputs]
        key = self.keys[d]
        if isinstance(op, ConfigOp):
            self.results[d] = ([inputs[0]], key)
            return
        n, name = self.numbers[d], vertex_name(op)
        use_cache = self._use_cache(op)
        with ctx.store.claim(key, ctx.token):
            # a step ignoring the cache still takes what was made for its key during this build
            if self._lookup(d) if use_cache else self._lookup(d, since=ctx.started):
                self.status[d] = "remote" if d in self.remote else "cached"
                ctx.events(VertexCached(n, d, name))
                return
            t0 = time.monotonic()
            ctx.events(VertexStarted(n, d, name))
            try:
                outs = self._execute(op, inputs, key, n, name)
            except (Cancelled, ClaimCancelled):
                ctx.events(VertexDone(n, d, name, time.monotonic() - t0, cancelled=True))
                raise
            except BaseException as e:
                if ctx.token.is_set():
                    ctx.events(VertexDone(n, d, name, time.monotonic() - t0, cancelled=True))
                    raise Cancelled() from None
                msg = e.message if isinstance(e, MasonError) else repr(e)
                ctx.events(VertexDone(n, d, name, time.monotonic() - t0, error=msg))
                raise
            for i, r in enumerate(outs):
                ctx.solver.protect(r, inputs)
                okey = cachekey.output_key(key, i)
                ctx.store.delete(okey)  # a new result replaces the key's earlier one (and its dates)
                ctx.store.put(okey, r, description=name)
            self.results[d] = (outs, key)
            self.status[d] = "ran"
            ctx.events(VertexDone(n, d, name, time.monotonic() - t0))

    def _input(self, r: Ref) -> Result:
        got = self.results.get(r.op.digest)
        if got is None:  # a source nobody needed until now
            self._load_source(r.op.digest)
            got = self.results[r.op.digest]
        res = got[0][r.index]
        if res.remote:  # a remote cache hit whose files this step needs now
            res = self.materialized(r.op.digest, r.index)
        return res

    def _execute(self, op: Op, inputs: list[Result], key: str, n: int, name: str) -> list[Result]:
        from mason.backends.solver.execop import run_exec
        from mason.backends.solver.mergediff import run_diff, run_file, run_merge

        ctx = self.ctx
        if isinstance(op, ExecOp):
            return run_exec(ctx, op, inputs, key, n, name)
        if isinstance(op, FileOp):
            return [run_file(ctx, op, inputs, key)]
        if isinstance(op, MergeOp):
            return [run_merge(ctx, op, inputs, key)]
        if isinstance(op, DiffOp):
            return [run_diff(ctx, op, inputs, key)]
        raise MasonError(f"the solver cannot execute a {type(op).__name__}", op.loc)

    def _load_source(self, d: str) -> None:
        """Load source ``d`` once (its files into a snapshot, with progress events)."""
        st = self.sources.setdefault(d, _Source())
        with st.lock:
            if d in self.results:
                return
            self._do_load(d, st)

    def _do_load(self, d: str, st: _Source) -> None:
        from mason.backends.solver.sourceload import load_source

        ctx = self.ctx
        op = self.ops[d]
        assert isinstance(op, SourceOp)
        n, name = self.numbers[d], vertex_name(op)
        t0 = time.monotonic()
        ctx.events(VertexStarted(n, op.digest, name))
        try:
            if st.local is not None:
                from mason.backends.sources.local import load_local

                lname, path, attrs = st.local
                sr = load_local(ctx.client, lname, path, attrs, cache_dir=ctx.solver.root / "solver",
                                scan=st.index.scan)
            else:
                sr = load_source(ctx, op)
        except BaseException as e:
            if ctx.token.is_set():
                ctx.events(VertexDone(n, op.digest, name, time.monotonic() - t0, cancelled=True))
                raise Cancelled() from None
            msg = e.message if isinstance(e, MasonError) else repr(e)
            ctx.events(VertexDone(n, op.digest, name, time.monotonic() - t0, error=msg))
            if isinstance(e, MasonError) and e.loc is None and op.loc is not None:
                raise MasonError(e.message, op.loc) from None
            raise
        from mason.backends.exporters.layer import KnownLayer, SnapshotDiff

        snap = sr.snapshot or ""
        if sr.layers:
            chain = tuple(KnownLayer(la) for la in sr.layers)
        elif snap:
            chain = (SnapshotDiff(None, snap),)
        else:
            chain = ()
        res = Result(snap, chain, sr.config)
        ctx.solver.protect(res)  # base layers must outlive the build: cached results name them
        if d not in self.keys:
            if st.local is None:
                st.digest = sr.digest or sr.cache_key_extra
            extra = [e for e in (sr.cache_key_extra, sr.digest) if e]
            self.keys[d] = cachekey.cache_key(_key_bytes(op), [], extra)
        self.results[d] = ([res], self.keys[d])
        self.status[d] = "loaded"
        ctx.events(VertexDone(n, op.digest, name, time.monotonic() - t0))

    def base_config(self, d: str) -> dict | None:
        """A source's image config, loading it if the build did not need it."""
        if d not in self.results:
            self._load_source(d)
        return self.results[d][0][0].image_config

    # -- the key manifest (--explain) -----------------------------------------------------------

    def manifest(self) -> list[dict]:
        from mason.backends.solver.explain import step_entry

        out = []
        for d, n in self.numbers.items():
            op = self.ops[d]
            ins = []
            for i, r in enumerate(op.inputs):
                rd = r.op.digest
                while isinstance(self.ops[rd], ConfigOp):  # name the step behind a ConfigOp
                    rd = self.ops[rd].inputs[0].op.digest
                ins.append((self.numbers.get(rd, 0), self.keys.get(r.op.digest, ""),
                            self.facts.get(d, {}).get("selected", {}).get(i)))
            src = self.sources.get(d)
            nocache = not isinstance(op, (SourceOp, ConfigOp)) and not self._use_cache(op)
            e = step_entry(n, vertex_name(op), op, self.keys.get(d, ""), ins,
                           src.digest if src is not None else None,
                           self.status.get(d, "unused"), self.ctx.solver.salt(), nocache)
            if d in self.remote:
                e["remote"] = self.remote[d]
            out.append(e)
        return out


def _selection(op: Op, i: int, index):
    """What ``op`` reads from its ``local://`` input ``i`` (a Selection): the copy actions'
    sources, a mount's subdirectory; the whole selection when it reads it some other way."""
    from mason.backends.solver.contenthash import Selection, combine

    if isinstance(op, FileOp):
        parts = []
        for a in op.actions:
            owner = getattr(a.action, "owner", None)
            names = []
            if owner is not None:
                names = [u.name_input for u in (owner.user, owner.group) if u is not None and u.name is not None]
            if a.input == i or i in names:
                return index.select_all()
            if a.secondary_input == i:
                if not isinstance(a.action, Copy):
                    return index.select_all()
                parts.append(index.select_copy(a.action))
        if not parts:
            return index.select_all()
        if len(parts) == 1:
            return parts[0]
        files: dict[str, str] = {}
        for p in parts:
            files.update(p.files)
        return Selection(combine([p.checksum for p in parts]), files)
    if isinstance(op, ExecOp):
        sels = []
        for m in op.mounts:
            if m.input != i:
                continue
            sel = (m.selector or "").strip("/")
            if not sel:
                return index.select_all()
            sels.append(index.select_tree(sel))
        if not sels:
            return index.select_all()
        if len(sels) == 1:
            return sels[0]
        files = {}
        for p in sels:
            files.update(p.files)
        return Selection(combine([p.checksum for p in sels]), files)
    return index.select_all()


def _local_spec(ctx: SolveContext, op: SourceOp) -> tuple[str, str, dict]:
    """(name, directory, attrs) of a ``local://NAME`` source, the driver's ``.dockerignore``
    patterns added when the op carries none."""
    import json

    name = op.identifier[len("local://"):]
    attrs = dict(op.attrs)
    local = ctx.opts.locals.get(name)
    if local is None:
        known = ", ".join(sorted(ctx.opts.locals)) or "none"
        raise MasonError(f"no directory for local://{name} (known: {known})", op.loc)
    if local.exclude and "local.excludepatterns" not in attrs:
        attrs["local.excludepatterns"] = json.dumps(list(local.exclude))
    path = local.sync(attrs) if local.sync is not None else local.path
    return name, path, attrs


def _key_bytes(op: SourceOp) -> bytes:
    """The bytes a source's cache key hashes: the op's, with the credentials of a URL in its
    identifier or attrs (``git.fullurl``) removed — a key is no place for a password, not even
    hashed (it could be guessed against), and the same repository or file fetched with other
    credentials is the same content (its commit or digest is in the key too)."""
    ident = split_userinfo(op.identifier)[0]
    attrs = tuple((k, split_userinfo(v)[0] if "://" in v else v) for k, v in op.attrs)
    if ident == op.identifier and attrs == op.attrs:
        return op.bytes
    return replace(op, identifier=ident, attrs=attrs).bytes


def _pinned_digest(identifier: str) -> str | None:
    """The digest a ``docker-image://…@sha256:…`` identifier pins (what loading it resolves
    to), else None."""
    if not identifier.startswith("docker-image://"):
        return None
    _, at, digest = identifier.rpartition("@")
    if at and digest.startswith("sha256:") and len(digest) == 71:
        return digest
    return None


def stage_of(op: Op) -> str | None:
    """The Dockerfile stage an op belongs to: the lowering's ``mason.stage`` description, else
    the ``[stage k/n]`` prefix of its progress name."""
    s = op.metadata.describe(STAGE_KEY)
    if s is not None:
        return s
    name = op.metadata.describe(CUSTOM_NAME) or ""
    if name.startswith("["):
        head = name[1:name.find("]")] if "]" in name else ""
        parts = head.split(" ")
        if len(parts) == 2 and "/" in parts[1]:
            return normalize_stage(parts[0])
    return None


def normalize_stage(name: str) -> str:
    """A stage as ``--no-cache-filter`` names it: its name (case-insensitive, as FROM … AS
    names are), or its index, also spelled ``stage-N``."""
    name = name.strip().lower()
    if name.startswith("stage-") and name[6:].isdigit():
        return name[6:]
    return name


# -- names and configs --------------------------------------------------------------------------

def vertex_name(op: Op) -> str:
    """The progress name: ``llb.customname`` (``[stage 2/4] RUN …`` from the Dockerfile
    frontend), else a summary of the op — with the credentials of any URL in it masked
    (``user:xxxxx@``): the name goes to the progress output, the history, the cache database."""
    return redact_text(_vertex_name(op))


def _vertex_name(op: Op) -> str:
    custom = op.metadata.describe(CUSTOM_NAME)
    if custom:
        return custom
    if isinstance(op, SourceOp):
        return op.identifier
    if isinstance(op, ExecOp):
        from mason.backends.solver.execop import describe_exec

        return describe_exec(op)
    if isinstance(op, FileOp):
        from mason.backends.solver.fileop import describe_action

        return "; ".join(describe_action(a.action) for a in op.actions)
    if isinstance(op, MergeOp):
        return f"merge ({len(op.merge_inputs)} inputs)"
    if isinstance(op, DiffOp):
        return "diff"
    return type(op).__name__


def _target_id(names: Sequence[str], locals: Mapping[str, LocalDir]) -> str:
    """"The same target" for ``--explain``: the outputs' names and the local directories."""
    h = hashlib.sha256(b"mason.target.v1\0")
    for n in names:
        h.update(b"o\0" + n.encode() + b"\0")
    for k in sorted(locals):
        path = os.path.realpath(locals[k].path).encode("utf-8", "surrogateescape")
        h.update(b"l\0" + k.encode() + b"\0" + path + b"\0")
    return h.hexdigest()[:32]


def _output_config(output, base_config_of) -> dict | None:
    """The output's image config: the graph's own (already hoisted at ``-O1``); with ConfigOps
    and ``mason.history`` entries still in the chain (``-O0``), folded exactly as
    ``hoist-config`` folds them (:mod:`mason.ir.layers`), so both levels give one image. A graph
    without a config (a builder-API or BuildKit Definition) starts from its base image's."""
    chain = layer_chain(output.ref)
    cfg = output.image_config
    if cfg is None:
        base = next((op for op in chain if isinstance(op, SourceOp)), None)
        cfg = base_config_of(base.digest) if base is not None else None
    if cfg is None and any(isinstance(op, ConfigOp) for op in chain):
        cfg = empty_image_config()
    return fold_image_config(cfg, chain)


__all__ = ["Solver", "BuildSession", "SolveOptions", "SolveContext", "SolvedOutput", "SolvedVertex", "LocalDir",
           "vertex_name",
           "CACHE_LEASE"]
