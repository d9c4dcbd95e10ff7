"""The LLB protobuf codec: typed ops ⇄ ``pb.Op`` / ``pb.Definition`` bytes.

Only this module and its parts (and the dumpers, through :func:`op_to_pb`) touch the generated
LLB module. The parts, each using only those above it: :mod:`.codec_sourcemap` (``Definition.Source``),
:mod:`.codec_encode` (ops and metadata to ``pb`` and bytes), :mod:`.codec_decode` (one ``pb.Op`` to a
typed op, with its checks), :mod:`.codec_stream` (several Definitions in one file); this module
marshals and decodes whole Definitions and re-exports the public names.
Encoding is deterministic and byte-identical to BuildKit v0.32.2 (protobuf-go's deterministic
marshaling): defaults omitted, packed scalars, sorted map keys, fields in number order — except
that an ``Op``'s ``platform`` and ``constraints`` come before its oneof body (protobuf-go writes
the fields outside a oneof first; :func:`marshal_op_pb`). BuildKit before v0.17 (gogo) wrote
pure field-number order: such ops decode, under their own digests (see ``noncanonical`` below).

Framing of several outputs (:func:`encode_graph`): each output is one plain Definition, exactly
what BuildKit reads; the terminal op's metadata description carries ``mason.output.name`` (and
``mason.image.config``, compact JSON with sorted keys). To keep several in one file, use
:func:`write_stream` / :func:`read_stream`: the magic line ``mason-llb-stream\n`` then
``uvarint(len) + Definition`` records (protobuf's length-delimited framing). A file holding one
output is written as the bare Definition instead, so BuildKit can read it; :func:`decode_graph`
reads both.

Per-field decode decisions (everything in ``llb.proto`` is modeled; presence is kept wherever it
changes the bytes):

* ``Op.inputs`` → ``Op.inputs`` as :class:`Ref` to the decoded op of that digest (any order in
  ``def`` is accepted, as BuildKit does); a digest missing from the Definition is an error.
* ``Op.platform`` → :class:`Platform` or None (absent); ``Op.constraints`` → ``tuple`` of filters
  or None (absent; ``()`` = present but empty, which BuildKit v0.11 writes).
* ``exec``: every Meta field (``proxy_env`` None = absent, ``validExitCodes`` kept), every Mount
  field (``TmpfsOpt``/``cacheOpt``/``secretOpt``/``SSHOpt`` None = absent, present-but-empty kept),
  enums as IntEnums (unknown numbers kept as plain ints), ``secretenv``, ``cdiDevices``.
* ``source``: identifier and attrs as sorted pairs.
* ``file``: every action field; ``mode``/``timestamp`` raw ints (BuildKit writes -1 for unset);
  ``owner`` None = absent, ``ChownOpt.user``/``group`` None = absent; ``UserOpt`` byID (0 = root,
  written when set) or byName (name + input).
* ``merge``: input indices; ``diff``: ``lower``/``upper`` None = absent message, else its index.
* ``config`` (mason, field 1000): changes and created_by.
* ``build`` and ``passthrough``: not modeled; decoding one is an error naming the op.
* ``OpMetadata``: every field; ``export_cache`` None = absent; ``linux_resources`` only as
  present/absent (its contents are not modeled: a non-empty one is an unknown-field error).
* ``Definition.Source`` → :class:`SourceMap` (infos, nested definitions kept as bytes, and the
  per-digest locations); the first range of an op's first location also becomes its ``loc``.
* Any unknown field, at any level of an op, its metadata or the Definition, is an error naming
  the op digest and the field number. An op whose re-encoding differs from its bytes for another
  reason (another encoder: BuildKit before v0.17 wrote pure field-number order) keeps the bytes
  and digest of the file — digests are always sha256 of the bytes in ``def``, as in BuildKit, and
  the Definition re-marshals byte for byte; ``DecodedDefinition.noncanonical`` maps such a
  digest to the one mason's own encoding of the op would have.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError

from mason.ir.caps import terminal_caps, with_op_caps
from mason.ir.codec_decode import find_unknown, metadata_from_pb, op_from_pb, validate
from mason.ir.codec_encode import encode_op, encode_op_uncached, marshal_op_pb, metadata_to_pb, op_to_pb, utf8_error
from mason.ir.codec_sourcemap import SourceInfo, SourceLocation, SourceMap
from mason.ir.codec_stream import STREAM_MAGIC, read_stream, write_stream
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.llb_pb import pb
from mason.ir.ops import EMPTY_METADATA, Op, OpMetadata, Ref, walk_ops

__all__ = [
    "IMAGE_CONFIG_KEY", "OUTPUT_NAME_KEY", "SourceInfo", "SourceLocation", "SourceMap",
    "DecodedDefinition", "op_to_pb", "encode_op", "encode_op_uncached", "metadata_to_pb",
    "metadata_from_pb", "op_from_pb", "marshal", "marshal_op_pb", "encode_graph", "decode_definition",
    "decode_graph", "write_stream", "read_stream", "digest_of", "STREAM_MAGIC",
]

IMAGE_CONFIG_KEY = "mason.image.config"
OUTPUT_NAME_KEY = "mason.output.name"

P = pb()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()



def _terminal_bytes(ref: Ref) -> bytes:
    t = P.Op()
    t.inputs.add(digest=ref.op.digest, index=ref.index)
    return t.SerializeToString(deterministic=True)


def marshal(ref: Ref | Op, image_config: dict | None = None, metadata: bool = True, *,
            name: str | None = None, terminal_metadata: OpMetadata | None = None,
            source: SourceMap | None = None, source_map: bool = True) -> bytes:
    """One Definition for ``ref``: every op once, inputs first, then the bare terminal op.

    With ``metadata``, each op's non-empty :class:`OpMetadata` is written keyed by its digest,
    and the terminal op's carries ``terminal_metadata`` plus ``mason.image.config`` (compact JSON)
    and ``mason.output.name``. ``source`` is written as ``Definition.Source`` as is; otherwise,
    with ``source_map``, one is made from the ops' ``loc``."""
    if isinstance(ref, Op):
        ref = Ref(ref, 0)
    try:
        return _marshal(ref, image_config, metadata, name, terminal_metadata, source, source_map)
    except UnicodeEncodeError as e:
        raise utf8_error("the LLB definition", {"name": name, "source": source}, e) from None


