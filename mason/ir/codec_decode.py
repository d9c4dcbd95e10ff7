"""Decoding one ``pb.Op`` (and ``pb.OpMetadata``) into the typed IR, with the checks a decoder must
make: unknown fields anywhere in a message, input indices in range. The Definition around them
is :func:`.codec.decode_definition`'s."""

from __future__ import annotations

from typing import Any

from google.protobuf import unknown_fields as _unknown

from mason.ir.errors import SourceLoc
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
)


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


def find_unknown(msg: Any, path: str) -> tuple[int, str] | None:
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
                    r = find_unknown(v, f"{path}.{fd.name}[{k}]")
                    if r:
                        return r
        elif fd.is_repeated:
            for i, v in enumerate(value):
                r = find_unknown(v, f"{path}.{fd.name}[{i}]")
                if r:
                    return r
        else:
            r = find_unknown(value, f"{path}.{fd.name}")
            if r:
                return r
    return None


def _check_index(what: str, value: int, lo: int, hi: int, why: str) -> None:
    if not lo <= value < hi:
        raise ValueError(f"{what} {value} out of range ({why})")


def validate(op: Any) -> None:  # an Op, by type(op) below
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


__all__ = ["metadata_from_pb", "op_from_pb", "find_unknown", "validate"]
