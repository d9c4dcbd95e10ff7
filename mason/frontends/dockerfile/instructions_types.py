"""The typed Dockerfile instructions: one frozen value per instruction, the ``--mount`` values of
``RUN``, build stages and the whole :class:`Dockerfile`.

Strings are kept raw (unexpanded): variable expansion needs ARG/ENV values and happens in the
lowering. Values that can be checked statically are checked by the instructions layer
(:mod:`mason.frontends.dockerfile.instructions`); numeric mount options are parsed there when they
contain no ``$``, otherwise they stay strings for :func:`~.instructions_values.expand_mount`.
Every value carries its :class:`SourceLoc` with ``compare=False`` and the instruction's
``original`` text (like BuildKit's ``withNameAndCode``).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Union

from mason._codecache import compile_cached
from mason.frontends.dockerfile.nodes import Directive, Heredoc
from mason.ir.errors import SourceLoc


def _fast_init(cls):
    """Replace a frozen slotted dataclass's ``__init__`` by one that stores through the slot
    descriptors directly: the same signature and defaults, about twice as fast (the
    instructions layer builds one value per line of large Dockerfiles)."""
    params, body, env = [], [], {}
    for i, f in enumerate(fields(cls)):
        env[f"_s{i}"] = getattr(cls, f.name).__set__
        if f.default is not MISSING:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        else:
            params.append(f.name)
        body.append(f"    _s{i}(self, {f.name})")
    src = (f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n")
    ns: dict = {}
    exec(compile_cached(src, f"<{cls.__name__}.__init__>"), env, ns)  # noqa: S102
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__name__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init
    return cls


# ---------------------------------------------------------------------------------------------
# Command lines of RUN / CMD / ENTRYPOINT / HEALTHCHECK


@_fast_init
@dataclass(frozen=True, slots=True)
class ShellForm:
    """``RUN make all``: one string, run through the stage's SHELL (default ``/bin/sh -c``)."""

    command: str


@_fast_init
@dataclass(frozen=True, slots=True)
class ExecForm:
    """``RUN ["make", "all"]``: the JSON array, run as is (no shell)."""

    args: tuple[str, ...]


ShellOrExec = Union[ShellForm, ExecForm]

# ---------------------------------------------------------------------------------------------
# RUN --mount values. ``options`` keeps the raw key/value pairs (in order) so the lowering can
# expand variables and re-check with ``expand_mount``; fields typed ``int | str`` / ``bool | str``
# hold a str only when the raw value contains ``$`` (not checkable before expansion).


@_fast_init
@dataclass(frozen=True, slots=True)
class BindMount:
    """``type=bind`` (the default): ``source`` of ``from`` (a stage, image or context; the build
    context when None) at ``target``; read-only unless ``readwrite`` (writes are discarded)."""

    target: str
    source: str | None = None
    from_: str | None = None
    readwrite: bool | str = False
    options: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class CacheMount:
    """``type=cache``: a persistent directory shared between builds. ``id`` defaults to the
    target (see :attr:`effective_id`); ``mode`` defaults to 0o755, ``uid``/``gid`` to 0."""

    target: str
    id: str | None = None
    readonly: bool | str = False
    sharing: str = "shared"
    from_: str | None = None
    source: str | None = None
    mode: int | str | None = None
    uid: int | str | None = None
    gid: int | str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)

    @property
    def effective_id(self) -> str:
        return self.id if self.id else self.target


@_fast_init
@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """``type=tmpfs``: an in-memory file system at ``target``; ``size`` in bytes (None: no
    limit)."""

    target: str
    size: int | str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class SecretMount:
    """``type=secret``: a build secret as a file (``target``) and/or an environment variable
    (``env``). ``id`` defaults to the basename of the target, the target to
    ``/run/secrets/<id>`` unless only ``env`` is asked for. ``mode`` defaults to 0o400."""

    id: str | None = None
    target: str | None = None
    env: str | None = None
    required: bool | str = False
    mode: int | str | None = None
    uid: int | str | None = None
    gid: int | str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)

    @property
    def effective_id(self) -> str:
        if self.id:
            return self.id
        target = (self.target or "").rstrip("/")
        return target.rsplit("/", 1)[-1]

    @property
    def effective_target(self) -> str | None:
        """Where the file goes, or None when the secret is only exposed as ``env``."""
        if self.target:
            return self.target
        if self.env:
            return None
        return "/run/secrets/" + self.effective_id

    @property
    def effective_mode(self) -> int | str:
        return 0o400 if self.mode is None else self.mode


