"""FileOp, MergeOp and DiffOp on snapshots (ExecOp is :mod:`.execop`).

* **FileOp** — the output chain runs in place in a writable active snapshot whose parent is
  the chain's base input (:func:`fileop.output_base`), mounted on the host; every op input is a
  read-only view. The actions themselves are :func:`fileop.execute_fileop`.
* **MergeOp** — a new snapshot on top of the first input's, with every later input's layers
  applied in order (containerd's Diff.Apply; each layer computed once, lazily, by the image
  writer's :func:`resolve_layer`). The result's chain is the inputs' chains concatenated, so
  an exported merge keeps the inputs' layers, as BuildKit's does.
* **DiffOp** — the change from ``lower`` to ``upper``: when lower's chain is a prefix of
  upper's, the remaining layers; otherwise one computed layer. Applied onto an empty snapshot.

Every result is committed under a fresh name (:func:`result_snapshot_name`: the cache key and a
nonce), also for ExecOps: a step that runs again (``--no-cache``, a new state root on a shared
containerd) makes a new snapshot rather than colliding with an earlier run's and keeping it.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING

from mason.backends.containerd.client import Descriptor, NotFound
from mason.backends.containerd.exec import OWNER_LABEL
from mason.backends.exporters.layer import KnownLayer, SnapshotDiff, resolve_layer
from mason.backends.solver import mounts as hm
from mason.backends.solver.results import SCRATCH, ChainItem, Result
from mason.ir.errors import MasonError
from mason.ir.ops import DiffOp, FileOp, MergeOp

if TYPE_CHECKING:
    from mason.backends.solver.context import SolveContext


def result_snapshot_name(key: str, index: int = 0) -> str:
    """A fresh name for a committed result of the vertex with cache key ``key``: the key (for
    people reading ``ctr snapshots ls``) and a nonce, so that every run commits its own snapshot,
    as BuildKit's random snapshot IDs do. (``cachekey.snapshot_name`` without the nonce is what
    earlier versions committed; ``mason prune`` still sweeps unrecorded ones of those.)"""
    return f"mason-ck-{key.split(':', 1)[-1]}-{index}-{uuid.uuid4().hex[:12]}"


def _commit(ctx: "SolveContext", active: str, name: str) -> None:
    try:
        ctx.client.commit(name, active, {OWNER_LABEL: ctx.executor.owner})
    except BaseException:
        with contextlib.suppress(NotFound):
            ctx.client.remove_snapshot(active)
        raise


# -- FileOp -------------------------------------------------------------------------------------

def run_file(ctx: "SolveContext", op: FileOp, inputs: list[Result], key: str) -> Result:
    from mason.backends.solver.fileop import execute_fileop, output_base

    c, ex = ctx.client, ctx.executor
    base_i = output_base(op)
    base = SCRATCH if base_i < 0 else inputs[base_i]
    active = f"mason-file-{uuid.uuid4().hex[:16]}"
    if base.snapshot:
        ex.settle(base.snapshot)
    c.prepare(active, base.snapshot, {OWNER_LABEL: ex.owner})
    committed = False
    try:
        with contextlib.ExitStack() as stack:
            dirs: list[str | None] = []
            for r in inputs:
                if not r.snapshot:
                    dirs.append(None)
                    continue
                ex.settle(r.snapshot)
                dirs.append(str(stack.enter_context(hm.mounted_view(c, r.snapshot, dir=ctx.tmpdir))))
            dest = stack.enter_context(hm.mounted(c, active, dir=ctx.tmpdir))
            scratch = lambda: str(hm_scratch(ctx))  # noqa: E731
            try:
                execute_fileop(op, dirs, scratch, dest_root=str(dest))
            except MasonError as e:
                if e.loc is None and op.loc is not None:
                    raise MasonError(e.message, op.loc) from None
                raise
            except OSError as e:
                raise MasonError(f"file operation failed: {e.strerror or e}", op.loc) from None
        name = result_snapshot_name(key, 0)
        _commit(ctx, active, name)
        committed = True
        return base.extend(name)
    finally:
        if not committed:
            with contextlib.suppress(NotFound):
                c.remove_snapshot(active)


def hm_scratch(ctx: "SolveContext"):
    d = ctx.tmpdir / f"scratch-{uuid.uuid4().hex[:12]}"
    d.mkdir()
    return d


# -- MergeOp, DiffOp ----------------------------------------------------------------------------

def _apply_chain(ctx: "SolveContext", parent: str, chain: list[ChainItem], name: str) -> None:
    """A new snapshot ``name``: ``parent`` (or empty) with ``chain``'s layers applied."""
    c, ex = ctx.client, ctx.executor
    active = f"mason-merge-{uuid.uuid4().hex[:16]}"
    layers = []
    for item in chain:
        if isinstance(item, SnapshotDiff):
            for s in (item.lower, item.upper):
                if s:
                    ex.settle(s)
        layers.append(resolve_layer(c, item))
    if parent:
        ex.settle(parent)
    mounts = c.prepare(active, parent, {OWNER_LABEL: ex.owner})
    try:
        for la in layers:
            c.apply(Descriptor(la.media_type, la.digest, la.size), mounts)
    except BaseException:
        with contextlib.suppress(NotFound):
            c.remove_snapshot(active)
        raise
    _commit(ctx, active, name)


def run_merge(ctx: "SolveContext", op: MergeOp, inputs: list[Result], key: str) -> Result:
    parts = [inputs[i] for i in op.merge_inputs if not inputs[i].is_scratch]
    if not parts:
        return SCRATCH
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    rest: list[ChainItem] = [item for p in parts[1:] for item in p.chain]
    name = result_snapshot_name(key, 0)
    _apply_chain(ctx, first.snapshot, rest, name)
    return Result(name, first.chain + tuple(rest))


def run_diff(ctx: "SolveContext", op: DiffOp, inputs: list[Result], key: str) -> Result:
    lower = SCRATCH if op.lower is None or op.lower < 0 else inputs[op.lower]
    upper = SCRATCH if op.upper is None or op.upper < 0 else inputs[op.upper]
    if upper.is_scratch:
        return SCRATCH
    if lower.is_scratch:
        return upper
    if lower.snapshot == upper.snapshot:
        return SCRATCH
    n = len(lower.chain)
    if upper.chain[:n] == lower.chain:
        chain: list[ChainItem] = list(upper.chain[n:])
    else:
        ctx.executor.settle(lower.snapshot)
        ctx.executor.settle(upper.snapshot)
        chain = [KnownLayer(resolve_layer(ctx.client, SnapshotDiff(lower.snapshot, upper.snapshot)))]
    if not chain:
        return SCRATCH
    name = result_snapshot_name(key, 0)
    _apply_chain(ctx, "", chain, name)
    return Result(name, tuple(chain))
