"""How image config and history ride through the graph before ``hoist-config`` (and how that
pass, or a solver running ``-O0`` IR, folds them into an output's image config). Shared by the
lowering (which writes the convention), the passes and the solver (which read it).

**The convention.** An output's ``image_config`` holds the config of the base its chain starts
from (the ``FROM`` image's config, history included; or nothing for scratch). Everything a build
adds to it rides *on the ops*, in build order:

* a :class:`ConfigOp` carries one instruction's config changes; its ``created_by`` (when not
  empty) becomes an ``empty_layer`` history entry, as BuildKit writes for ENV, LABEL, EXPOSE…;
* any op (a RUN's ExecOp, a COPY's FileOp, a WORKDIR's mkdir…) may carry history entries in its
  metadata description under ``mason.history`` (:data:`HISTORY_KEY`): a JSON object, the history
  entry exactly as it goes into the image config (e.g. ``{"created_by": "RUN /bin/sh -c make #
  buildkit", "comment": "buildkit.dockerfile.v0"}``), or a JSON list of them (what ``merge``
  writes when it folds several layer ops into one). Metadata is not part of a digest and BuildKit
  ignores unknown description keys, so this never changes an op's identity or cache key.

**Which ops count for an output** (:func:`layer_chain`): the ops its filesystem is built from
*as layers*, not everything it reads. From the output's ref, follow each op's layer inputs:
a ConfigOp's input; for an ExecOp, the input of the mount that produces the referenced output
(the root mount for ``/``); for a FileOp, the op input at the bottom of the action chain that
produces the output (COPY sources are not layers of the result); every MergeOp input, in order;
for a DiffOp, the upper side minus everything the lower side's chain already holds. Ops are
taken inputs first (post-order), each digest once. Changes and history entries are applied in
that order (:func:`fold_image_config`).

``hoist-config`` removes the ConfigOps and the ``mason.history`` keys and folds both into every
output's image config, so after it the graph holds no image-config facts at all and the result is
what BuildKit's Dockerfile frontend hands to its exporter (history for every instruction, layer
entries included; an exporter matches non-empty entries to the layers it writes).
"""

from __future__ import annotations

import copy
import json
from typing import Iterable

from mason.ir.errors import MasonError
from mason.ir.imageconfig import HISTORY_COMMENT, ConfigFolder
from mason.ir.ops import ConfigOp, DiffOp, ExecOp, FileOp, MergeOp, Op, OpMetadata, Ref

__all__ = ["HISTORY_KEY", "history_entries", "layer_inputs", "layer_chain", "fold_image_config",
           "without_history", "with_history"]

HISTORY_KEY = "mason.history"


def history_entries(op: Op) -> list[dict]:
    """The history entries an op's metadata carries (``mason.history``), in order."""
    raw = op.metadata.describe(HISTORY_KEY)
    if raw is None:
        return []
    try:
        v = json.loads(raw)
    except ValueError as e:
        raise MasonError(f"{op.kind} op {op.digest}: metadata {HISTORY_KEY} is not JSON: {e}", op.loc) from None
    items = v if isinstance(v, list) else [v]
    if not all(isinstance(x, dict) for x in items):
        raise MasonError(f"{op.kind} op {op.digest}: metadata {HISTORY_KEY} must be a JSON object "
                         "or a list of objects", op.loc)
    return items


def without_history(md: OpMetadata) -> OpMetadata:
    if md.describe(HISTORY_KEY) is None:
        return md
    return OpMetadata(md.ignore_cache, tuple((k, v) for k, v in md.description if k != HISTORY_KEY),
                      md.export_cache, md.caps, md.progress_group, md.linux_resources)


def with_history(md: OpMetadata, entries: list[dict]) -> OpMetadata:
    """``md`` carrying exactly ``entries`` (none: the key removed)."""
    md = without_history(md)
    if not entries:
        return md
    value = entries[0] if len(entries) == 1 else entries
    return md.with_descriptions({HISTORY_KEY: json.dumps(value, separators=(",", ":"), sort_keys=True)})