@_fast_init
@dataclass(frozen=True, slots=True)
class SshMount:
    """``type=ssh``: the SSH agent socket ``id`` (default ``default``) at ``target`` (default
    ``/run/buildkit/ssh_agent.N``, N = the index among this RUN's ssh mounts, chosen by the
    lowering). ``mode`` defaults to 0o600."""

    id: str | None = None
    target: str | None = None
    required: bool | str = False
    mode: int | str | None = None
    uid: int | str | None = None
    gid: int | str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)

    @property
    def effective_id(self) -> str:
        return self.id if self.id else "default"

    @property
    def effective_mode(self) -> int | str:
        return 0o600 if self.mode is None else self.mode


@_fast_init
@dataclass(frozen=True, slots=True)
class DeferredMount:
    """A mount whose ``type`` contains a variable: only checked (and typed) after expansion,
    by ``expand_mount``."""

    options: tuple[tuple[str, str], ...]
    loc: SourceLoc | None = field(default=None, compare=False, repr=False)


Mount = Union[BindMount, CacheMount, TmpfsMount, SecretMount, SshMount, DeferredMount]

# ---------------------------------------------------------------------------------------------
# Instructions. ``original`` is the instruction's source text (continuations joined).


@_fast_init
@dataclass(frozen=True, slots=True)
class From:
    """``FROM [--platform=P] image [AS name]``; ``stage_name`` is lower-cased as in BuildKit."""

    image: str
    platform: str | None = None
    stage_name: str | None = None
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Run:
    command: ShellOrExec
    mounts: tuple[Mount, ...] = ()
    network: str | None = None  # default | none | host (None: not given)
    security: str | None = None  # sandbox | insecure
    devices: tuple[str, ...] = ()  # --device (labs)
    heredocs: tuple[Heredoc, ...] = ()
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Cmd:
    command: ShellOrExec
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Entrypoint:
    command: ShellOrExec
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Copy:
    """``COPY [flags] src… dest``. ``sources`` are the path sources; heredoc sources
    (``<<EOF``) are in ``heredocs``, in order. ``chmod`` is octal or symbolic (checked when it
    has no variables)."""

    sources: tuple[str, ...]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Add:
    """``ADD [flags] src… dest``: like :class:`Copy` plus URLs/git sources and archives.
    ``unpack`` is None when not given (then local archives are unpacked, remote ones not)."""

    sources: tuple[str, ...]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Arg:
    """``ARG a b=1``: (name, default or None) pairs."""

    args: tuple[tuple[str, str | None], ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Env:
    """``ENV k=v …`` or legacy ``ENV k v``: (key, value) pairs."""

    pairs: tuple[tuple[str, str], ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Label:
    pairs: tuple[tuple[str, str], ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Expose:
    """Raw port specs (``80``, ``8000-8002/udp``); see ``parse_port_spec``."""

    ports: tuple[str, ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class User:
    user: str
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Workdir:
    path: str
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Volume:
    paths: tuple[str, ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Stopsignal:
    signal: str
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Healthcheck:
    """``HEALTHCHECK NONE`` (``test`` None) or ``HEALTHCHECK [flags] CMD …``. Durations are in
    nanoseconds (as the image config stores them); None = not given (defaults apply)."""

    test: ShellOrExec | None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Shell:
    args: tuple[str, ...]
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Onbuild:
    """``ONBUILD <trigger>``: the typed trigger, and the trigger's source text as the image
    config records it (``expression``, heredoc bodies appended)."""

    trigger: "Instruction"
    expression: str
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Maintainer:
    name: str
    original: str = field(default="", compare=False)
    loc: SourceLoc | None = field(default=None, compare=False)


Instruction = Union[
    From, Run, Cmd, Entrypoint, Copy, Add, Arg, Env, Label, Expose, User, Workdir, Volume,
    Stopsignal, Healthcheck, Shell, Onbuild, Maintainer,
]

# ---------------------------------------------------------------------------------------------
# Stages and the whole file


@_fast_init
@dataclass(frozen=True, slots=True)
class Stage:
    """One build stage: its FROM (``base`` image, ``platform``, lower-cased ``name``) and the
    instructions after it, up to the next FROM."""

    name: str | None
    base: str
    platform: str | None
    instructions: tuple[Instruction, ...]
    from_: From = field(compare=False, repr=False)
    loc: SourceLoc | None = field(default=None, compare=False)


@_fast_init
@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A validated Dockerfile: the global (meta) ARGs before the first FROM, the stages, every
    instruction in source order, and the parser directives / escape character."""

    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    instructions: tuple[Instruction, ...] = field(default=(), compare=False, repr=False)
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    loc: SourceLoc | None = field(default=None, compare=False)

    def stage(self, name_or_index: str | int) -> Stage:
        """The stage named ``name`` (case-insensitive) or at an index; KeyError if none."""
        if isinstance(name_or_index, int):
            return self.stages[name_or_index]
        wanted = name_or_index.lower()
        for s in self.stages:
            if s.name == wanted:
                return s
        raise KeyError(name_or_index)
