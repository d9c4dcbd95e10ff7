"""The LLB protobuf codec: typed ops ⇄ ``pb.Op`` / ``pb.Definition`` bytes.

Only this module (and the dumpers, through :func:`op_to_pb`) touches the generated LLB module.
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
from typing import Any, Iterable

from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError

from mason.ir.caps import terminal_caps, with_op_caps
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.llb_pb import pb
from mason.ir.ops import (
    EMPTY_METADATA,
    CacheOpt,
    CacheSharing,
    CDIDevice,
    ChownOpt,
    ConfigChange,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    HostIP,
    MergeOp,
    Meta,
    MkDir,
    MkFile,
    Mount,
    MountContentCache,
    MountType,
    NetMode,
    Op,
    OpMetadata,
    Platform,
    ProgressGroup,
    ProxyEnv,
    Ref,
    Rm,
    SecretEnv,
    SecretOpt,
    SecurityMode,
    SourceOp,
    SSHOpt,
    Symlink,
    TmpfsOpt,
    Ulimit,
    UserOpt,
    walk_ops,
)

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


# ================================================================ source map (optional)

@dataclass(frozen=True, slots=True)
class SourceInfo:
    filename: str
    data: bytes = b""
    language: str = ""
    definition: bytes | None = None  # a nested Definition, kept serialized


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """``ranges``: (start line, start character, end line, end character)."""

    source_index: int
    ranges: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceMap:
    """LLB's ``Definition.Source``: file infos and, per op digest, locations into them. Like
    BuildKit's source map, kept out of the digests."""

    infos: tuple[SourceInfo, ...] = ()
    locations: tuple[tuple[str, tuple[SourceLocation, ...]], ...] = ()

    def to_pb(self) -> Any:
        src = P.Source()
        for info in self.infos:
            pi = src.infos.add(filename=info.filename, data=info.data, language=info.language)
            if info.definition is not None:
                pi.definition.ParseFromString(info.definition)
                pi.definition.SetInParent()
        for dgst, locs in self.locations:
            pl = src.locations[dgst]
            for loc in locs:
                pbloc = pl.locations.add(sourceIndex=loc.source_index)
                for sl, sc, el, ec in loc.ranges:
                    r = pbloc.ranges.add()
                    r.start.line, r.start.character = sl, sc
                    r.end.line, r.end.character = el, ec
        return src

    @staticmethod
    def from_pb(src: Any) -> "SourceMap":
        infos = tuple(
            SourceInfo(i.filename, i.data, i.language,
                       i.definition.SerializeToString(deterministic=True) if i.HasField("definition") else None)
            for i in src.infos)
        locs = []
        for dgst in sorted(src.locations):
            pl = src.locations[dgst]
            locs.append((dgst, tuple(
                SourceLocation(pbloc.sourceIndex, tuple((r.start.line, r.start.character, r.end.line,
                                                         r.end.character) for r in pbloc.ranges))
                for pbloc in pl.locations)))
        return SourceMap(infos, tuple(locs))

    def loc_for(self, digest: str) -> SourceLoc | None:
        for dgst, locs in self.locations:
            if dgst == digest:
                for sloc in locs:
                    if 0 <= sloc.source_index < len(self.infos) and sloc.ranges:
                        sl, sc, el, ec = sloc.ranges[0]
                        return SourceLoc(self.infos[sloc.source_index].filename, sl, sc + 1, el, ec + 1)
                return None
        return None

    @staticmethod
    def from_ops(ops: Iterable[Op]) -> "SourceMap | None":
        files: dict[str, int] = {}
        locs = []
        seen = set()
        for op in ops:
            loc = op.loc
            if loc is None or op.digest in seen:
                continue
            seen.add(op.digest)
            idx = files.setdefault(loc.file, len(files))
            el = loc.end_line if loc.end_line is not None else loc.line
            ec = loc.end_col if loc.end_col is not None else loc.col
            locs.append((op.digest, (SourceLocation(idx, ((loc.line, loc.col - 1, el, ec - 1),)),)))
        if not locs:
            return None
        return SourceMap(tuple(SourceInfo(f) for f in files), tuple(sorted(locs)))


# ================================================================ encoding

