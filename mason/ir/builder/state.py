"""Immutable states (BuildKit's ``llb.State``): a filesystem (an op output; None = scratch) plus
what later ops inherit — environment, working directory, user, platform, progress group, source
location — and the image config that travels with it. Every method returns a new state.

Also here: ``merge``, ``diff``, mason's config op, and :func:`substitute` (rebuild a graph with
one ref replaced — how a frontend fills in a :func:`placeholder` it could only decide after
lowering everything, as BuildKit's Dockerfile frontend does with the build context's
follow-paths).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mason.ir.builder.core import Inputs, default_platform, op_metadata, parse_platform
from mason.ir.builder.exec import build_exec
from mason.ir.builder.file import build_file
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.ops import (
    ConfigChange,
    ConfigOp,
    DiffOp,
    ExecOp,
    MergeOp,
    Op,
    Platform,
    ProgressGroup,
    Ref,
    SourceOp,
    walk_ops,
)

if TYPE_CHECKING:  # pragma: no cover
    from mason.ir.builder.exec import MountSpec
    from mason.ir.builder.file import FileActions
    from mason.ir.graph import Output

__all__ = ["State", "ExecState", "scratch", "merge", "diff", "config_change", "placeholder", "substitute"]

Description = Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class State:
    """A filesystem (``ref``; None = scratch) plus the context later ops inherit. Immutable.

    ``env`` is an ordered list of pairs (replacing a variable moves it to the end, as llb's
    EnvList); ``cwd`` follows llb's ``Dir``; ``platform`` None means the host's (ops get it,
    ``local`` sources none). ``loc`` and ``progress`` are the defaults for the ops made from
    this state; ``image_config`` (an OCI image config dict) rides along unchanged."""

    ref: Ref | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    user: str = ""
    platform: Platform | None = None
    loc: SourceLoc | None = field(default=None, compare=False)
    image_config: dict | None = field(default=None, compare=False)
    progress: ProgressGroup | None = field(default=None, compare=False)

    # -- context
    def with_env(self, key: str, value: str) -> "State":
        env = tuple((k, v) for k, v in self.env if k != key) + ((key, value),)
        return replace(self, env=env)

    def without_env(self, key: str) -> "State":
        return replace(self, env=tuple((k, v) for k, v in self.env if k != key))

    def with_envs(self, env: Mapping[str, str] | Sequence[tuple[str, str]]) -> "State":
        """The whole environment replaced (in the order given)."""
        items = env.items() if isinstance(env, Mapping) else env
        return replace(self, env=tuple((k, v) for k, v in items))

    def get_env(self, key: str) -> str | None:
        for k, v in self.env:
            if k == key:
                return v
        return None

    def with_cwd(self, path: str) -> "State":
        """llb's ``Dir``: an absolute path as written, a relative one joined to the current."""
        if path.startswith("/"):
            return replace(self, cwd=path)
        return replace(self, cwd=posixpath.normpath(posixpath.join(self.cwd or "/", path)))

    def with_user(self, user: str) -> "State":
        return replace(self, user=user)

    def with_platform(self, p: Platform | str) -> "State":
        return replace(self, platform=parse_platform(p))

    def with_image_config(self, config: dict | None) -> "State":
        return replace(self, image_config=config)

    def with_progress(self, group: ProgressGroup | None) -> "State":
        """Ops made from this state join progress group ``group`` (see :func:`progress_group`)."""
        return replace(self, progress=group)

    def at(self, loc: SourceLoc | None) -> "State":
        """Ops made from this state carry ``loc`` (never part of a digest)."""
        return replace(self, loc=loc)

    def with_ref(self, ref: Ref | None) -> "State":
        """This state's context on another filesystem."""
        return State(ref, self.env, self.cwd, self.user, self.platform, self.loc, self.image_config,
                     self.progress)

    _with_ref = with_ref  # the name tests and older callers use

    @property
    def op(self) -> Op | None:
        return None if self.ref is None else self.ref.op

    def is_scratch(self) -> bool:
        return self.ref is None

    def output(self, name: str = "default") -> "Output":
        """A graph output of this state (with its image config)."""
        from mason.ir.graph import Output

        if self.ref is None:
            raise MasonError(f"output {name!r} is scratch: a result needs at least one op")
        return Output(name, self.ref, self.image_config)

    # -- what ops made from this state share
    def _plat(self) -> Platform:
        return self.platform or default_platform()

    def _common(self, name: str | None, description: Description, progress: ProgressGroup | None,
                ignore_cache: bool, loc: SourceLoc | None, *, with_platform: bool = True) -> dict[str, Any]:
        """Fields every op made from this state gets. Only execs carry the platform (besides
        image sources): BuildKit's FileOp, MergeOp and DiffOp marshalers drop it (v0.12+)."""
        return {"platform": self._plat() if with_platform else None, "constraints": (),
                "metadata": op_metadata(name, description, progress or self.progress, ignore_cache),
                "loc": loc if loc is not None else self.loc}

    # -- ops
    def run(self, cmd: str | Sequence[str], *, mounts: Sequence["MountSpec"] = (), network: Any = "default",
            security: Any = "sandbox", env: Mapping[str, str] | None = None, cwd: str | None = None,
            user: str | None = None, hostname: str = "", readonly_root: bool = False,
            proxy_env: Mapping[str, str] | None = None, extra_hosts: Sequence[tuple[str, str]] = (),
            ulimits: Sequence[tuple[str, int, int]] = (), cgroup_parent: str = "",
            valid_exit_codes: Sequence[int] = (), devices: Sequence[Any] = (),
            name: str | None = None, description: Description = None, progress: ProgressGroup | None = None,
            ignore_cache: bool = False, loc: SourceLoc | None = None) -> "ExecState":
        """An ExecOp on this state (see :mod:`mason.ir.builder.exec`)."""
        return build_exec(self, cmd, mounts=mounts, network=network, security=security, env=env, cwd=cwd,
                          user=user, hostname=hostname, readonly_root=readonly_root, proxy_env=proxy_env,
                          extra_hosts=extra_hosts, ulimits=ulimits, cgroup_parent=cgroup_parent,
                          valid_exit_codes=valid_exit_codes, devices=devices,
                          common=self._common(name, description, progress, ignore_cache, loc))

    def file(self, actions: "FileActions", *, name: str | None = None, description: Description = None,
             progress: ProgressGroup | None = None, ignore_cache: bool = False,
             loc: SourceLoc | None = None) -> "State":
        """A FileOp applying ``actions`` (a chain from :func:`mkdir`, :func:`copy` …) to this state."""
        if not actions.steps:
            return self
        return build_file(self, actions, self._common(name, description, progress, ignore_cache, loc,
                                                      with_platform=False))

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False, **kw: Any) -> "State":
        from mason.ir.builder.file import mkdir

        return self.file(mkdir(path, mode, parents, **kw))

    def mkfile(self, path: str, data: bytes | str, mode: int = 0o644, **kw: Any) -> "State":
        from mason.ir.builder.file import mkfile

        return self.file(mkfile(path, data, mode, **kw))

    def copy(self, src: "State", src_path: str, dest: str, **kw: Any) -> "State":
        from mason.ir.builder.file import copy

        return self.file(copy(src, src_path, dest, **kw))

    def config(self, *changes: ConfigChange | tuple[str, str, str], created_by: str = "",
               loc: SourceLoc | None = None) -> "State":
        """A mason ConfigOp (identity on the filesystem) carrying image-config changes
        (:func:`config_change` or ``(action, key, value)``) and the history entry ``created_by``."""
        if self.ref is None:
            raise MasonError("a config change needs a filesystem state, not scratch")
        chs: tuple[ConfigChange, ...] = changes  # type: ignore[assignment]  # checked just below
        for c in changes:
            if type(c) is not ConfigChange:
                chs = tuple(c if isinstance(c, ConfigChange) else ConfigChange(*c) for c in changes)
                break
        op = ConfigOp(changes=chs, created_by=created_by, inputs=(self.ref,),
                      loc=loc if loc is not None else self.loc)
        return self.with_ref(Ref(op, 0))

    def marshal(self, image_config: dict | None = None, *, name: str | None = None) -> bytes:
        """This state's result as a Definition (bytes BuildKit reads); ``image_config``
        defaults to the state's."""
        from mason.ir.codec import marshal

        if self.ref is None:
            raise MasonError("cannot marshal scratch: a Definition needs at least one op")
        cfg = image_config if image_config is not None else self.image_config
        return marshal(self.ref, cfg, name=name)