def _marshal(ref: Ref, image_config: dict | None, metadata: bool, name: str | None,
             terminal_metadata: OpMetadata | None, source: SourceMap | None,
             source_map: bool) -> bytes:
    ops = walk_ops([ref.op])
    d = P.Definition()
    defs = getattr(d, "def")
    seen: set[str] = set()
    uniq: list[Op] = []
    written: list[OpMetadata] = []
    for op in ops:
        dg = op.digest
        if dg in seen:
            continue
        seen.add(dg)
        uniq.append(op)
        defs.append(op.bytes)
        if metadata:
            md = with_op_caps(op)
            if not md.is_empty():
                written.append(md)
                d.metadata[dg].CopyFrom(metadata_to_pb(md))
    term = _terminal_bytes(ref)
    defs.append(term)
    if metadata:
        tmd = terminal_metadata if terminal_metadata is not None else EMPTY_METADATA
        tmd = tmd.with_caps(tuple(sorted(terminal_caps(written))))
        extra: dict[str, str] = {}
        if image_config is not None:
            extra[IMAGE_CONFIG_KEY] = json.dumps(image_config, separators=(",", ":"), sort_keys=True)
        if name is not None:
            extra[OUTPUT_NAME_KEY] = name
        if extra:
            tmd = tmd.with_descriptions(extra)
        if not tmd.is_empty():
            d.metadata[digest_of(term)].CopyFrom(metadata_to_pb(tmd))
    if source is not None:
        d.Source.CopyFrom(source.to_pb())
    elif source_map:
        sm = SourceMap.from_ops(uniq)
        if sm is not None:
            d.Source.CopyFrom(sm.to_pb())
    return d.SerializeToString(deterministic=True)


