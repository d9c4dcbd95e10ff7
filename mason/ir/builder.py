"""A fluent, immutable builder for LLB graphs, in the spirit of BuildKit's ``llb.State``.

    from mason.ir.builder import image, scratch, local, merge, cache, mkdir

    base = image("busybox")
    built = base.with_cwd("/src").run("make", mounts=[cache("/root/.cache", id="x")]).root()
    out = scratch().file(mkdir("/app", parents=True).copy(built, "/src/app", "/app/"))
    data = merge([base, out]).marshal(image_config={...})

Every method returns a new :class:`State`; ops are built as you go. What lands in the ops
follows BuildKit's llb package: sources and ops carry the state's platform and empty worker
constraints (``local://`` sources no platform); an exec gets ``/bin/sh -c CMD`` for a string
command, the state's env (plus BuildKit's default ``PATH`` when none is set), cwd (default
``/``), user and ``removeMountStubsRecursive``; mounts are sorted by destination and every
writable one gets the next output index; op metadata carries the caps BuildKit declares.
"""

from __future__ import annotations

import json
import platform as _pyplatform
import posixpath
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.ops import (
    CacheOpt,
    CacheSharing,
    ChownOpt,
    ConfigChange,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileActionKind,
    FileOp,
    MergeOp,
    Meta,
    MkDir,
    MkFile,
    Mount,
    MountType,
    NetMode,
    Op,
    OpMetadata,
    Platform,
    Ref,
    Rm,
    SecretOpt,
    SecurityMode,
    SourceOp,
    SSHOpt,
    Symlink,
    TmpfsOpt,
    UserOpt,
)
from mason.ir.urls import split_userinfo