@dataclass(frozen=True, slots=True)
class ExecState(State):
    """The root filesystem after an exec (usable as a State), plus its other outputs."""

    exec_op: ExecOp | None = None
    mount_outputs: tuple[tuple[str, int], ...] = ()

    def root(self) -> State:
        if self.ref is None:
            raise MasonError("the root of this exec is read-only: it has no output")
        return self.with_ref(self.ref)

    def get_mount(self, dest: str) -> State:
        """The writable mount at ``dest`` after the exec."""
        for d, i in self.mount_outputs:
            if d == dest:
                return self.with_ref(Ref(self.exec_op, i))  # type: ignore[arg-type]
        raise MasonError(f"no writable mount at {dest!r} (writable: "
                         f"{', '.join(d for d, _ in self.mount_outputs) or 'none'})")


def scratch(*, platform: Platform | str | None = None) -> State:
    """The empty filesystem (ops made on it get ``platform``)."""
    return State(platform=parse_platform(platform))


def config_change(action: str, key: str, value: str) -> ConfigChange:
    """One image-config change for :meth:`State.config`: ``set``/``add``/``append`` take a JSON
    value, ``env``/``label`` a string."""
    return ConfigChange(action, key, value)


def merge(states: Sequence[State], *, name: str | None = None, description: Description = None,
          progress: ProgressGroup | None = None, loc: SourceLoc | None = None) -> State:
    """Layer ``states`` in order (MergeOp). Scratch states are dropped; one left is returned
    as is, none gives scratch (as BuildKit's llb.Merge). The result has the first's context."""
    live = [s for s in states if s.ref is not None]
    if not live:
        return scratch() if not states else states[0].with_ref(None)
    if len(live) == 1:
        return live[0]
    inputs = Inputs()
    order = tuple(inputs.index(s.ref) for s in live)
    first = live[0]
    op = MergeOp(merge_inputs=order, inputs=inputs.tuple(),
                 **first._common(name, description, progress, False, loc, with_platform=False))
    return first.with_ref(Ref(op, 0))


