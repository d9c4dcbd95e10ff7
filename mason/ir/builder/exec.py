"""Exec ops (``State.run``) and their mounts, laid out as BuildKit's llb marshals an ExecOp:

* a string command runs as ``/bin/sh -c CMD``, a list as is;
* env is the state's (plus ``env=``), then ``PATH`` (BuildKit's default) when unset, then
  ``SSH_AUTH_SOCK`` (the first ssh mount) when there is one and it is unset;
* the root mount and every bind/cache/tmpfs mount are sorted by destination (stable), inputs
  numbered in that order; each writable root/bind mount gets the next output index (a bind made
  with ``no_output=True`` none); secret and ssh mounts follow, in the order given, their
  ``output`` unset (0) as llb leaves it (they never produce one, see ``Mount.has_output``);
* ``removeMountStubsRecursive`` is always set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mason.ir.builder.core import DEFAULT_PATH, Inputs
from mason.ir.errors import MasonError
from mason.ir.ops import (
    CacheOpt,
    CacheSharing,
    CDIDevice,
    ExecOp,
    HostIP,
    Meta,
    Mount,
    MountType,
    NetMode,
    ProxyEnv,
    Ref,
    SecretEnv,
    SecretOpt,
    SecurityMode,
    SSHOpt,
    TmpfsOpt,
    Ulimit,
)

if TYPE_CHECKING:  # pragma: no cover
    from mason.ir.builder.state import ExecState, State

__all__ = ["MountSpec", "bind", "cache", "tmpfs", "secret", "ssh", "device", "build_exec"]

_NETWORK = {"default": NetMode.UNSET, "unset": NetMode.UNSET, "none": NetMode.NONE, "host": NetMode.HOST}
_SECURITY = {"sandbox": SecurityMode.SANDBOX, "insecure": SecurityMode.INSECURE}
_SHARING = {"shared": CacheSharing.SHARED, "private": CacheSharing.PRIVATE, "locked": CacheSharing.LOCKED}
_TYPES = {"bind": MountType.BIND, "cache": MountType.CACHE, "tmpfs": MountType.TMPFS,
          "secret": MountType.SECRET, "ssh": MountType.SSH}


@dataclass(frozen=True, slots=True)
class MountSpec:
    """An exec mount to be: made by :func:`bind`, :func:`cache`, :func:`tmpfs`, :func:`secret`,
    :func:`ssh`. ``dest`` None: a secret given only as an environment variable (``env``)."""

    dest: str | None
    source: "State | None" = None
    kind: str = "bind"
    selector: str = ""
    readonly: bool = False
    cache: CacheOpt | None = None
    tmpfs: TmpfsOpt | None = None
    secret: SecretOpt | None = None
    ssh: SSHOpt | None = None
    no_output: bool = False
    env: str | None = None

    def writable(self) -> bool:
        return self.kind == "bind" and not self.readonly and not self.no_output

    def to_mount(self, input_index: int, output: int) -> Mount:
        return Mount(input=input_index, selector=self.selector, dest=self.dest or "", output=output,
                     readonly=self.readonly, mount_type=_TYPES[self.kind], tmpfs=self.tmpfs, cache=self.cache,
                     secret=self.secret, ssh=self.ssh)


def _abs(dest: str) -> str:
    """A mount destination: absolute, kept as written (llb does not clean it)."""
    if not dest.startswith("/"):
        raise MasonError(f"mount destination {dest!r} must be absolute")
    return dest


def bind(source: "State", dest: str, *, selector: str = "", readonly: bool = False,
         no_output: bool = False) -> MountSpec:
    """``source`` (its ``selector`` subdirectory) at ``dest``; writable unless ``readonly``, and
    then an output of the exec unless ``no_output`` (llb's ``ForceNoOutput``)."""
    return MountSpec(_abs(dest), source, "bind", selector, readonly, no_output=no_output)


def cache(dest: str, *, id: str | None = None, sharing: CacheSharing | str = CacheSharing.SHARED,
          source: "State | None" = None, selector: str = "", readonly: bool = False) -> MountSpec:
    """A persistent cache directory (``id`` defaults to ``dest``), seeded from ``source``."""
    sh = _SHARING[sharing.lower()] if isinstance(sharing, str) else CacheSharing(sharing)
    d = _abs(dest)
    return MountSpec(d, source, "cache", selector, readonly, cache=CacheOpt(id if id is not None else d, sh))


def tmpfs(dest: str, *, size: int = 0) -> MountSpec:
    return MountSpec(_abs(dest), None, "tmpfs", tmpfs=TmpfsOpt(size))


def secret(dest: str | None = None, *, id: str, uid: int = 0, gid: int = 0, mode: int = 0o400,
           optional: bool = False, env: str | None = None) -> MountSpec:
    """Secret ``id`` as a file at ``dest`` and/or as environment variable ``env``."""
    if dest is None and env is None:
        raise MasonError(f"secret {id!r} needs a destination or an env name")
    return MountSpec(None if dest is None else _abs(dest), None, "secret",
                     secret=SecretOpt(id, uid, gid, mode, optional), env=env)


def ssh(dest: str = "/run/buildkit/ssh_agent.0", *, id: str = "default", uid: int = 0, gid: int = 0,
        mode: int = 0o600, optional: bool = False) -> MountSpec:
    """The SSH agent socket ``id`` at ``dest``."""
    return MountSpec(_abs(dest), None, "ssh", ssh=SSHOpt(id, uid, gid, mode, optional))


def device(name: str, *, optional: bool = False) -> CDIDevice:
    """A CDI device for ``run(devices=[…])``."""
    return CDIDevice(name, optional)


def _enum(value: Any, table: dict[str, Any], cls: Any, what: str) -> Any:
    if isinstance(value, str):
        hit = table.get(value)  # the usual spelling: no lower() needed
        if hit is not None:
            return hit
        try:
            return table[value.lower()]
        except KeyError:
            raise MasonError(f"unknown {what} {value!r} (expected {', '.join(sorted(table))})") from None
    return cls(value)


def _env_list(env: Mapping[str, str]) -> tuple[tuple[str, ...], Mapping[str, str]]:
    """An exec's ``env`` (``K=V`` in order, PATH defaulted), and the environment by name."""
    out = tuple(map("=".join, env.items()))  # K=V (str.join: no Python-level loop)
    if "PATH" not in env:
        out += ("PATH=" + DEFAULT_PATH,)
    return out, env


# the env lists of recent state environments, by the identity of the env tuple (a frontend
# keeps one tuple per change of its environment, so every RUN until the next change shares
# one list instead of rebuilding it; the tuple is kept alive here, so its id is not reused)
_ENV_CACHE: dict[int, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, ...], Mapping[str, str]]]] = {}