__all__ = [
    "DEFAULT_PATH", "default_platform", "State", "ExecState", "FileActions", "MountSpec",
    "image", "scratch", "local", "git", "http", "merge", "diff",
    "bind", "cache", "tmpfs", "secret", "ssh",
    "mkdir", "mkfile", "rm", "symlink", "copy",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CUSTOM_NAME = "llb.customname"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386", "i386": "386"}


def default_platform() -> Platform:
    """The host's platform, as BuildKit's client defaults to."""
    arch = _ARCH.get(_pyplatform.machine().lower(), "amd64")
    return Platform(arch, "linux", "v7" if arch == "arm" else "")


def _parse_platform(p: Platform | str | None) -> Platform | None:
    if p is None or isinstance(p, Platform):
        return p
    parts = p.split("/")
    if len(parts) < 2 or not all(parts):
        raise MasonError(f"invalid platform {p!r}: expected os/arch[/variant]")
    return Platform(parts[1], parts[0], parts[2] if len(parts) > 2 else "")


def _md(caps: Iterable[str], name: str | None = None) -> OpMetadata:
    md = OpMetadata(caps=tuple(sorted((c, True) for c in set(caps))))
    return md.with_descriptions({CUSTOM_NAME: name}) if name else md


def _normalize_image(name: str) -> str:
    try:
        from mason.ir.reference import normalize
    except ImportError:  # pragma: no cover - reference.py is written in parallel
        return name
    return normalize(name)


# ================================================================ states

@dataclass(frozen=True, slots=True)
class State:
    """A filesystem (``ref``; None = scratch) plus the exec context (env, cwd, user,
    platform) that later ops inherit. Immutable."""

    ref: Ref | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: str = ""
    platform: Platform | None = None
    loc: SourceLoc | None = field(default=None, compare=False)

    # -- context
    def with_env(self, key: str, value: str) -> "State":
        env = tuple((k, v) for k, v in self.env if k != key) + ((key, value),)
        return replace(self, env=env)

    def without_env(self, key: str) -> "State":
        return replace(self, env=tuple((k, v) for k, v in self.env if k != key))

    def get_env(self, key: str) -> str | None:
        for k, v in self.env:
            if k == key:
                return v
        return None

    def with_cwd(self, path: str) -> "State":
        return replace(self, cwd=posixpath.normpath(posixpath.join(self.cwd, path)))

    def with_user(self, user: str) -> "State":
        return replace(self, user=user)

    def with_platform(self, p: Platform | str) -> "State":
        return replace(self, platform=_parse_platform(p))

    def at(self, loc: SourceLoc | None) -> "State":
        """Ops made from this state carry ``loc`` (never part of a digest)."""
        return replace(self, loc=loc)

    def _plat(self) -> Platform:
        return self.platform or default_platform()

    def _with_ref(self, ref: Ref | None) -> "State":
        return State(ref, self.env, self.cwd, self.user, self.platform, self.loc)

    @property
    def op(self) -> Op | None:
        return None if self.ref is None else self.ref.op

    def is_scratch(self) -> bool:
        return self.ref is None

    # -- ops
    def run(self, cmd: str | Sequence[str], *, mounts: Sequence["MountSpec"] = (),
            network: NetMode | str = NetMode.UNSET, security: SecurityMode | str = SecurityMode.SANDBOX,
            env: dict[str, str] | None = None, cwd: str | None = None, user: str | None = None,
            hostname: str = "", readonly_root: bool = False, name: str | None = None) -> "ExecState":
        """An ExecOp on this state. A string runs as ``/bin/sh -c CMD``, a list as is."""
        args = ("/bin/sh", "-c", cmd) if isinstance(cmd, str) else tuple(cmd)
        if not args:
            raise MasonError("run needs a command")
        envs = dict(self.env)
        if env:
            envs.update(env)
        caps = {"exec.meta.base", "exec.mount.bind", "exec.meta.setsdefaultpath"}
        if "PATH" not in envs:
            envs = {"PATH": DEFAULT_PATH, **envs}
        net = NetMode[network.upper()] if isinstance(network, str) else NetMode(network)
        if isinstance(network, str) and network.lower() == "default":
            net = NetMode.UNSET
        sec = SecurityMode[security.upper()] if isinstance(security, str) else SecurityMode(security)
        if net != NetMode.UNSET:
            caps.add("exec.meta.network")
        if sec != SecurityMode.SANDBOX:
            caps.add("exec.meta.security")
        meta = Meta(args=args, env=tuple(f"{k}={v}" for k, v in envs.items()),
                    cwd=self.cwd if cwd is None else cwd, user=self.user if user is None else user,
                    hostname=hostname, remove_mount_stubs_recursive=True)
        inputs: list[Ref] = []

        def index_of(ref: Ref | None) -> int:
            if ref is None:
                return -1
            for i, r in enumerate(inputs):
                if r.op is ref.op and r.index == ref.index:
                    return i
            inputs.append(ref)
            return len(inputs) - 1

        specs = [MountSpec("/", self, readonly=readonly_root)] + list(mounts)
        dests = [s.dest for s in specs]
        if len(set(dests)) != len(dests):
            raise MasonError(f"run: two mounts at the same destination ({', '.join(sorted(dests))})")
        raw = []
        for s in sorted(specs, key=lambda s: s.dest):
            caps |= s.caps()
            raw.append((s, index_of(s.source.ref if s.source is not None else None)))
        mounts_out: list[Mount] = []
        outputs: dict[str, int] = {}
        n_out = 0
        for s, idx in raw:
            out = -1
            if s.kind == "bind" and not s.readonly:
                out = n_out
                n_out += 1
                outputs[s.dest] = out
            mounts_out.append(s.to_mount(idx, out))
        op = ExecOp(meta=meta, mounts=tuple(mounts_out), network=net, security=sec,
                    inputs=tuple(inputs), platform=self._plat(), constraints=(),
                    metadata=_md(caps, name), loc=self.loc)
        root = Ref(op, outputs["/"]) if "/" in outputs else None
        return ExecState(root, self.env, self.cwd, self.user, self.platform, self.loc,
                         exec_op=op, mount_outputs=tuple(sorted(outputs.items())))

    def file(self, actions: "FileActions", *, name: str | None = None) -> "State":
        """A FileOp applying ``actions`` (a chain from :func:`mkdir`, :func:`copy` …) to this state."""
        if not actions.steps:
            return self
        inputs: list[Ref] = []

        def index_of(ref: Ref | None) -> int:
            if ref is None:
                return -1
            for i, r in enumerate(inputs):
                if r.op is ref.op and r.index == ref.index:
                    return i
            inputs.append(ref)
            return len(inputs) - 1

        base = index_of(self.ref)
        pending = []
        for kind, secondary in actions.steps:
            pending.append((kind, index_of(secondary.ref) if secondary is not None else None))
        n = len(inputs)
        acts = []
        for k, (kind, sec) in enumerate(pending):
            inp = base if k == 0 else n + k - 1
            out = 0 if k == len(pending) - 1 else -1
            kind = _resolve_owner(kind, inp)
            acts.append(FileAction(inp, -1 if sec is None else sec, out, kind))
        op = FileOp(actions=tuple(acts), inputs=tuple(inputs), platform=self._plat(), constraints=(),
                    metadata=_md({"file.base"}, name), loc=self.loc)
        return self._with_ref(Ref(op, 0))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False, **kw: object) -> "State":
        return self.file(mkdir(path, mode, parents, **kw))  # type: ignore[arg-type]

    def mkfile(self, path: str, data: bytes | str, mode: int = 0o644, **kw: object) -> "State":
        return self.file(mkfile(path, data, mode, **kw))  # type: ignore[arg-type]

    def copy(self, src: "State", src_path: str, dest: str, **kw: object) -> "State":
        return self.file(copy(src, src_path, dest, **kw))  # type: ignore[arg-type]

    def config(self, *changes: ConfigChange | tuple[str, str, str], created_by: str = "") -> "State":
        """A mason ConfigOp (identity on the filesystem) carrying image-config changes."""
        if self.ref is None:
            raise MasonError("a config change needs a filesystem state, not scratch")
        chs = tuple(c if isinstance(c, ConfigChange) else ConfigChange(*c) for c in changes)
        op = ConfigOp(changes=chs, created_by=created_by, inputs=(self.ref,), loc=self.loc)
        return self._with_ref(Ref(op, 0))

    def marshal(self, image_config: dict | None = None, *, name: str | None = None) -> bytes:
        """This state's result as a Definition (bytes BuildKit reads)."""
        from mason.ir.codec import marshal

        if self.ref is None:
            raise MasonError("cannot marshal scratch: a Definition needs at least one op")
        caps = {"constraints", "platform"}
        from mason.ir.ops import walk_ops

        if any(op.metadata.description for op in walk_ops([self.ref.op])):
            caps.add("meta.description")
        return marshal(self.ref, image_config, name=name, terminal_metadata=_md(caps))


