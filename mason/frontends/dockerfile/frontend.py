"""The Dockerfile frontend: :class:`DockerfileFrontend` implements the
:class:`~mason.frontends.base.Frontend` interface (what the registry and the driver know);
:class:`DockerfileLowering` is one run of the three layers, for tests and benches:

    fe = DockerfileLowering(LowerOptions(build_args={"V": "1"}), resolver)
    graph = fe.lower(text, "Dockerfile")

:class:`DockerfileLowering` runs the three layers (syntax → typed instructions → lowering), keeps their warnings and the
time each took (``timings``, milliseconds), and attaches the source line to every error so it
prints as ``Dockerfile:3:1: error: …`` with a caret. The resolver is passed in (frontends import
only ``mason.ir``): ``None`` lowers offline (``--no-resolve``).
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

from mason.frontends.base import (
    BaseFrontend,
    Diagnostic,
    FrontendRequest,
    FrontendResult,
    Outline,
    Targets,
)
from mason.frontends.dockerfile.nodes import Directive, ParseResult
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.reference import parse_reference
from mason.ir.resolver import ImageMetaResolver

if TYPE_CHECKING:
    from mason.frontends.dockerfile.instructions import Dockerfile
    from mason.frontends.dockerfile.lower import LowerOptions

# The syntax (lark), instructions and lowering layers load on first use: choosing a frontend
# instantiates every built-in one, and a build whose lowering is cached parses nothing.


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> ParseResult:
    from mason.frontends.dockerfile.syntax import parse_dockerfile as parse

    return parse(text, filename)


def __getattr__(name: str) -> Any:  # LowerOptions, as it was importable from here
    if name == "LowerOptions":
        from mason.frontends.dockerfile.lower import LowerOptions

        return LowerOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DockerfileFrontend", "DockerfileLowering", "LowerOptions", "is_builtin_syntax",
           "syntax_directive"]

_BUILTIN_REPOS = ("docker.io/docker/dockerfile", "docker.io/docker/dockerfile-upstream")


def syntax_directive(result: ParseResult) -> Directive | None:
    for d in result.directives:
        if d.name.lower() == "syntax":
            return d
    return None


def is_builtin_syntax(value: str) -> bool:
    """Whether a ``# syntax=`` value names ``docker/dockerfile`` (any tag or digest)."""
    try:
        ref = parse_reference(value.strip())
    except MasonError:
        return False
    return ref.repository in _BUILTIN_REPOS


class DockerfileLowering:
    """One lowering of a Dockerfile: the three layers, their warnings and timings."""

    name: ClassVar[str] = "dockerfile"

    def __init__(self, options: LowerOptions | None = None,
                 resolver: ImageMetaResolver | None = None):
        from mason.frontends.dockerfile.lower import LowerOptions

        self.options = options or LowerOptions()
        self.resolver = resolver
        self.warnings: list[tuple[str, SourceLoc | None]] = []
        self.timings: dict[str, float] = {}

    def parse(self, text: str, filename: str = "Dockerfile") -> ParseResult:
        t0 = time.perf_counter()
        try:
            result = parse_dockerfile(text, filename)
        except MasonError as e:
            raise e.with_source(text) from None
        self.timings["parse"] = (time.perf_counter() - t0) * 1000
        self.warnings.extend(result.warnings)
        return result

    def instructions(self, result: ParseResult, text: str) -> Dockerfile:
        from mason.frontends.dockerfile.instructions import parse_instructions

        t0 = time.perf_counter()
        try:
            df = parse_instructions(result, text)
        except MasonError as e:
            raise e.with_source(text) from None
        self.timings["instructions"] = (time.perf_counter() - t0) * 1000
        return df

    def lower_parsed(self, result: ParseResult, text: str, filename: str = "Dockerfile") -> Graph:
        from mason.frontends.dockerfile.lower import Lowerer

        df = self.instructions(result, text)
        t0 = time.perf_counter()
        lw = Lowerer(df, self.options, self.resolver,
                     lambda msg, loc: self.warnings.append((msg, loc)), filename)
        try:
            graph = lw.lower()
        except MasonError as e:
            raise e.with_source(text) from None
        self.timings["lower"] = (time.perf_counter() - t0) * 1000
        return graph

    def lower(self, text: str, filename: str = "Dockerfile") -> Graph:
        """Parse, check and lower ``text``; a ``# syntax=`` other than ``docker/dockerfile``
        is an error located at the directive."""
        result = self.parse(text, filename)
        d = syntax_directive(result)
        if d is not None and not is_builtin_syntax(d.value):
            raise MasonError(f"unsupported frontend # syntax={d.value}: only docker/dockerfile "
                             "(the built-in frontend) is supported", d.loc).with_source(text)
        return self.lower_parsed(result, text, filename)