def _platform_pb(p: Platform) -> Any:
    return P.Platform(Architecture=p.architecture, OS=p.os, Variant=p.variant, OSVersion=p.os_version,
                      OSFeatures=p.os_features)


def _user_pb(u: UserOpt) -> Any:
    if u.name is not None:
        return P.UserOpt(byName=P.NamedUserOpt(name=u.name, input=u.name_input))
    if u.id is not None:
        return P.UserOpt(byID=u.id)
    return P.UserOpt()


def _chown_pb(c: ChownOpt) -> Any:
    m = P.ChownOpt()
    if c.user is not None:
        m.user.CopyFrom(_user_pb(c.user))
    if c.group is not None:
        m.group.CopyFrom(_user_pb(c.group))
    return m


def _mount_pb(m: Mount) -> Any:
    pm = P.Mount(input=m.input, selector=m.selector, dest=m.dest, output=m.output, readonly=m.readonly,
                 mountType=m.mount_type, resultID=m.result_id, contentCache=m.content_cache)
    if m.tmpfs is not None:
        pm.TmpfsOpt.size = m.tmpfs.size
        pm.TmpfsOpt.SetInParent()
    if m.cache is not None:
        pm.cacheOpt.ID = m.cache.id
        pm.cacheOpt.sharing = m.cache.sharing
        pm.cacheOpt.SetInParent()
    if m.secret is not None:
        s = m.secret
        pm.secretOpt.CopyFrom(P.SecretOpt(ID=s.id, uid=s.uid, gid=s.gid, mode=s.mode, optional=s.optional))
    if m.ssh is not None:
        s = m.ssh
        pm.SSHOpt.CopyFrom(P.SSHOpt(ID=s.id, uid=s.uid, gid=s.gid, mode=s.mode, optional=s.optional))
    return pm


def _meta_pb(m: Meta) -> Any:
    pm = P.Meta(args=m.args, env=m.env, cwd=m.cwd, user=m.user, hostname=m.hostname,
                cgroupParent=m.cgroup_parent, removeMountStubsRecursive=m.remove_mount_stubs_recursive,
                validExitCodes=m.valid_exit_codes)
    if m.proxy_env is not None:
        e = m.proxy_env
        pm.proxy_env.CopyFrom(P.ProxyEnv(http_proxy=e.http_proxy, https_proxy=e.https_proxy,
                                         ftp_proxy=e.ftp_proxy, no_proxy=e.no_proxy, all_proxy=e.all_proxy))
    for h in m.extra_hosts:
        pm.extraHosts.add(Host=h.host, IP=h.ip)
    for u in m.ulimits:
        pm.ulimit.add(Name=u.name, Soft=u.soft, Hard=u.hard)
    return pm


def _action_pb(a: FileAction) -> Any:
    pa = P.FileAction(input=a.input, secondaryInput=a.secondary_input, output=a.output)
    x = a.action
    t = type(x)
    if t is Copy:
        c = pa.copy
        c.src, c.dest, c.mode = x.src, x.dest, x.mode
        c.followSymlink, c.dirCopyContents = x.follow_symlink, x.dir_copy_contents
        c.attemptUnpackDockerCompatibility, c.createDestPath = x.attempt_unpack, x.create_dest_path
        c.allowWildcard, c.allowEmptyWildcard = x.allow_wildcard, x.allow_empty_wildcard
        c.timestamp, c.alwaysReplaceExistingDestPaths, c.modeStr = x.timestamp, x.always_replace_existing, x.mode_str
        c.include_patterns.extend(x.include_patterns)
        c.exclude_patterns.extend(x.exclude_patterns)
        c.required_paths.extend(x.required_paths)
        if x.owner is not None:
            c.owner.CopyFrom(_chown_pb(x.owner))
        c.SetInParent()
    elif t is MkFile:
        pa.mkfile.CopyFrom(P.FileActionMkFile(path=x.path, mode=x.mode, data=x.data, timestamp=x.timestamp))
        if x.owner is not None:
            pa.mkfile.owner.CopyFrom(_chown_pb(x.owner))
    elif t is MkDir:
        pa.mkdir.CopyFrom(P.FileActionMkDir(path=x.path, mode=x.mode, makeParents=x.make_parents,
                                            timestamp=x.timestamp))
        if x.owner is not None:
            pa.mkdir.owner.CopyFrom(_chown_pb(x.owner))
    elif t is Rm:
        pa.rm.CopyFrom(P.FileActionRm(path=x.path, allowNotFound=x.allow_not_found, allowWildcard=x.allow_wildcard))
    elif t is Symlink:
        pa.symlink.CopyFrom(P.FileActionSymlink(oldpath=x.oldpath, newpath=x.newpath, timestamp=x.timestamp))
        if x.owner is not None:
            pa.symlink.owner.CopyFrom(_chown_pb(x.owner))
    else:
        raise MasonError(f"unknown file action {type(x).__name__}")
    return pa