@dataclass(frozen=True, slots=True)
class ExecState(State):
    """The root filesystem after an exec (usable as a State), plus its other outputs."""

    exec_op: ExecOp | None = None
    mount_outputs: tuple[tuple[str, int], ...] = ()

    def root(self) -> State:
        if self.ref is None:
            raise MasonError("the root of this exec is read-only: it has no output")
        return self._with_ref(self.ref)

    def get_mount(self, dest: str) -> State:
        """The writable mount at ``dest`` after the exec."""
        for d, i in self.mount_outputs:
            if d == dest:
                return self._with_ref(Ref(self.exec_op, i))  # type: ignore[arg-type]
        raise MasonError(f"no writable mount at {dest!r} (writable: "
                         f"{', '.join(d for d, _ in self.mount_outputs) or 'none'})")


# ================================================================ sources

def image(ref: str, *, platform: Platform | str | None = None, resolve_mode: str | None = None,
          name: str | None = None) -> State:
    """``docker-image://`` source; the name is normalized like Docker's."""
    p = _parse_platform(platform)
    attrs = {}
    if resolve_mode and resolve_mode != "default":
        attrs["image.resolvemode"] = resolve_mode
    op = SourceOp(f"docker-image://{_normalize_image(ref)}", tuple(sorted(attrs.items())),
                  platform=p or default_platform(), constraints=(), metadata=_md({"source.image"}, name))
    return State(Ref(op), platform=p)


def scratch() -> State:
    return State()


