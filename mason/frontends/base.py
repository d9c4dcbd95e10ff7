"""The Frontend interface: what every build language implements and all the driver knows of it.

A frontend turns a :class:`FrontendRequest` (the file's text and path, build args, target,
platform, named contexts, the ``.dockerignore`` patterns and an image-metadata resolver) into a
:class:`FrontendResult` (a :class:`~mason.ir.graph.Graph` whose outputs carry their image
configs), and answers BuildKit's subrequests (``docker buildx build --call …``):

* ``outline`` — the build args, secrets and SSH sockets a target uses (:class:`Outline`);
* ``targets`` — the stages/targets it can build, with descriptions (:class:`Targets`);
* ``lint`` — build-check warnings (:class:`LintResult`).

It also says whether it claims a file (:meth:`Frontend.claims`, by name or content) and which
``# syntax=`` values it answers (:meth:`Frontend.handles_syntax`). Frontends are found through
:mod:`mason.frontends.registry`. A frontend imports only ``mason.ir`` and builds LLB only
through :mod:`mason.ir.builder`.

:class:`BaseFrontend` gives the defaults: it claims nothing, answers no ``# syntax=`` but its
name, and refuses every subrequest with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.resolver import ImageMetaResolver, PlatformSpec

if TYPE_CHECKING:
    from mason.ir.ops import Ulimit

__all__ = ["Frontend", "BaseFrontend", "answers", "FrontendRequest", "FrontendResult", "Diagnostic",
           "Outline", "OutlineArg", "OutlineSecret", "OutlineSSH", "Targets", "TargetInfo",
           "LintResult", "LintWarning", "SUBREQUESTS"]

SUBREQUESTS = ("outline", "targets", "lint")


@dataclass(frozen=True)
class FrontendRequest:
    """One request to a frontend. ``filename`` is how errors name the file (``<stdin>`` for
    stdin); ``named_contexts`` maps ``--build-context`` names to BuildKit's ``context:NAME``
    values (``docker-image://REF``, ``local:NAME`` for a directory sent as ``local://NAME``, a
    URL; see :mod:`mason.build_contexts`) and ``context_excludes`` gives each such local
    directory's ``.dockerignore`` patterns; ``excludes`` are the ``.dockerignore`` patterns of
    the main context; ``resolver`` None works offline (base images
    unpinned, empty base configs). ``for_build``: the subrequest (lint) runs as part of a build
    of ``target``, not on its own (``--call``), so it needs to look only at what that build
    uses."""

    text: str
    filename: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: PlatformSpec | None = None
    named_contexts: Mapping[str, str] = field(default_factory=dict)
    context_excludes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    resolver: ImageMetaResolver | None = field(default=None, compare=False)
    for_build: bool = False
    shm_size: int = 0  # --shm-size bytes (0: the runtime's 64 MiB)
    ulimits: tuple[Ulimit, ...] = ()  # --ulimit


@dataclass(frozen=True)
class Diagnostic:
    """A warning the frontend met while lowering (not a build check): message and location."""

    message: str
    loc: SourceLoc | None = None

    def format(self) -> str:
        return f"{self.loc}: warning: {self.message}" if self.loc is not None else f"warning: {self.message}"


@dataclass
class FrontendResult:
    """A lowering: the graph (one output per target, ``default`` the one built; each output
    carries its image config), the stages or targets it defines before any pass ran (for
    ``--no-cache-filter``), warnings, and the milliseconds each phase took."""

    graph: Graph
    stages: tuple[str, ...] = ()
    warnings: list[Diagnostic] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- subrequests


@dataclass(frozen=True)
class OutlineArg:
    """A build arg a target uses: its default (None: no default) and description."""

    name: str
    default: str | None = None
    description: str = ""
    value: str | None = None  # the value given with --build-arg, if any
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class OutlineSecret:
    id: str
    required: bool = False
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class OutlineSSH:
    id: str
    required: bool = False
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class Outline:
    """What building ``target`` needs (BuildKit's ``outline`` subrequest)."""

    target: str | None
    description: str = ""
    args: tuple[OutlineArg, ...] = ()
    secrets: tuple[OutlineSecret, ...] = ()
    ssh: tuple[OutlineSSH, ...] = ()
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class TargetInfo:
    """One buildable target: a name, its description, whether it is the default (last) one."""

    name: str
    description: str = ""
    base: str | None = None
    platform: str | None = None
    default: bool = False
    loc: SourceLoc | None = None


@dataclass(frozen=True)
class Targets:
    targets: tuple[TargetInfo, ...]


class LintWarning(Protocol):
    """One build-check warning: the rule's name and one-line description, this occurrence's
    message and where it is; ``format()`` is how the CLI prints it (location, message, the source
    line with a caret, the description)."""

    @property
    def rule(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def loc(self) -> SourceLoc | None: ...
    @property
    def source_line(self) -> str | None: ...

    def format(self) -> str: ...


class LintResult(Protocol):
    """Build-check warnings in source order; ``failed``: the checks are set to error and at
    least one fired (``--check`` and the build exit 1)."""

    @property
    def warnings(self) -> Sequence[LintWarning]: ...
    @property
    def failed(self) -> bool: ...


# ---------------------------------------------------------------------------- the protocol


@runtime_checkable
class Frontend(Protocol):
    """A build language. ``name`` is unique in the registry; ``description`` one line for
    ``mason frontends``."""

    name: str
    description: str

    def claims(self, path: str, text: str) -> bool:
        """Whether this frontend is the one for the file at ``path`` with ``text`` when no
        ``# syntax=`` chooses one (by its name, extension or first line)."""
        ...

    def handles_syntax(self, value: str) -> bool:
        """Whether a ``# syntax=VALUE`` directive names this frontend."""
        ...

    def lower(self, request: FrontendRequest) -> FrontendResult:
        """Lower the file to a graph. Raises :class:`MasonError` (located) for the user's
        mistakes."""
        ...

    def outline(self, request: FrontendRequest) -> Outline: ...

    def targets(self, request: FrontendRequest) -> Targets: ...

    def lint(self, request: FrontendRequest) -> LintResult: ...


class BaseFrontend:
    """Defaults for a :class:`Frontend`: subclass and implement :meth:`lower` (and the
    subrequests it answers)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def claims(self, path: str, text: str) -> bool:
        return False

    def handles_syntax(self, value: str) -> bool:
        return value.strip() == self.name

    def lower(self, request: FrontendRequest) -> FrontendResult:
        raise NotImplementedError

    def _unanswered(self, what: str) -> MasonError:
        return MasonError(f"the {self.name} frontend does not answer the {what!r} subrequest")

    def outline(self, request: FrontendRequest) -> Outline:
        raise self._unanswered("outline")

    def targets(self, request: FrontendRequest) -> Targets:
        raise self._unanswered("targets")

    def lint(self, request: FrontendRequest) -> LintResult:
        raise self._unanswered("lint")


def answers(frontend: Frontend, subrequest: str) -> bool:
    """Whether ``frontend`` answers ``subrequest`` (``outline``, ``targets``, ``lint``): a
    :class:`BaseFrontend` does when it overrides the method; any other implementation of the
    protocol is taken at its word."""
    if subrequest not in SUBREQUESTS:
        raise ValueError(f"unknown subrequest {subrequest!r}")
    if not isinstance(frontend, BaseFrontend):
        return True
    return getattr(type(frontend), subrequest) is not getattr(BaseFrontend, subrequest)