def encode_graph(graph: Any, metadata: bool = True) -> list[bytes]:
    """One Definition per output of ``graph`` (named by ``mason.output.name``)."""
    return [marshal(o.ref, o.image_config, metadata, name=o.name,
                    terminal_metadata=getattr(o, "metadata", None))
            for o in graph.outputs]



@dataclass
class DecodedDefinition:
    """A decoded Definition: the typed ops (file order), the result and what rode along."""

    ref: Ref
    ops: list[Op]
    metadata: dict[str, OpMetadata]
    image_config: dict | None
    terminal_digest: str
    terminal_metadata: OpMetadata | None
    name: str | None = None
    source: SourceMap | None = None
    noncanonical: dict[str, str] = field(default_factory=dict)

    @property
    def graph(self) -> Any:
        from mason.ir.graph import Graph, Output

        tmd = self.terminal_metadata
        if tmd is not None:
            tmd = OpMetadata(tmd.ignore_cache, tuple((k, v) for k, v in tmd.description
                                                     if k not in (IMAGE_CONFIG_KEY, OUTPUT_NAME_KEY)),
                             tmd.export_cache, tmd.caps, tmd.progress_group, tmd.linux_resources)
        return Graph((Output(self.name or "default", self.ref, self.image_config, tmd),))


def decode_definition(data: bytes) -> DecodedDefinition:
    """Decode one Definition into the typed IR (see the module docstring for field decisions)."""
    # No GC pause here: it bought 11 % decoding the lowering of bench/lower_bench.py (939 vs
    # 1055 ms CPU, median of 7, 2026-12-07), under the 20 % a process-wide pause must buy
    # (issue 12; mason.ir.gcpause).
    return _decode_definition(data)