def local(name: str, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
          follow_paths: Sequence[str] = (), shared_key_hint: str | None = None,
          unique: str | None = None, platform: Platform | str | None = None) -> State:
    """``local://NAME`` (a client directory, e.g. the build context). No platform in the op,
    as BuildKit writes it."""
    attrs = {}
    caps = {"source.local"}
    if include:
        attrs["local.includepattern"] = json.dumps(list(include))
        caps.add("source.local.includepatterns")
    if exclude:
        attrs["local.excludepatterns"] = json.dumps(list(exclude))
        caps.add("source.local.excludepatterns")
    if follow_paths:
        attrs["local.followpaths"] = json.dumps(list(follow_paths))
        caps.add("source.local.followpaths")
    if shared_key_hint:
        attrs["local.sharedkeyhint"] = shared_key_hint
        caps.add("source.local.sharedkeyhint")
    if unique:
        attrs["local.unique"] = unique
        caps.add("source.local.unique")
    op = SourceOp(f"local://{name}", tuple(sorted(attrs.items())), constraints=(), metadata=_md(caps))
    return State(Ref(op), platform=_parse_platform(platform))


def git(url: str, ref: str = "", *, subdir: str = "", keep_git_dir: bool = False,
        platform: Platform | str | None = None) -> State:
    """``git://host/path#ref[:subdir]``; the full URL rides in ``git.fullurl`` when it is not
    a ``git://`` one."""
    remote = url
    attrs = {}
    caps = {"source.git"}
    for scheme in ("https://", "http://", "ssh://", "git://"):
        if url.startswith(scheme):
            remote = split_userinfo(url)[0][len(scheme):]  # no credentials (they ride in git.fullurl)
            break
    else:
        if "@" in url and ":" in url:  # scp-like git@host:path
            remote = url.split("@", 1)[1].replace(":", "/", 1)
    if not url.startswith("git://") or remote != url[len("git://"):]:
        attrs["git.fullurl"] = url
        caps.add("source.git.fullurl")
    ident = "git://" + remote
    if ref or subdir:
        ident += "#" + ref + (":" + subdir if subdir else "")
    if keep_git_dir:
        attrs["git.keepgitdir"] = "true"
        caps.add("source.git.keepgitdir")
    p = _parse_platform(platform)
    op = SourceOp(ident, tuple(sorted(attrs.items())), platform=p or default_platform(), constraints=(),
                  metadata=_md(caps))
    return State(Ref(op), platform=p)


def http(url: str, *, checksum: str | None = None, filename: str | None = None, perm: int | None = None,
         uid: int | None = None, gid: int | None = None, platform: Platform | str | None = None) -> State:
    """An ``http(s)://`` download, a single file in an otherwise empty filesystem."""
    attrs = {}
    caps = {"source.http"}
    if checksum:
        attrs["http.checksum"] = checksum
        caps.add("source.http.checksum")
    if filename:
        attrs["http.filename"] = filename
    if perm is not None:
        attrs["http.perm"] = "0" + format(perm, "o")
        caps.add("source.http.perm")
    if uid is not None:
        attrs["http.uid"] = str(uid)
        caps.add("source.http.uidgid")
    if gid is not None:
        attrs["http.gid"] = str(gid)
        caps.add("source.http.uidgid")
    p = _parse_platform(platform)
    op = SourceOp(url, tuple(sorted(attrs.items())), platform=p or default_platform(), constraints=(),
                  metadata=_md(caps))
    return State(Ref(op), platform=p)


def merge(states: Sequence[State], *, name: str | None = None) -> State:
    """Layer ``states`` in order (MergeOp). Scratch states are dropped; one left is returned
    as is, none gives scratch (as BuildKit's llb.Merge)."""
    live = [s for s in states if s.ref is not None]
    if not live:
        return scratch() if not states else states[0]._with_ref(None)
    if len(live) == 1:
        return live[0]
    inputs: list[Ref] = []
    order = []
    for s in live:
        r = s.ref
        assert r is not None
        for i, x in enumerate(inputs):
            if x.op is r.op and x.index == r.index:
                order.append(i)
                break
        else:
            inputs.append(r)
            order.append(len(inputs) - 1)
    first = live[0]
    op = MergeOp(merge_inputs=tuple(order), inputs=tuple(inputs), platform=first._plat(), constraints=(),
                 metadata=_md({"mergeop"}, name), loc=first.loc)
    return first._with_ref(Ref(op, 0))