def _side(op: Op, i: int | None) -> Ref | None:
    if i is None or not 0 <= i < len(op.inputs):
        return None
    return op.inputs[i]


def layer_inputs(op: Op, index: int = 0) -> list[Ref]:
    """The refs output ``index`` of ``op`` is layered on (see the module docstring). A DiffOp's
    upper side is returned; :func:`layer_chain` subtracts the lower side."""
    t = type(op)
    n = len(op.inputs)
    if t is ConfigOp:
        return list(op.inputs[:1])
    if t is ExecOp:
        m = op.mount_for_output(index)
        return [op.inputs[m.input]] if m is not None and 0 <= m.input < n else []
    if t is FileOp:
        acts = op.actions
        k = next((j for j, a in enumerate(acts) if a.output == index), None)
        while k is not None:
            i = acts[k].input
            if 0 <= i < n:
                return [op.inputs[i]]
            if n <= i < n + k:  # the result of an earlier action
                k = i - n
                continue
            break
        return []
    if t is MergeOp:
        return [op.inputs[i] for i in op.merge_inputs if 0 <= i < n]
    if t is DiffOp:
        up = _side(op, op.upper)
        return [up] if up is not None else []
    return []


def _reach(ref: Ref) -> set[str]:
    """Digests of every op reachable from ``ref`` along layer inputs."""
    seen: set[str] = set()
    stack = [ref]
    while stack:
        r = stack.pop()
        dg = r.op.digest
        if dg in seen:
            continue
        seen.add(dg)
        stack.extend(layer_inputs(r.op, r.index))
    return seen


def layer_chain(ref: Ref) -> list[Op]:
    """The ops whose config changes and history apply to ``ref``'s image, in the order they
    apply (inputs first, each digest once). Iterative."""
    order: list[Op] = []
    seen: set[str] = set()
    stack: list[list] = []  # [op, children, next child, blocked digests]

    def push(r: Ref, blocked: frozenset[str]) -> None:
        op = r.op
        dg = op.digest
        if dg in seen or dg in blocked:
            return
        seen.add(dg)
        if type(op) is DiffOp:
            low = _side(op, op.lower)
            if low is not None:
                blocked = blocked | _reach(low)
        stack.append([op, layer_inputs(op, r.index), 0, blocked])

    push(ref, frozenset())
    while stack:
        top = stack[-1]
        kids = top[1]
        if top[2] < len(kids):
            top[2] += 1
            push(kids[top[2] - 1], top[3])
            continue
        stack.pop()
        order.append(top[0])
    return order


def fold_image_config(config: dict | None, chain: Iterable[Op]) -> dict | None:
    """``config`` with the ConfigOp changes and history entries of ``chain`` applied in order.
    Returned as is (the same object) when the chain carries none; a None config starts empty."""
    cur: dict | None = None
    folder: ConfigFolder | None = None  # one across the chain: linear in its changes
    hist: list = []
    had_history = False
    for op in chain:
        entries = history_entries(op)
        is_cfg = type(op) is ConfigOp
        if not entries and not (is_cfg and (op.changes or op.created_by)):
            continue
        if cur is None:
            cur = copy.deepcopy(config) if config is not None else {}
            had_history = "history" in cur
            hist = list(cur.pop("history", None) or ())
            if not isinstance(cur.get("config"), dict):  # as apply_config_changes: always an object
                cur["config"] = {}
        if is_cfg:
            if op.changes:
                try:
                    if folder is None or folder.config is not cur:
                        folder = ConfigFolder(cur)
                    cur = folder.apply(op.changes)
                except MasonError as e:
                    raise MasonError(f"config op {op.digest}: {e.message}", op.loc) from None
                except (ValueError, TypeError, AttributeError) as e:  # a field of another JSON type
                    raise MasonError(f"config op {op.digest}: cannot apply {op.created_by or 'its changes'!r} "
                                     f"to the image config: {e}", op.loc) from None
            if op.created_by:
                hist.append({"created_by": op.created_by, "comment": HISTORY_COMMENT, "empty_layer": True})
        hist.extend(copy.deepcopy(entries))
    if cur is None:
        return config
    if hist or had_history:
        cur["history"] = hist
    return cur
