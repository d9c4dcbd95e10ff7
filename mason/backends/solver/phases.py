"""One solve of a graph (:class:`Solve`), in three phases — keys, plan, run — each vertex once,
memoized by digest (see :mod:`.solver`)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from mason.backends.containerd.exec import EXECUTOR_LABEL, MANAGED_LABEL
from mason.backends.solver import cachekey, entitlements
from mason.backends.solver.context import SolveContext
from mason.backends.solver.events import VertexCached, VertexDone, VertexStarted
from mason.backends.solver.keyinputs import input_selection, key_bytes, local_spec, pinned_digest
from mason.backends.solver.names import normalize_stage, stage_of, vertex_name
from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import Cancelled, run_dag
from mason.backends.solver.store import Cancelled as ClaimCancelled
from mason.ir.errors import MasonError
from mason.ir.ops import ConfigOp, DiffOp, ExecOp, FileOp, MergeOp, NetMode, Op, Ref, SourceOp

if TYPE_CHECKING:
    from mason.backends.solver.contenthash import ContextIndex


class _Source:
    """A source vertex's state: what its key needs (a local scan, a pinned or loaded digest)
    and, once loaded, its result. Loading waits until a vertex that needs its files runs."""

    __slots__ = ("index", "local", "loaded", "digest", "lock")

    def __init__(self) -> None:
        self.index: ContextIndex | None = None  # of a local source
        self.local: tuple[str, str, dict] | None = None  # (name, directory, attrs)
        self.loaded: Result | None = None
        self.digest: str | None = None
        self.lock = threading.Lock()


class Solve:
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
        if any(isinstance(op, ExecOp) and op.network == NetMode.UNSET for op in (self.ops[d] for d in need)):
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

            name, path, attrs = local_spec(ctx, op)
            try:
                scan = scan_local(path, attrs, cache_dir=ctx.solver.root / "solver")
            except MasonError as e:
                raise MasonError(e.message, e.loc or op.loc) from None
            st.local, st.index = (name, path, attrs), ContextIndex(scan)
            st.digest = scan.checksum
            self.keys[d] = cachekey.cache_key(op.bytes, [], [scan.checksum])
            return
        pinned = pinned_digest(ident)
        if pinned is not None:
            st.digest = pinned
            self.keys[d] = cachekey.cache_key(key_bytes(op), [], [pinned])
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
                sel = input_selection(op, i, src.index)
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
                    new = ctx.opts.remote_cache.materialize(ctx.client, res)  # type: ignore[attr-defined]
                except BadBlob as e:
                    ctx.opts.remote_cache.mark_bad(e.digest, e.message)  # type: ignore[attr-defined]
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
                assert st.index is not None  # set with st.local (_source_key)
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
        chain: tuple[KnownLayer | SnapshotDiff, ...]
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
            self.keys[d] = cachekey.cache_key(key_bytes(op), [], extra)
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


__all__ = ["Solve"]