def diff(lower: State, upper: State, *, name: str | None = None) -> State:
    """The changes from ``lower`` to ``upper`` (DiffOp); scratch sides are input -1."""
    inputs: list[Ref] = []
    idx = []
    for s in (lower, upper):
        if s.ref is None:
            idx.append(-1)
        elif inputs and inputs[0].op is s.ref.op and inputs[0].index == s.ref.index:
            idx.append(0)
        else:
            inputs.append(s.ref)
            idx.append(len(inputs) - 1)
    op = DiffOp(lower=idx[0], upper=idx[1], inputs=tuple(inputs), platform=upper._plat(), constraints=(),
                metadata=_md({"diffop"}, name), loc=upper.loc)
    return upper._with_ref(Ref(op, 0))


# ================================================================ mounts

@dataclass(frozen=True, slots=True)
class MountSpec:
    """An exec mount to be: made by :func:`bind`, :func:`cache`, :func:`tmpfs`, :func:`secret`,
    :func:`ssh`."""

    dest: str
    source: State | None = None
    kind: str = "bind"
    selector: str = ""
    readonly: bool = False
    cache: CacheOpt | None = None
    tmpfs: TmpfsOpt | None = None
    secret: SecretOpt | None = None
    ssh: SSHOpt | None = None

    def caps(self) -> set[str]:
        c = {"exec.mount.bind"}
        if self.selector:
            c.add("exec.mount.selector")
        if self.kind == "cache":
            c |= {"exec.mount.cache", "exec.mount.cache.sharing"}
        elif self.kind != "bind":
            c.add(f"exec.mount.{self.kind}")
        return c

    def to_mount(self, input_index: int, output: int) -> Mount:
        mt = {"bind": MountType.BIND, "cache": MountType.CACHE, "tmpfs": MountType.TMPFS,
              "secret": MountType.SECRET, "ssh": MountType.SSH}[self.kind]
        return Mount(input=input_index, selector=self.selector, dest=self.dest, output=output,
                     readonly=self.readonly, mount_type=mt, tmpfs=self.tmpfs, cache=self.cache,
                     secret=self.secret, ssh=self.ssh)


def _abs(dest: str) -> str:
    if not dest.startswith("/"):
        raise MasonError(f"mount destination {dest!r} must be absolute")
    return posixpath.normpath(dest)


def bind(source: State, dest: str, *, selector: str = "", readonly: bool = False) -> MountSpec:
    return MountSpec(_abs(dest), source, "bind", selector, readonly)


def cache(dest: str, *, id: str | None = None, sharing: CacheSharing | str = CacheSharing.SHARED,
          source: State | None = None, selector: str = "") -> MountSpec:
    sh = CacheSharing[sharing.upper()] if isinstance(sharing, str) else CacheSharing(sharing)
    d = _abs(dest)
    return MountSpec(d, source, "cache", selector, cache=CacheOpt(id if id is not None else d, sh))


def tmpfs(dest: str, *, size: int = 0) -> MountSpec:
    return MountSpec(_abs(dest), None, "tmpfs", tmpfs=TmpfsOpt(size))


def secret(dest: str, *, id: str, uid: int = 0, gid: int = 0, mode: int = 0o400,
           optional: bool = False) -> MountSpec:
    return MountSpec(_abs(dest), None, "secret", secret=SecretOpt(id, uid, gid, mode, optional))


def ssh(dest: str = "/run/buildkit/ssh_agent.0", *, id: str = "default", uid: int = 0, gid: int = 0,
        mode: int = 0o600, optional: bool = False) -> MountSpec:
    return MountSpec(_abs(dest), None, "ssh", ssh=SSHOpt(id, uid, gid, mode, optional))


# ================================================================ file actions