# Dockerfile, Containerfile, Dockerfile.dev, dev.Dockerfile (any case)
_NAMES = re.compile(r"(?i)(?:dockerfile|containerfile)(?:\..*)?|.*\.(?:dockerfile|containerfile)")


class DockerfileFrontend(BaseFrontend):
    """The built-in Dockerfile frontend as the registry and the driver see it: ``# syntax=``
    ``docker/dockerfile`` (any tag or digest) or ``dockerfile`` chooses it, it claims files named
    like Dockerfiles, and it answers all three subrequests (outline and targets from
    :mod:`.outline`, lint from :mod:`.checks`)."""

    name: ClassVar[str] = "dockerfile"
    description: ClassVar[str] = "Dockerfile (BuildKit's docker/dockerfile syntax, build checks)"

    def claims(self, path: str, text: str) -> bool:
        return _NAMES.fullmatch(os.path.basename(path)) is not None

    def handles_syntax(self, value: str) -> bool:
        return value.strip() == self.name or is_builtin_syntax(value)

    @staticmethod
    def options(request: FrontendRequest) -> LowerOptions:
        from mason.frontends.dockerfile.lower import LowerOptions

        return LowerOptions(build_args=dict(request.build_args), platform=request.platform,
                            excludes=request.excludes, target=request.target,
                            named_contexts=dict(request.named_contexts),
                            context_excludes=dict(request.context_excludes),
                            shm_size=request.shm_size, ulimits=request.ulimits)

    @staticmethod
    def parse(request: FrontendRequest) -> ParseResult:
        try:
            return parse_dockerfile(request.text, request.filename)
        except MasonError as e:
            raise e.with_source(request.text) from None

    def lower(self, request: FrontendRequest) -> FrontendResult:
        lw = DockerfileLowering(self.options(request), request.resolver)
        graph = lw.lower_parsed(lw.parse(request.text, request.filename), request.text, request.filename)
        stages = tuple(n for n in graph.names() if n != "default")
        return FrontendResult(graph, stages, [Diagnostic(m, loc) for m, loc in lw.warnings], dict(lw.timings))

    def outline(self, request: FrontendRequest) -> Outline:
        from mason.frontends.dockerfile.outline import outline

        return outline(self.parse(request), request.text, build_args=request.build_args, target=request.target)

    def targets(self, request: FrontendRequest) -> Targets:
        from mason.frontends.dockerfile.outline import targets

        return targets(self.parse(request), request.text)

    def lint(self, request: FrontendRequest):  # -> checks.LintReport (a LintResult)
        from mason.frontends.dockerfile.checks import lint

        resolver = request.resolver

        def image_config(ref: str, platform):
            return resolver.resolve_image_config(ref, platform).config if resolver is not None else None

        result = self.parse(request)
        try:
            return lint(result, request.text, build_args=request.build_args, target=request.target,
                        all_targets=not request.for_build, target_platform=request.platform,
                        excludes=request.excludes, image_config=image_config if resolver is not None else None)
        except MasonError as e:
            raise e.with_source(request.text) from None