def _state_env_list(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], Mapping[str, str]]:
    hit = _ENV_CACHE.get(id(env))
    if hit is not None and hit[0] is env:
        return hit[1]
    names: Mapping[str, str] = dict(env)  # a name given twice: first place, last value
    out: tuple[tuple[str, ...], Mapping[str, str]]
    if len(names) == len(env):  # no name twice (a frontend's dict-made env): K=V from the pairs as they are
        kv = tuple(map("=".join, env))
        out = (kv if "PATH" in names else kv + ("PATH=" + DEFAULT_PATH,)), names
    else:
        out = _env_list(names)
    if len(_ENV_CACHE) >= 256:
        _ENV_CACHE.clear()
    _ENV_CACHE[id(env)] = (env, out)
    return out


# the root mount is one of four values (input 0 or scratch, read-only or not): made once each
_ROOT_MOUNTS: dict[tuple[int, bool], Mount] = {}


def _root_mount(input_index: int, readonly: bool) -> Mount:
    m = _ROOT_MOUNTS.get((input_index, readonly))
    if m is None:
        m = _ROOT_MOUNTS[(input_index, readonly)] = Mount(input=input_index, dest="/", output=-1 if readonly else 0,
                                                          readonly=readonly)
    return m


def _dest(s: MountSpec) -> str:
    return s.dest or ""