def diff(lower: State, upper: State, *, name: str | None = None, description: Description = None,
         progress: ProgressGroup | None = None, loc: SourceLoc | None = None) -> State:
    """The changes from ``lower`` to ``upper`` (DiffOp); scratch sides are input -1."""
    inputs = Inputs()
    lo, up = inputs.index(lower.ref), inputs.index(upper.ref)
    op = DiffOp(lower=lo, upper=up, inputs=inputs.tuple(),
                **upper._common(name, description, progress, False, loc, with_platform=False))
    return upper.with_ref(Ref(op, 0))


def placeholder(identifier: str, *, platform: Platform | str | None = None) -> State:
    """A source standing for one decided later: build on it, then :func:`substitute` the real
    state for it (BuildKit's frontends do this with a mutable output)."""
    op = SourceOp(identifier, (("mason.placeholder", "1"),), constraints=())
    return State(Ref(op, 0), platform=parse_platform(platform))


def substitute(refs: Sequence[Ref], old: State | Ref, new: State | Ref) -> list[Ref]:
    """``refs`` with ``old``'s op replaced by ``new``'s everywhere below them (every op
    downstream rebuilt once, iteratively; metadata and locations kept)."""
    old_ref = old.ref if isinstance(old, State) else old
    new_ref = new.ref if isinstance(new, State) else new
    if old_ref is None or new_ref is None:
        raise MasonError("substitute needs two filesystem states, not scratch")
    old_op, new_op = old_ref.op, new_ref.op
    mapping: dict[int, Op] = {id(old_op): new_op}
    for op in walk_ops(r.op for r in refs):
        if op is old_op:
            continue
        changed = False
        ins = []
        for r in op.inputs:
            m = mapping.get(id(r.op))
            if m is not None:
                changed = True
                ins.append(Ref(m, r.index))
            else:
                ins.append(r)
        if changed:
            mapping[id(op)] = op.with_inputs(tuple(ins))
    return [Ref(mapping.get(id(r.op), r.op), r.index) for r in refs]