def _decode_definition(data: bytes) -> DecodedDefinition:
    try:
        d = P.Definition.FromString(data)
    except DecodeError:
        raise MasonError(f"not an LLB Definition: {len(data)} bytes that do not decode as a "
                         "protobuf pb.Definition (truncated, or another kind of file)") from None
    unk = _unknown.UnknownFieldSet(d)
    if len(unk):
        raise MasonError(f"not an LLB Definition: unknown field {unk[0].field_number} at the top level")
    raw = list(getattr(d, "def"))
    if len(raw) < 2:
        raise MasonError(f"Definition has {len(raw)} op{'s' if len(raw) != 1 else ''}; "
                         "it needs at least 2 (the ops and a terminal op)")
    digests = [digest_of(b) for b in raw]
    pos: dict[str, int] = {}
    for i, dg in enumerate(digests):
        if dg in pos:
            raise MasonError(f"duplicate op {dg} (ops #{pos[dg]} and #{i})")
        pos[dg] = i
    pbs = []
    for i, b in enumerate(raw):
        try:
            pbs.append(P.Op.FromString(b))
        except DecodeError as e:
            raise MasonError(f"op #{i} {digests[i]}: not an LLB Op: {e}") from None
    term_i = len(raw) - 1
    term = pbs[term_i]
    tdg = digests[term_i]
    w = term.WhichOneof("op")
    if w is not None or term.HasField("platform") or term.HasField("constraints"):
        what = f"a {w} op" if w else ("a platform" if term.HasField("platform") else "constraints")
        raise MasonError(f"Definition has no terminal op: the last op {tdg} has {what}")
    if len(term.inputs) != 1:
        raise MasonError(f"terminal op {tdg} has {len(term.inputs)} inputs; it must name exactly one result")
    r = find_unknown(term, "Op")
    if r:
        raise MasonError(f"terminal op {tdg}: unknown field {r[0]} in {r[1]}")

    # metadata and source map
    metadata: dict[str, OpMetadata] = {}
    for k, m in d.metadata.items():
        r = find_unknown(m, "OpMetadata")
        if r:
            raise MasonError(f"metadata of op {k}: unknown field {r[0]} in {r[1]}")
        metadata[k] = metadata_from_pb(m)
    source = None
    if d.HasField("Source"):
        r = find_unknown(d.Source, "Definition.Source")
        if r:
            raise MasonError(f"Definition source map: unknown field {r[0]} in {r[1]}")
        source = SourceMap.from_pb(d.Source)
    locs: dict[str, SourceLoc] = {}
    if source is not None and source.infos:
        for dg, _ in source.locations:
            loc = source.loc_for(dg)
            if loc is not None:
                locs[dg] = loc

    # build typed ops, inputs first, whatever the file order
    typed: list[Op | None] = [None] * term_i
    noncanonical: dict[str, str] = {}
    for start in range(term_i):
        if typed[start] is not None:
            continue
        stack = [start]
        while stack:
            i = stack[-1]
            if typed[i] is not None:
                stack.pop()
                continue
            m = pbs[i]
            pending = False
            for j, inp in enumerate(m.inputs):
                k = pos.get(inp.digest)
                if k is None or k == term_i:
                    raise MasonError(f"op #{i} {digests[i]}: input {j} names {inp.digest or '(empty)'}, "
                                     "which is not in the Definition")
                if typed[k] is None:
                    stack.append(k)
                    pending = True
            if pending:
                continue
            stack.pop()
            dg = digests[i]
            inputs = tuple(Ref(typed[pos[x.digest]], x.index) for x in m.inputs)  # type: ignore[arg-type]
            try:
                op = op_from_pb(m, inputs, metadata.get(dg, EMPTY_METADATA), locs.get(dg))
                validate(op)
            except ValueError as e:
                kind = m.WhichOneof("op") or "bare"
                raise MasonError(f"op #{i} {dg} ({kind}): {e}") from None
            data_i = encode_op_uncached(op)
            if data_i != raw[i]:
                r = find_unknown(m, "Op")
                if r:
                    raise MasonError(f"op #{i} {dg}: unknown field {r[0]} in {r[1]}")
                noncanonical[dg] = digest_of(data_i)
            # the op is what the file says: its bytes and digest are the file's, even where mason
            # would encode it otherwise (another encoder's field order), so digests are
            # BuildKit's and the Definition re-marshals to the same bytes
            object.__setattr__(op, "_bytes", raw[i])
            object.__setattr__(op, "_digest", dg)
            typed[i] = op
    ops: list[Op] = typed  # type: ignore[assignment]
    ti = term.inputs[0]
    k = pos.get(ti.digest)
    if k is None or k == term_i:
        raise MasonError(f"terminal op {tdg} names {ti.digest or '(empty)'}, which is not in the Definition")
    if ti.index < 0:
        raise MasonError(f"terminal op {tdg} names output {ti.index}")
    ref = Ref(ops[k], ti.index)
    tmd = metadata.get(tdg)
    image_config = None
    name = None
    if tmd is not None:
        cfg = tmd.describe(IMAGE_CONFIG_KEY)
        if cfg is not None:
            try:
                image_config = json.loads(cfg)
            except ValueError as e:
                raise MasonError(f"terminal op {tdg}: {IMAGE_CONFIG_KEY} is not JSON: {e}") from None
        name = tmd.describe(OUTPUT_NAME_KEY)
    return DecodedDefinition(ref, ops, metadata, image_config, tdg, tmd, name, source, noncanonical)


def decode_graph(data: bytes) -> Any:
    """A Graph from one Definition or a :func:`write_stream` of several (one output each)."""
    from mason.ir.graph import Graph

    if not data.startswith(STREAM_MAGIC):
        return decode_definition(data).graph
    outs = []
    for k, rec in enumerate(read_stream(data)):
        try:
            outs.extend(decode_definition(rec).graph.outputs)
        except MasonError as e:
            raise MasonError(f"Definition {k} of the stream: {e.message}") from None
    if not outs:
        raise MasonError("empty Definition stream")
    return Graph(tuple(outs))