def _chown(owner: str | int | tuple | None) -> ChownOpt | None:
    """``"uid[:gid]"``, ``"name[:group]"``, an int uid, or a (user, group) pair. Names resolve
    in the action's input (filled in by :meth:`State.file`)."""
    if owner is None:
        return None
    if isinstance(owner, int):
        return ChownOpt(UserOpt(id=owner), UserOpt(id=owner))
    if isinstance(owner, tuple):
        u, g = owner
    else:
        u, _, g = str(owner).partition(":")

    def one(x: object) -> UserOpt | None:
        if x is None or x == "":
            return None
        if isinstance(x, int) or str(x).isdigit():
            return UserOpt(id=int(x))  # type: ignore[arg-type]
        return UserOpt(name=str(x), name_input=-2)  # -2: the action's input, set later

    return ChownOpt(one(u), one(g))


def _resolve_owner(kind: FileActionKind, inp: int) -> FileActionKind:
    owner = getattr(kind, "owner", None)
    if owner is None:
        return kind

    def fix(u: UserOpt | None) -> UserOpt | None:
        if u is not None and u.name is not None and u.name_input == -2:
            return UserOpt(name=u.name, name_input=inp)
        return u

    return replace(kind, owner=ChownOpt(fix(owner.user), fix(owner.group)))  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class FileActions:
    """An immutable chain of file actions; each applies to the result of the previous one."""

    steps: tuple[tuple[FileActionKind, State | None], ...] = ()

    def _add(self, kind: FileActionKind, src: State | None = None) -> "FileActions":
        return FileActions(self.steps + ((kind, src),))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False, *, owner: object = None,
              timestamp: int = -1) -> "FileActions":
        return self._add(MkDir(path, mode, parents, _chown(owner), timestamp))  # type: ignore[arg-type]

    def mkfile(self, path: str, data: bytes | str, mode: int = 0o644, *, owner: object = None,
               timestamp: int = -1) -> "FileActions":
        b = data.encode() if isinstance(data, str) else bytes(data)
        return self._add(MkFile(path, mode, b, _chown(owner), timestamp))  # type: ignore[arg-type]

    def rm(self, path: str, *, allow_not_found: bool = False, allow_wildcard: bool = False) -> "FileActions":
        return self._add(Rm(path, allow_not_found, allow_wildcard))

    def symlink(self, oldpath: str, newpath: str, *, owner: object = None, timestamp: int = -1) -> "FileActions":
        return self._add(Symlink(oldpath, newpath, _chown(owner), timestamp))  # type: ignore[arg-type]

    def copy(self, source: State, src: str, dest: str, *, owner: object = None, mode: int = -1,
             follow_symlink: bool = False, dir_copy_contents: bool = False, attempt_unpack: bool = False,
             create_dest_path: bool = False, allow_wildcard: bool = False, allow_empty_wildcard: bool = False,
             timestamp: int = -1, include: Sequence[str] = (), exclude: Sequence[str] = (),
             always_replace_existing: bool = False, mode_str: str = "",
             required_paths: Sequence[str] = ()) -> "FileActions":
        c = Copy(src, dest, _chown(owner), mode, follow_symlink, dir_copy_contents, attempt_unpack,  # type: ignore[arg-type]
                 create_dest_path, allow_wildcard, allow_empty_wildcard, timestamp, tuple(include), tuple(exclude),
                 always_replace_existing, mode_str, tuple(required_paths))
        return self._add(c, source)


def mkdir(path: str, mode: int = 0o755, parents: bool = False, **kw: object) -> FileActions:
    return FileActions().mkdir(path, mode, parents, **kw)  # type: ignore[arg-type]


def mkfile(path: str, data: bytes | str, mode: int = 0o644, **kw: object) -> FileActions:
    return FileActions().mkfile(path, data, mode, **kw)  # type: ignore[arg-type]


def rm(path: str, **kw: bool) -> FileActions:
    return FileActions().rm(path, **kw)


def symlink(oldpath: str, newpath: str, **kw: object) -> FileActions:
    return FileActions().symlink(oldpath, newpath, **kw)  # type: ignore[arg-type]


def copy(source: State, src: str, dest: str, **kw: object) -> FileActions:
    return FileActions().copy(source, src, dest, **kw)  # type: ignore[arg-type]
