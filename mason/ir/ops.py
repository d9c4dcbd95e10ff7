"""The typed LLB IR: frozen op values mirroring BuildKit's ``solver/pb/ops.proto`` field for field.

Ops are frozen, slotted dataclasses. An op names its inputs as :class:`Ref` (output ``index`` of
another op); per-type fields (mount ``input``, file-action ``input`` …) are positions into
``inputs`` exactly as on the wire, so a decoded Definition re-encodes byte for byte.

Identity is the digest (``"sha256:" + sha256(deterministic op bytes)``). Each op computes its
bytes and digest once and caches them in two extra slots; computing walks uncomputed ancestors
with an explicit stack, so equality, hashing and ``repr`` never recurse over inputs and chains of
tens of thousands of ops work under Python's default recursion limit. ``metadata`` (descriptions,
caps…) and ``loc`` ride along but never enter the digest.

Field defaults are protobuf's (0, "", False, absent) except where BuildKit writes a sentinel for
"unset": file-action ``mode``/``timestamp`` default to -1 (``MkFile``/``MkDir`` modes to
0o644/0o755), ``Mount.output`` to -1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import ClassVar, Iterable, Union

from mason.ir.errors import SourceLoc

__all__ = [
    "NetMode", "SecurityMode", "MountType", "CacheSharing", "MountContentCache",
    "Platform", "ProgressGroup", "OpMetadata", "EMPTY_METADATA", "Ref",
    "Op", "SourceOp",
    "ProxyEnv", "HostIP", "Ulimit", "SecretEnv", "CDIDevice", "Meta",
    "TmpfsOpt", "CacheOpt", "SecretOpt", "SSHOpt", "Mount", "ExecOp",
    "UserOpt", "ChownOpt", "Copy", "MkFile", "MkDir", "Rm", "Symlink", "FileActionKind",
    "FileAction", "FileOp", "MergeOp", "DiffOp", "ConfigChange", "ConfigOp",
    "walk_ops", "ensure_digests",
]


# ---------------------------------------------------------------- enums (BuildKit's numbers)

class NetMode(IntEnum):
    UNSET = 0  # the sandbox's own network namespace ("default")
    HOST = 1
    NONE = 2


class SecurityMode(IntEnum):
    SANDBOX = 0
    INSECURE = 1


class MountType(IntEnum):
    BIND = 0
    SECRET = 1
    SSH = 2
    CACHE = 3
    TMPFS = 4


class CacheSharing(IntEnum):
    SHARED = 0
    PRIVATE = 1
    LOCKED = 2


class MountContentCache(IntEnum):
    DEFAULT = 0
    ON = 1
    OFF = 2


# ---------------------------------------------------------------- common values

@dataclass(frozen=True, slots=True)
class Platform:
    architecture: str
    os: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s


@dataclass(frozen=True, slots=True)
class ProgressGroup:
    id: str = ""
    name: str = ""
    weak: bool = False


@dataclass(frozen=True, slots=True)
class OpMetadata:
    """LLB's OpMetadata: not part of an op's digest. ``description`` and ``caps`` are sorted
    pairs; ``export_cache`` None = absent; ``linux_resources`` True = present (opaque)."""

    ignore_cache: bool = False
    description: tuple[tuple[str, str], ...] = ()
    export_cache: bool | None = None
    caps: tuple[tuple[str, bool], ...] = ()
    progress_group: ProgressGroup | None = None
    linux_resources: bool = False

    def is_empty(self) -> bool:
        return self == EMPTY_METADATA

    def describe(self, key: str) -> str | None:
        for k, v in self.description:
            if k == key:
                return v
        return None

    def with_descriptions(self, items: dict[str, str]) -> "OpMetadata":
        d = dict(self.description)
        d.update(items)
        return OpMetadata(self.ignore_cache, tuple(sorted(d.items())), self.export_cache, self.caps,
                          self.progress_group, self.linux_resources)

    def with_caps(self, caps: dict[str, bool] | tuple[str, ...]) -> "OpMetadata":
        d = dict(self.caps)
        if isinstance(caps, dict):
            d.update(caps)
        else:
            d.update((c, True) for c in caps)
        return OpMetadata(self.ignore_cache, self.description, self.export_cache, tuple(sorted(d.items())),
                          self.progress_group, self.linux_resources)


EMPTY_METADATA = OpMetadata()


@dataclass(frozen=True, slots=True)
class Ref:
    """Output ``index`` of ``op`` (LLB's ``Input{digest, index}``)."""

    op: "Op"
    index: int = 0

    @property
    def digest(self) -> str:
        return self.op.digest

    def __repr__(self) -> str:
        return f"Ref({self.op!r}, {self.index})"


# ---------------------------------------------------------------- the op base

class _Cache:
    """Slots for the cached encoding, outside the dataclass fields (so ``fields()``,
    ``replace()`` and equality never see them)."""

    __slots__ = ("_bytes", "_digest")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Op(_Cache):
    """Base of every op. ``constraints`` None = absent, ``()`` = present but empty (what
    BuildKit writes)."""

    kind: ClassVar[str] = "op"

    inputs: tuple[Ref, ...] = field(default=(), kw_only=True)
    platform: Platform | None = field(default=None, kw_only=True)
    constraints: tuple[str, ...] | None = field(default=None, kw_only=True)
    metadata: OpMetadata = field(default=EMPTY_METADATA, kw_only=True, compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, kw_only=True, compare=False, repr=False)

    # -- identity
    @property
    def digest(self) -> str:
        try:
            return self._digest
        except AttributeError:
            ensure_digests(self)
            return self._digest

    @property
    def bytes(self) -> bytes:
        """The op's deterministic protobuf encoding (what ``Definition.def`` holds)."""
        try:
            return self._bytes
        except AttributeError:
            ensure_digests(self)
            return self._bytes

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Op):
            return NotImplemented
        return self.digest == other.digest

    def __ne__(self, other: object) -> bool:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        try:
            d = self._digest[7:19]
        except AttributeError:
            d = "?"
        return f"<{type(self).__name__} {d} inputs={len(self.inputs)}>"

    # -- helpers
    def num_outputs(self) -> int:
        return 1

    def input_ops(self) -> tuple["Op", ...]:
        return tuple(r.op for r in self.inputs)

    def ref(self, index: int = 0) -> Ref:
        return Ref(self, index)

    def with_inputs(self, inputs: tuple[Ref, ...]) -> "Op":
        """This op on other ``inputs``, every other field shared: ``replace(op, inputs=…)``
        without the cost of ``replace`` (no op has an ``__init__`` of its own to re-run); the
        cached encoding is not carried over."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name != "inputs")
        new = object.__new__(cls)
        put = object.__setattr__
        for n in names:
            put(new, n, getattr(self, n))
        put(new, "inputs", inputs)
        return new


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def ensure_digests(op: Op) -> None:
    """Compute (and cache) the bytes and digest of ``op`` and every uncomputed ancestor,
    inputs first, with an explicit stack."""
    global _encode_op_uncached
    if _encode_op_uncached is None:
        from mason.ir.codec import encode_op_uncached

        _encode_op_uncached = encode_op_uncached
    enc = _encode_op_uncached
    sha = hashlib.sha256
    stack: list[Op] = [op]
    while stack:
        top = stack[-1]
        if hasattr(top, "_digest"):
            stack.pop()
            continue
        pending = False
        for r in top.inputs:
            o = r.op
            if not hasattr(o, "_digest"):
                stack.append(o)
                pending = True
        if pending:
            continue
        stack.pop()
        data = enc(top)
        object.__setattr__(top, "_bytes", data)
        object.__setattr__(top, "_digest", "sha256:" + sha(data).hexdigest())


_encode_op_uncached = None


def walk_ops(roots: Iterable[Op]) -> list[Op]:
    """Every op reachable from ``roots``, each once, in topological order (inputs first;
    ties in input order, depth first), without recursion."""
    order: list[Op] = []
    seen: set[int] = set()  # id() of ops already emitted or on the stack
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack: list[tuple[Op, int]] = [(root, 0)]
        while stack:
            op, i = stack[-1]
            ins = op.inputs
            while i < len(ins):
                child = ins[i].op
                i += 1
                if id(child) not in seen:
                    seen.add(id(child))
                    stack[-1] = (op, i)
                    stack.append((child, 0))
                    break
            else:
                stack.pop()
                order.append(op)
    return order


# ---------------------------------------------------------------- source

@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SourceOp(Op):
    """``docker-image://…``, ``local://…``, ``git://…``, ``http(s)://…``, ``oci-layout://…``.
    ``attrs`` are sorted (key, value) pairs."""

    kind: ClassVar[str] = "source"
    identifier: str = ""
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, key: str) -> str | None:
        for k, v in self.attrs:
            if k == key:
                return v
        return None


# ---------------------------------------------------------------- exec

@dataclass(frozen=True, slots=True)
class ProxyEnv:
    http_proxy: str = ""
    https_proxy: str = ""
    ftp_proxy: str = ""
    no_proxy: str = ""
    all_proxy: str = ""


@dataclass(frozen=True, slots=True)
class HostIP:
    host: str
    ip: str


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str
    soft: int = 0
    hard: int = 0


@dataclass(frozen=True, slots=True)
class SecretEnv:
    id: str
    name: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class CDIDevice:
    name: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Meta:
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    proxy_env: ProxyEnv | None = None
    extra_hosts: tuple[HostIP, ...] = ()
    hostname: str = ""
    ulimits: tuple[Ulimit, ...] = ()
    cgroup_parent: str = ""
    remove_mount_stubs_recursive: bool = False
    valid_exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TmpfsOpt:
    size: int = 0


@dataclass(frozen=True, slots=True)
class CacheOpt:
    id: str = ""
    sharing: CacheSharing = CacheSharing.SHARED


@dataclass(frozen=True, slots=True)
class SecretOpt:
    id: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0
    optional: bool = False


@dataclass(frozen=True, slots=True)
class SSHOpt:
    id: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Mount:
    """``input``: index into the op's inputs, -1 = scratch. ``output``: the op's output index
    this mount produces, -1 = none. A secret or ssh mount never produces one: BuildKit's llb
    leaves its ``output`` unset (0 on the wire) and its executor ignores the field, so
    :attr:`has_output` is False for them whatever the field says."""

    input: int = -1
    selector: str = ""
    dest: str = ""
    output: int = -1
    readonly: bool = False
    mount_type: MountType = MountType.BIND
    tmpfs: TmpfsOpt | None = None
    cache: CacheOpt | None = None
    secret: SecretOpt | None = None
    ssh: SSHOpt | None = None
    result_id: str = ""
    content_cache: MountContentCache = MountContentCache.DEFAULT

    @property
    def has_output(self) -> bool:
        return self.output >= 0 and self.mount_type not in (MountType.SECRET, MountType.SSH)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ExecOp(Op):
    kind: ClassVar[str] = "exec"
    meta: Meta = Meta()
    mounts: tuple[Mount, ...] = ()
    network: NetMode = NetMode.UNSET
    security: SecurityMode = SecurityMode.SANDBOX
    secret_env: tuple[SecretEnv, ...] = ()
    cdi_devices: tuple[CDIDevice, ...] = ()

    def num_outputs(self) -> int:
        n = 0
        for m in self.mounts:
            if m.has_output:
                n = max(n, m.output + 1)
        return n

    def mount_for_output(self, index: int) -> Mount | None:
        for m in self.mounts:
            if m.output == index and m.has_output:
                return m
        return None


# ---------------------------------------------------------------- file

@dataclass(frozen=True, slots=True)
class UserOpt:
    """Either a numeric id (``id``; 0 = root, and still written when set) or a name resolved
    in the ``/etc/passwd`` of input ``name_input``."""

    id: int | None = None
    name: str | None = None
    name_input: int = 0


@dataclass(frozen=True, slots=True)
class ChownOpt:
    user: UserOpt | None = None
    group: UserOpt | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    src: str = ""
    dest: str = ""
    owner: ChownOpt | None = None
    mode: int = -1
    follow_symlink: bool = False
    dir_copy_contents: bool = False
    attempt_unpack: bool = False
    create_dest_path: bool = False
    allow_wildcard: bool = False
    allow_empty_wildcard: bool = False
    timestamp: int = -1
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    always_replace_existing: bool = False
    mode_str: str = ""
    required_paths: tuple[str, ...] = ()

    kind: ClassVar[str] = "copy"


@dataclass(frozen=True, slots=True)
class MkFile:
    path: str = ""
    mode: int = 0o644
    data: bytes = b""
    owner: ChownOpt | None = None
    timestamp: int = -1

    kind: ClassVar[str] = "mkfile"


@dataclass(frozen=True, slots=True)
class MkDir:
    path: str = ""
    mode: int = 0o755
    make_parents: bool = False
    owner: ChownOpt | None = None
    timestamp: int = -1

    kind: ClassVar[str] = "mkdir"


@dataclass(frozen=True, slots=True)
class Rm:
    path: str = ""
    allow_not_found: bool = False
    allow_wildcard: bool = False

    kind: ClassVar[str] = "rm"


@dataclass(frozen=True, slots=True)
class Symlink:
    oldpath: str = ""
    newpath: str = ""
    owner: ChownOpt | None = None
    timestamp: int = -1

    kind: ClassVar[str] = "symlink"


FileActionKind = Union[Copy, MkFile, MkDir, Rm, Symlink]


@dataclass(frozen=True, slots=True)
class FileAction:
    """``input``/``secondary_input``: below ``len(op.inputs)`` an op input, ``len(inputs)+k``
    the result of action k of the same FileOp, -1 scratch. ``output``: 0 for the action whose
    result is the op's output, -1 otherwise."""

    input: int
    secondary_input: int
    output: int
    action: FileActionKind


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FileOp(Op):
    kind: ClassVar[str] = "file"
    actions: tuple[FileAction, ...] = ()

    def num_outputs(self) -> int:
        n = 0
        for a in self.actions:
            if a.output >= 0:
                n = max(n, a.output + 1)
        return n


# ---------------------------------------------------------------- merge, diff

@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MergeOp(Op):
    """Layers ``inputs[i]`` for i in ``merge_inputs`` on top of each other, in order."""

    kind: ClassVar[str] = "merge"
    merge_inputs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class DiffOp(Op):
    """The change from ``inputs[lower]`` to ``inputs[upper]``; None = absent (scratch)."""

    kind: ClassVar[str] = "diff"
    lower: int | None = None
    upper: int | None = None


# ---------------------------------------------------------------- mason dialect

@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One image-config change (see the end of ``llb.proto``): ``action`` is ``set``, ``env``,
    ``label``, ``add`` or ``append``."""

    action: str
    key: str
    value: str


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ConfigOp(Op):
    """mason-only (Op field 1000): identity on ``inputs[0]``'s filesystem, carrying one
    image-config instruction's changes. Removed by ``hoist-config``."""

    kind: ClassVar[str] = "config"
    changes: tuple[ConfigChange, ...] = ()
    created_by: str = ""
