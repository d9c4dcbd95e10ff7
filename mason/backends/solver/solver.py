"""The solve loop: execute an LLB graph on containerd, every reachable op once, inputs first,
independent ops in parallel (:func:`.scheduler.run_dag`), with a persistent cache.

Per vertex (memoized by digest):

1. its **cache key** (:mod:`.cachekey`) from the op and its inputs' keys (sources: the loader's
   content checksum or pinned digest; a ConfigOp's key is its input's: it changes no file);
2. unless ``--no-cache`` / ``ignore_cache``, a **lookup** in the result store (:mod:`.store`):
   a hit whose snapshots still exist is the result — no container starts;
3. otherwise, under the key's inter-process claim (a second build waits, then hits), it
   **runs** (:mod:`.execop`, :mod:`.mergediff`; sources through ``backends/sources``), the new
   snapshots are committed under names derived from the key, protected by the long-lived
   cache lease, and recorded.

Everything a build creates happens inside one lease (``containerd.io/gc.expire`` as a safety
net if mason dies); the lease goes at the end, so whatever was not committed and recorded is
garbage for containerd's GC. The first failure cancels the rest: running tasks are killed,
their snapshots removed; Ctrl-C the same.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mason.backends.containerd.client import AlreadyExists, Client, NotFound
from mason.backends.containerd.exec import MANAGED_LABEL, OWNER_LABEL, Executor, reap_orphans
from mason.backends.solver import cachekey
from mason.backends.solver.events import (EventSink, VertexCached, VertexDone, VertexStarted,
                                          Warning, null_sink)
from mason.backends.solver.execop import Network, describe_exec, run_exec
from mason.backends.solver.mergediff import run_diff, run_file, run_merge
from mason.backends.solver.mounts import CacheMounts
from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import DEFAULT_JOBS, CancelToken, Cancelled, run_dag
from mason.backends.solver.secrets import Secrets
from mason.backends.solver.store import Cancelled as ClaimCancelled
from mason.backends.solver.store import ResultStore
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.imageconfig import apply_config_changes, empty_image_config
from mason.ir.ops import ConfigOp, DiffOp, ExecOp, FileOp, MergeOp, Op, Ref, SourceOp

CACHE_LEASE = "mason-cache"
SNAPSHOT_RESOURCE = "snapshots/overlayfs"
CONTENT_RESOURCE = "content"
BUILD_LEASE_EXPIRE = 24 * 3600.0
CUSTOM_NAME = "llb.customname"


@dataclass(frozen=True)
class LocalDir:
    """A ``local://NAME`` source: a client directory and the exclude patterns the driver adds
    (the context's ``.dockerignore``) when the op carries none."""

    path: str
    exclude: tuple[str, ...] = ()


@dataclass
class SolveOptions:
    jobs: int = DEFAULT_JOBS
    no_cache: bool = False
    entitlements: frozenset[str] = frozenset()
    locals: Mapping[str, LocalDir] = field(default_factory=dict)
    secrets: Secrets | None = None
    insecure_registries: tuple[str, ...] = ()
    oci_layouts: Mapping[str, str] = field(default_factory=dict)
    registry: object | None = None  # a RegistryClient to use (else one is made when needed)
    network_default: str = "default"  # LLB's default network: "default" (CNI bridge) or "host"


@dataclass(frozen=True)
class SolvedOutput:
    name: str
    result: Result
    image_config: dict | None
    cache_key: str


class SolveContext:
    """What the op runners get: the leased client, the executor, secrets, events, the
    cancel token. One per build."""

    def __init__(self, solver: "Solver", client: Client, executor: Executor, opts: SolveOptions,
                 events: EventSink, tmpdir: Path):
        self.solver = solver
        self.client = client
        self.executor = executor
        self.opts = opts
        self.store = solver.store
        self.secrets = opts.secrets or Secrets()
        self.entitlements = set(opts.entitlements)
        self.events = events
        self.token = CancelToken()
        self.tmpdir = tmpdir
        self.cache_mounts = CacheMounts(solver.root)
        self.network = Network(solver.root, lambda m: events(Warning(m)), opts.network_default)
        self._registry = opts.registry
        self._lock = threading.Lock()

    def registry(self):
        with self._lock:
            if self._registry is None:
                from mason.backends.sources.registry import RegistryClient

                self._registry = RegistryClient(insecure_registries=self.opts.insecure_registries)
            return self._registry


class Solver:
    """Solves graphs on one containerd, with the result store under ``root``."""

    def __init__(self, client: Client, root: str | Path, *, runc_root: str | None = None,
                 io_dir: str | None = None):
        self.client = client
        self.root = Path(root)
        self.store = ResultStore(self.root)
        self.runc_root = runc_root
        self.io_dir = io_dir or str(self.root / "solver" / "io")
        self.group_shims = True
        self.background_delete = True
        self._cache_lease_ok = False

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
        tmpdir = self.root / "solver" / "tmp" / f"build-{uuid.uuid4().hex[:12]}"
        tmpdir.mkdir(parents=True)
        ex = Executor(self.client, io_dir=self.io_dir, runc_root=self.runc_root, group_shims=self.group_shims,
                      background_delete=self.background_delete)
        # mason.owner (pid:starttime, as on containers): prune can tell a dead build's lease
        lease = self.client.create_lease(expire=BUILD_LEASE_EXPIRE,
                                         labels={"mason.build": "1", OWNER_LABEL: ex.owner})
        lc = self.client.with_lease(lease)
        ex.client = lc
        ctx = SolveContext(self, lc, ex, opts, events, tmpdir)
        try:
            yield BuildSession(ctx)
        finally:
            with contextlib.suppress(BaseException):
                ex.close()
            ctx.secrets.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            with contextlib.suppress(MasonError):
                self.client.delete_lease(lease)

    def _ensure_cache_lease(self) -> None:
        if self._cache_lease_ok:
            return
        with contextlib.suppress(AlreadyExists):
            self.client.create_lease(CACHE_LEASE, expire=None, labels={"mason.cache": "1"})
        self._cache_lease_ok = True

    def protect(self, result: Result, inputs: Iterable[Result] = ()) -> None:
        """Keep ``result``'s new snapshot and blobs alive after the build (the cache lease)."""
        known = {s for r in inputs for s in (r.snapshot,) if s}
        blobs = {b for r in inputs for b in r.blobs()}
        if result.snapshot and result.snapshot not in known:
            with contextlib.suppress(AlreadyExists):
                self.client.add_lease_resource(CACHE_LEASE, result.snapshot, SNAPSHOT_RESOURCE)
        for b in result.blobs() - blobs:
            with contextlib.suppress(AlreadyExists):
                self.client.add_lease_resource(CACHE_LEASE, b, CONTENT_RESOURCE)


class BuildSession:
    """One build's lease and machinery (see :meth:`Solver.session`)."""

    def __init__(self, ctx: SolveContext):
        self.ctx = ctx
        self.client = ctx.client

    def solve(self, graph: Graph, outputs: Sequence[str] | None = None) -> dict[str, SolvedOutput]:
        outs = [graph.output(n) for n in outputs] if outputs else list(graph.outputs)
        solved = _Build(self.ctx).run([o.ref for o in outs])
        self.ctx.executor.flush()
        result = {}
        for o in outs:
            r, key = solved[o.ref.op.digest]
            result[o.name] = SolvedOutput(o.name, r[o.ref.index], _output_config(o, solved), key)
        return result


class _Build:
    """One solve: the per-vertex memo, numbering and the scheduler's node function."""

    def __init__(self, ctx: SolveContext):
        self.ctx = ctx
        self.results: dict[str, tuple[list[Result], str]] = {}
        self.numbers: dict[str, int] = {}
        self.ops: dict[str, Op] = {}

    def run(self, refs: list[Ref]) -> dict[str, tuple[list[Result], str]]:
        from mason.ir.ops import walk_ops

        order: list[str] = []
        for op in walk_ops(r.op for r in refs):
            if op.digest not in self.ops:
                self.ops[op.digest] = op
                order.append(op.digest)
        n = 0
        for d in order:
            if not isinstance(self.ops[d], ConfigOp):
                n += 1
                self.numbers[d] = n
        deps = {d: {r.op.digest for r in self.ops[d].inputs} for d in order}
        run_dag(order, deps, self._vertex, jobs=self.ctx.opts.jobs, token=self.ctx.token,
                on_cancel=self._kill_running)
        return self.results

    def _kill_running(self) -> None:
        c, owner = self.ctx.solver.client, self.ctx.executor.owner
        for cid in c.list_containers([f'labels."{OWNER_LABEL}"=={owner}', f'labels."{MANAGED_LABEL}"==step']):
            with contextlib.suppress(MasonError):
                c.kill_task(cid, 9, all=True)

    # -- one vertex -------------------------------------------------------------------------

    def _vertex(self, d: str) -> None:
        ctx = self.ctx
        if ctx.token.is_set():
            raise Cancelled()
        op = self.ops[d]
        inputs = [self.results[r.op.digest][0][r.index] for r in op.inputs]
        in_keys = [(self.results[r.op.digest][1], r.index) for r in op.inputs]
        if isinstance(op, ConfigOp):
            # identity on the filesystem: a key derived from the input's alone, so an EXPOSE
            # edit left in the chain (-O0) invalidates nothing
            self.results[d] = ([inputs[0]], cachekey.cache_key(b"", [in_keys[0]], ["config-identity"]))
            return
        n, name = self.numbers[d], vertex_name(op)
        if isinstance(op, SourceOp):
            self._source(op, n, name)
            return
        key = cachekey.cache_key(op.bytes, in_keys)
        nout = max(op.num_outputs(), 1)
        use_cache = not (ctx.opts.no_cache or op.metadata.ignore_cache)
        if use_cache and self._lookup(d, key, nout, n, name):
            return
        with ctx.store.claim(key, ctx.token):
            if use_cache and self._lookup(d, key, nout, n, name):
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
                ctx.store.put(cachekey.output_key(key, i), r, description=name)
            self.results[d] = (outs, key)
            ctx.events(VertexDone(n, d, name, time.monotonic() - t0))

    def _lookup(self, d: str, key: str, nout: int, n: int, name: str) -> bool:
        ctx = self.ctx
        outs = []
        for i in range(nout):
            rec = ctx.store.get(cachekey.output_key(key, i))
            if rec is None:
                return False
            if rec.result.snapshot and not ctx.client.snapshot_exists(rec.result.snapshot):
                ctx.store.delete(rec.key)  # pruned behind our back: a miss
                return False
            outs.append(rec.result)
        self.results[d] = (outs, key)
        ctx.events(VertexCached(n, d, name))
        return True

    def _execute(self, op: Op, inputs: list[Result], key: str, n: int, name: str) -> list[Result]:
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

    def _source(self, op: SourceOp, n: int, name: str) -> None:
        from mason.backends.solver.sourceload import load_source

        ctx = self.ctx
        t0 = time.monotonic()
        ctx.events(VertexStarted(n, op.digest, name))
        try:
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
        from mason.backends.exporters.layer import KnownLayer

        snap = sr.snapshot or ""
        if sr.layers:
            chain = tuple(KnownLayer(la) for la in sr.layers)
        elif snap:
            from mason.backends.exporters.layer import SnapshotDiff

            chain = (SnapshotDiff(None, snap),)
        else:
            chain = ()
        res = Result(snap, chain, sr.config)
        ctx.solver.protect(res)  # base layers must outlive the build: cached results name them
        extra = [e for e in (sr.cache_key_extra, sr.digest) if e]
        key = cachekey.cache_key(op.bytes, [], extra)
        self.results[op.digest] = ([res], key)
        ctx.events(VertexDone(n, op.digest, name, time.monotonic() - t0))


# -- names and configs --------------------------------------------------------------------------

def vertex_name(op: Op) -> str:
    """The progress name: ``llb.customname`` (``[stage 2/4] RUN …`` from the Dockerfile
    frontend), else a summary of the op."""
    custom = op.metadata.describe(CUSTOM_NAME)
    if custom:
        return custom
    if isinstance(op, SourceOp):
        return op.identifier
    if isinstance(op, ExecOp):
        return describe_exec(op)
    if isinstance(op, FileOp):
        from mason.backends.solver.fileop import describe_action

        return "; ".join(describe_action(a.action) for a in op.actions)
    if isinstance(op, MergeOp):
        return f"merge ({len(op.merge_inputs)} inputs)"
    if isinstance(op, DiffOp):
        return "diff"
    return type(op).__name__


def _output_config(output, solved) -> dict | None:
    """The output's image config: the graph's (hoisted) one; with ConfigOps left in the
    chain (``-O0``), their changes folded on top, oldest first, as ``hoist-config`` would."""
    cfg = output.image_config
    configs: list[ConfigOp] = []
    op: Op | None = output.ref.op
    base_config = None
    while op is not None:
        if isinstance(op, ConfigOp):
            configs.append(op)
            op = op.inputs[0].op if op.inputs else None
        elif isinstance(op, ExecOp):
            root = next((m for m in op.mounts if m.dest == "/"), None)
            op = op.inputs[root.input].op if root is not None and root.input >= 0 else None
        elif isinstance(op, FileOp):
            from mason.backends.solver.fileop import output_base

            i = output_base(op)
            op = op.inputs[i].op if i >= 0 else None
        elif isinstance(op, MergeOp):
            op = op.inputs[op.merge_inputs[0]].op if op.merge_inputs else None
        elif isinstance(op, SourceOp):
            got = solved.get(op.digest)
            if got is not None:
                base_config = got[0][0].image_config
            op = None
        else:
            op = None
    if not configs:
        return cfg if cfg is not None else base_config
    cfg = cfg if cfg is not None else (base_config or empty_image_config())
    for c in reversed(configs):
        cfg = apply_config_changes(cfg, c.changes, c.created_by or None)
    return cfg


__all__ = ["Solver", "BuildSession", "SolveOptions", "SolveContext", "SolvedOutput", "LocalDir", "vertex_name",
           "CACHE_LEASE"]