def build_exec(state: "State", cmd: str | Sequence[str], *, mounts: Sequence[MountSpec], network: Any,
               security: Any, env: Mapping[str, str] | None, cwd: str | None, user: str | None, hostname: str,
               readonly_root: bool, proxy_env: Mapping[str, str] | None, extra_hosts: Sequence[tuple[str, str]],
               ulimits: Sequence[tuple[str, int, int]], cgroup_parent: str, valid_exit_codes: Sequence[int],
               devices: Sequence[Any], common: dict[str, Any]) -> "ExecState":
    from mason.ir.builder.state import ExecState

    args = ("/bin/sh", "-c", cmd) if isinstance(cmd, str) else tuple(cmd)
    if not args:
        raise MasonError("run needs a command")
    if env:
        envs = dict(state.env)
        for k, v in env.items():
            envs.pop(k, None)
            envs[k] = v
        env_tuple, names = _env_list(envs)
    else:
        env_tuple, names = _state_env_list(state.env)
    # the root mount first (its destination "/" sorts before every other absolute one), then
    # the bind/cache/tmpfs mounts by destination (stable), then secrets and ssh sockets
    inputs = Inputs()
    outputs: dict[str, int] = {} if readonly_root else {"/": 0}
    out = [_root_mount(inputs.index(state.ref), readonly_root)]
    secret_env = []
    ssh_dest = None
    if mounts:
        regular: list[MountSpec] = []
        tail: list[MountSpec] = []
        for m in mounts:
            (tail if m.kind in ("secret", "ssh") else regular).append(m)
        regular.sort(key=_dest)
        for s in regular:
            if not (s.dest or "").startswith("/"):  # made by hand, not by bind()/cache()/tmpfs()
                raise MasonError(f"mount destination {s.dest!r} must be absolute")
            idx = inputs.index(s.source.ref if s.source is not None else None)
            o = -1
            if s.writable():
                o = len(outputs)
                outputs[s.dest or ""] = o
            out.append(s.to_mount(idx, o))
        for s in tail:
            if s.env is not None and s.secret is not None:
                secret_env.append(SecretEnv(s.secret.id, s.env, s.secret.optional))
            if s.dest is not None:  # output unset (0), as llb leaves it: no output either way
                out.append(s.to_mount(-1, 0))
                if s.kind == "ssh" and ssh_dest is None:
                    ssh_dest = s.dest
    if ssh_dest is not None and "SSH_AUTH_SOCK" not in names:  # llb: the first agent socket
        env_tuple += ("SSH_AUTH_SOCK=" + ssh_dest,)
    meta = Meta(args=args, env=env_tuple, cwd=state.cwd if cwd is None else cwd,
                user=state.user if user is None else user,
                proxy_env=ProxyEnv(**{k.lower(): v for k, v in proxy_env.items()}) if proxy_env else None,
                extra_hosts=tuple([HostIP(h, ip) for h, ip in extra_hosts]) if extra_hosts else (),
                hostname=hostname,
                ulimits=tuple([Ulimit(n, soft, hard) for n, soft, hard in ulimits]) if ulimits else (),
                cgroup_parent=cgroup_parent, remove_mount_stubs_recursive=True,
                valid_exit_codes=tuple(valid_exit_codes))
    op = ExecOp(meta=meta, mounts=tuple(out), network=_enum(network, _NETWORK, NetMode, "network mode"),
                security=_enum(security, _SECURITY, SecurityMode, "security mode"), secret_env=tuple(secret_env),
                cdi_devices=tuple([d if isinstance(d, CDIDevice) else CDIDevice(str(d)) for d in devices])
                if devices else (),
                inputs=inputs.tuple(), **common)
    root = Ref(op, outputs["/"]) if "/" in outputs else None
    return ExecState(root, state.env, state.cwd, state.user, state.platform, state.loc, state.image_config,
                     state.progress, op, tuple(sorted(outputs.items())) if len(outputs) > 1 else tuple(outputs.items()))
