"""A build session (:class:`BuildSession`): one or more solves in one lease, what they made
(for the exporters and the cache export), and the key manifest each stores for ``--explain``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

from mason.backends.solver.context import SolveContext
from mason.backends.solver.names import vertex_name
from mason.backends.solver.options import LocalDir, SolvedOutput, SolvedVertex
from mason.backends.solver.phases import Solve
from mason.backends.solver.results import Result
from mason.ir.graph import Graph
from mason.ir.imageconfig import empty_image_config
from mason.ir.layers import fold_image_config, layer_chain
from mason.ir.ops import ConfigOp, SourceOp


class BuildSession:
    """One build's lease and machinery (see :meth:`Solver.session`)."""

    def __init__(self, ctx: SolveContext):
        self.ctx = ctx
        self.client = ctx.client
        self._builds: list[Solve] = []

    def solve(self, graph: Graph, outputs: Sequence[str] | None = None) -> dict[str, SolvedOutput]:
        outs = [graph.output(n) for n in outputs] if outputs else list(graph.outputs)
        b = Solve(self.ctx)
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
        return rc.materialize(self.ctx.client, result)  # type: ignore[attr-defined]

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

    def _record(self, b: "Solve", names: list[str]) -> tuple[str, ...]:
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


__all__ = ["BuildSession"]
