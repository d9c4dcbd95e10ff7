"""Encoding typed ops and their metadata as ``pb.Op`` / ``pb.OpMetadata`` and deterministic bytes,
in protobuf-go's order (:func:`marshal_op_pb`); text that is not UTF-8 is a located error. The
Definition around them is :func:`.codec.marshal`'s."""

from __future__ import annotations

from typing import Any

from mason.ir.errors import MasonError
from mason.ir.llb_pb import pb
from mason.ir.ops import (
    ChownOpt,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    Meta,
    MkDir,
    MkFile,
    Mount,
    Op,
    OpMetadata,
    Platform,
    Rm,
    SourceOp,
    Symlink,
    UserOpt,
)

P = pb()


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
        s: Any = m.secret
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
    x: Any = a.action  # one of the action types, by type(x) below
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


def utf8_error(what: str, value: Any, e: UnicodeEncodeError) -> MasonError:
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
        raise utf8_error(type(op).__name__, op, e) from None


def _op_to_pb(op: Any) -> tuple[Any, Any]:  # an Op, by type(op) below
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
        raise utf8_error("op metadata", md, e) from None


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


__all__ = ["utf8_error", "op_to_pb", "marshal_op_pb", "encode_op_uncached", "encode_op", "metadata_to_pb"]