def _not_utf8(value: Any, path: str) -> tuple[str, str] | None:
    """(field path, value) of the first string under ``value`` that is not valid UTF-8 (text
    that came from bytes, kept as surrogate escapes)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, value
        return None
    if isinstance(value, bytes) or not value:
        return None
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            hit = _not_utf8(v, f"{path}[{i}]")
            if hit is not None:
                return hit
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            hit = _not_utf8(k, f"{path} key") or _not_utf8(v, f"{path}[{k!r}]")
            if hit is not None:
                return hit
        return None
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        for name in fields:
            if name in ("inputs", "metadata", "loc"):
                continue
            hit = _not_utf8(getattr(value, name, None), f"{path}.{name}" if path else name)
            if hit is not None:
                return hit
    return None


def _utf8_error(what: str, value: Any, e: UnicodeEncodeError) -> MasonError:
    """A :class:`MasonError` for text LLB cannot carry: proto3 strings must be valid UTF-8
    (BuildKit refuses such an op when it marshals it)."""
    hit = _not_utf8(value, "")
    if hit is None:
        return MasonError(f"cannot encode {what}: a string is not valid UTF-8 ({e.reason})")
    path, text = hit
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MasonError(f"cannot encode {what}: {path or 'a string'} is not valid UTF-8 "
                      f"(\"{shown}\"); LLB strings must be UTF-8")


def op_to_pb(op: Op) -> Any:
    """The ``pb.Op`` of a typed op (input digests from the inputs' cached digests). Text that
    is not valid UTF-8 is a :class:`MasonError` naming the op kind and the field."""
    head, body = _op_parts(op)
    head.MergeFrom(body)
    return head


def _op_parts(op: Op) -> tuple[Any, Any]:
    try:
        return _op_to_pb(op)
    except UnicodeEncodeError as e:
        raise _utf8_error(type(op).__name__, op, e) from None


def _op_to_pb(op: Op) -> tuple[Any, Any]:
    """(head, body): ``inputs``, ``platform`` and ``constraints`` in one message, the oneof
    body in the other — protobuf-go writes them in that order (see :func:`marshal_op_pb`)."""
    h = P.Op()
    for r in op.inputs:
        h.inputs.add(digest=r.op.digest, index=r.index)
    if op.platform is not None:
        h.platform.CopyFrom(_platform_pb(op.platform))
    if op.constraints is not None:
        h.constraints.filter.extend(op.constraints)
        h.constraints.SetInParent()
    m = P.Op()
    t = type(op)
    if t is ExecOp:
        e = m.exec
        e.meta.CopyFrom(_meta_pb(op.meta))
        e.mounts.extend([_mount_pb(x) for x in op.mounts])
        e.network, e.security = op.network, op.security
        for s in op.secret_env:
            e.secretenv.add(ID=s.id, name=s.name, optional=s.optional)
        for d in op.cdi_devices:
            e.cdiDevices.add(name=d.name, optional=d.optional)
    elif t is SourceOp:
        s = m.source
        s.identifier = op.identifier
        for k, v in op.attrs:
            s.attrs[k] = v
        s.SetInParent()
    elif t is FileOp:
        m.file.actions.extend([_action_pb(a) for a in op.actions])
        m.file.SetInParent()
    elif t is MergeOp:
        for i in op.merge_inputs:
            m.merge.inputs.add(input=i)
        m.merge.SetInParent()
    elif t is DiffOp:
        d = m.diff
        if op.lower is not None:
            d.lower.input = op.lower
            d.lower.SetInParent()
        if op.upper is not None:
            d.upper.input = op.upper
            d.upper.SetInParent()
        d.SetInParent()
    elif t is ConfigOp:
        c = m.config
        for ch in op.changes:
            c.changes.add(action=ch.action, key=ch.key, value=ch.value)
        c.created_by = op.created_by
        c.SetInParent()
    else:
        raise MasonError(f"cannot encode op type {type(op).__name__}")
    return h, m


def marshal_op_pb(m: Any) -> bytes:
    """The bytes of a ``pb.Op`` as BuildKit (v0.17+, protobuf-go, deterministic) writes them:
    the fields outside the ``op`` oneof in field-number order (``inputs`` 1, ``platform`` 10,
    ``constraints`` 11), then the oneof body. Python's protobuf would write field-number order
    throughout, putting ``exec``/``source``/``file`` (2–8) before the platform. ``Op`` is the only
    LLB message where the two orders differ: ``FileAction``'s oneof (4–8) follows its other
    fields (1–3) by number already, and ``UserOpt`` has nothing outside its oneof."""
    w = m.WhichOneof("op")
    if w is None:
        return m.SerializeToString(deterministic=True)
    body = P.Op()
    getattr(body, w).CopyFrom(getattr(m, w))
    head = P.Op()
    head.CopyFrom(m)
    head.ClearField(w)
    return head.SerializeToString(deterministic=True) + body.SerializeToString(deterministic=True)


def encode_op_uncached(op: Op) -> bytes:
    head, body = _op_parts(op)
    return head.SerializeToString(deterministic=True) + body.SerializeToString(deterministic=True)


def encode_op(op: Op) -> bytes:
    """The op's deterministic bytes (cached on the op)."""
    return op.bytes


def metadata_to_pb(md: OpMetadata) -> Any:
    try:
        return _metadata_to_pb(md)
    except UnicodeEncodeError as e:
        raise _utf8_error("op metadata", md, e) from None


def _metadata_to_pb(md: OpMetadata) -> Any:
    m = P.OpMetadata(ignore_cache=md.ignore_cache, description=dict(md.description), caps=dict(md.caps))
    if md.export_cache is not None:
        m.export_cache.Value = md.export_cache
        m.export_cache.SetInParent()
    if md.progress_group is not None:
        g = md.progress_group
        m.progress_group.CopyFrom(P.ProgressGroup(id=g.id, name=g.name, weak=g.weak))
    if md.linux_resources:
        m.linux_resources.SetInParent()
    return m


def metadata_from_pb(m: Any) -> OpMetadata:
    return OpMetadata(
        ignore_cache=m.ignore_cache,
        description=tuple(sorted(m.description.items())),
        export_cache=m.export_cache.Value if m.HasField("export_cache") else None,
        caps=tuple(sorted(m.caps.items())),
        progress_group=(ProgressGroup(m.progress_group.id, m.progress_group.name, m.progress_group.weak)
                        if m.HasField("progress_group") else None),
        linux_resources=m.HasField("linux_resources"),
    )


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
        raise _utf8_error("the LLB definition", {"name": name, "source": source}, e) from None


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


STREAM_MAGIC = b"mason-llb-stream\n"


def write_stream(definitions: Iterable[bytes]) -> bytes:
    """Several Definitions in one file: the magic line, then ``uvarint(len) + bytes`` records."""
    out = bytearray(STREAM_MAGIC)
    for d in definitions:
        n = len(d)
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
        out += d
    return bytes(out)


def read_stream(data: bytes) -> list[bytes]:
    """The records of :func:`write_stream`."""
    if not data.startswith(STREAM_MAGIC):
        raise MasonError("not a mason Definition stream (no mason-llb-stream header)")
    out = []
    i, n = len(STREAM_MAGIC), len(data)
    while i < n:
        length = shift = 0
        while True:
            if i >= n:
                raise MasonError("truncated Definition stream: record length cut off")
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise MasonError("bad Definition stream: record length too long")
        if i + length > n:
            raise MasonError(f"truncated Definition stream: record needs {length} bytes, {n - i} left")
        out.append(data[i:i + length])
        i += length
    return out


# ================================================================ decoding

def _enum(cls: Any, v: int) -> Any:
    try:
        return cls(v)
    except ValueError:
        return v


def _user_from(u: Any) -> UserOpt:
    w = u.WhichOneof("user")
    if w == "byName":
        return UserOpt(name=u.byName.name, name_input=u.byName.input)
    if w == "byID":
        return UserOpt(id=u.byID)
    return UserOpt()


def _chown_from(c: Any) -> ChownOpt:
    return ChownOpt(_user_from(c.user) if c.HasField("user") else None,
                    _user_from(c.group) if c.HasField("group") else None)


def _owner(m: Any) -> ChownOpt | None:
    return _chown_from(m.owner) if m.HasField("owner") else None


def _action_from(a: Any) -> FileAction:
    w = a.WhichOneof("action")
    if w == "copy":
        c = a.copy
        x: Any = Copy(c.src, c.dest, _owner(c), c.mode, c.followSymlink, c.dirCopyContents,
                      c.attemptUnpackDockerCompatibility, c.createDestPath, c.allowWildcard, c.allowEmptyWildcard,
                      c.timestamp, tuple(c.include_patterns), tuple(c.exclude_patterns),
                      c.alwaysReplaceExistingDestPaths, c.modeStr, tuple(c.required_paths))
    elif w == "mkfile":
        c = a.mkfile
        x = MkFile(c.path, c.mode, c.data, _owner(c), c.timestamp)
    elif w == "mkdir":
        c = a.mkdir
        x = MkDir(c.path, c.mode, c.makeParents, _owner(c), c.timestamp)
    elif w == "rm":
        c = a.rm
        x = Rm(c.path, c.allowNotFound, c.allowWildcard)
    elif w == "symlink":
        c = a.symlink
        x = Symlink(c.oldpath, c.newpath, _owner(c), c.timestamp)
    else:
        raise ValueError("a file action has no action")
    return FileAction(a.input, a.secondaryInput, a.output, x)


def _mount_from(m: Any) -> Mount:
    return Mount(
        m.input, m.selector, m.dest, m.output, m.readonly, _enum(MountType, m.mountType),
        TmpfsOpt(m.TmpfsOpt.size) if m.HasField("TmpfsOpt") else None,
        CacheOpt(m.cacheOpt.ID, _enum(CacheSharing, m.cacheOpt.sharing)) if m.HasField("cacheOpt") else None,
        SecretOpt(m.secretOpt.ID, m.secretOpt.uid, m.secretOpt.gid, m.secretOpt.mode, m.secretOpt.optional)
        if m.HasField("secretOpt") else None,
        SSHOpt(m.SSHOpt.ID, m.SSHOpt.uid, m.SSHOpt.gid, m.SSHOpt.mode, m.SSHOpt.optional)
        if m.HasField("SSHOpt") else None,
        m.resultID, _enum(MountContentCache, m.contentCache))


def _meta_from(m: Any) -> Meta:
    pe = m.proxy_env
    return Meta(
        tuple(m.args), tuple(m.env), m.cwd, m.user,
        ProxyEnv(pe.http_proxy, pe.https_proxy, pe.ftp_proxy, pe.no_proxy, pe.all_proxy)
        if m.HasField("proxy_env") else None,
        tuple(HostIP(h.Host, h.IP) for h in m.extraHosts), m.hostname,
        tuple(Ulimit(u.Name, u.Soft, u.Hard) for u in m.ulimit), m.cgroupParent,
        m.removeMountStubsRecursive, tuple(m.validExitCodes))


def op_from_pb(m: Any, inputs: tuple[Ref, ...], metadata: OpMetadata = EMPTY_METADATA,
               loc: SourceLoc | None = None) -> Op:
    """The typed op of a ``pb.Op`` whose inputs are already decoded. Raises ``ValueError``
    with a short reason for what mason does not model."""
    common: dict[str, Any] = {"inputs": inputs, "metadata": metadata, "loc": loc}
    if m.HasField("platform"):
        p = m.platform
        common["platform"] = Platform(p.Architecture, p.OS, p.Variant, p.OSVersion, tuple(p.OSFeatures))
    if m.HasField("constraints"):
        common["constraints"] = tuple(m.constraints.filter)
    w = m.WhichOneof("op")
    if w == "exec":
        e = m.exec
        return ExecOp(
            meta=_meta_from(e.meta), mounts=tuple(_mount_from(x) for x in e.mounts),
            network=_enum(NetMode, e.network), security=_enum(SecurityMode, e.security),
            secret_env=tuple(SecretEnv(s.ID, s.name, s.optional) for s in e.secretenv),
            cdi_devices=tuple(CDIDevice(d.name, d.optional) for d in e.cdiDevices), **common)
    if w == "source":
        s = m.source
        return SourceOp(s.identifier, tuple(sorted(s.attrs.items())), **common)
    if w == "file":
        return FileOp(actions=tuple(_action_from(a) for a in m.file.actions), **common)
    if w == "merge":
        return MergeOp(merge_inputs=tuple(i.input for i in m.merge.inputs), **common)
    if w == "diff":
        d = m.diff
        return DiffOp(lower=d.lower.input if d.HasField("lower") else None,
                      upper=d.upper.input if d.HasField("upper") else None, **common)
    if w == "config":
        c = m.config
        return ConfigOp(changes=tuple(ConfigChange(x.action, x.key, x.value) for x in c.changes),
                        created_by=c.created_by, **common)
    if w in ("build", "passthrough"):
        raise ValueError(f"{w} ops are not supported by mason")
    raise ValueError("it has no operation (only the last, terminal op may be bare)")


def _find_unknown(msg: Any, path: str) -> tuple[int, str] | None:
    """The first unknown field (number, where) in ``msg`` or any message inside it."""
    ufs = _unknown.UnknownFieldSet(msg)
    if len(ufs):
        return ufs[0].field_number, path
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        # a map field's value is a mapping container (its entry type's options would need
        # descriptor_pb2, a module a build otherwise never loads)
        if fd.is_repeated and hasattr(value, "items"):
            vfd = fd.message_type.fields_by_name["value"]
            if vfd.message_type is not None:
                for k, v in value.items():
                    r = _find_unknown(v, f"{path}.{fd.name}[{k}]")
                    if r:
                        return r
        elif fd.is_repeated:
            for i, v in enumerate(value):
                r = _find_unknown(v, f"{path}.{fd.name}[{i}]")
                if r:
                    return r
        else:
            r = _find_unknown(value, f"{path}.{fd.name}")
            if r:
                return r
    return None


def _check_index(what: str, value: int, lo: int, hi: int, why: str) -> None:
    if not lo <= value < hi:
        raise ValueError(f"{what} {value} out of range ({why})")


def _validate(op: Op) -> None:
    """Index checks a decoder must make (the verify pass checks the rest)."""
    n = len(op.inputs)
    t = type(op)
    if t is ExecOp:
        for i, mt in enumerate(op.mounts):
            _check_index(f"mount {i} ({mt.dest}): input", mt.input, -1, n, f"op has {n} inputs")
    elif t is FileOp:
        for k, a in enumerate(op.actions):
            hi = n + k
            why = f"op has {n} inputs and {k} earlier actions"
            _check_index(f"file action {k}: input", a.input, -1, hi, why)
            _check_index(f"file action {k}: secondary input", a.secondary_input, -1, hi, why)
    elif t is MergeOp:
        for i in op.merge_inputs:
            _check_index("merge input", i, 0, n, f"op has {n} inputs")
    elif t is DiffOp:
        for what, v in (("diff lower", op.lower), ("diff upper", op.upper)):
            if v is not None:
                _check_index(f"{what} input", v, -1, n, f"op has {n} inputs")
    for i, r in enumerate(op.inputs):
        if r.index < 0:
            raise ValueError(f"input {i} names output {r.index}")


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
    r = _find_unknown(term, "Op")
    if r:
        raise MasonError(f"terminal op {tdg}: unknown field {r[0]} in {r[1]}")

    # metadata and source map
    metadata: dict[str, OpMetadata] = {}
    for k, m in d.metadata.items():
        r = _find_unknown(m, "OpMetadata")
        if r:
            raise MasonError(f"metadata of op {k}: unknown field {r[0]} in {r[1]}")
        metadata[k] = metadata_from_pb(m)
    source = None
    if d.HasField("Source"):
        r = _find_unknown(d.Source, "Definition.Source")
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
                _validate(op)
            except ValueError as e:
                kind = m.WhichOneof("op") or "bare"
                raise MasonError(f"op #{i} {dg} ({kind}): {e}") from None
            data_i = encode_op_uncached(op)
            if data_i != raw[i]:
                r = _find_unknown(m, "Op")
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
