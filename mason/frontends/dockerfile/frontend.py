"""The Dockerfile frontend as one entry: Dockerfile text + options → a :class:`Graph`.

    fe = DockerfileFrontend(LowerOptions(build_args={"V": "1"}), resolver)
    graph = fe.lower(text, "Dockerfile")

Runs the three layers (syntax → typed instructions → lowering), keeps their warnings and the
time each took (``timings``, milliseconds), and attaches the source line to every error so it
prints as ``Dockerfile:3:1: error: …`` with a caret. The resolver is passed in (frontends import
only ``mason.ir``): ``None`` lowers offline (``--no-resolve``).
"""

from __future__ import annotations

import time
from typing import ClassVar

from mason.frontends.dockerfile.instructions import Dockerfile, parse_instructions
from mason.frontends.dockerfile.lower import Lowerer, LowerOptions
from mason.frontends.dockerfile.nodes import Directive, ParseResult
from mason.frontends.dockerfile.syntax import parse_dockerfile
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.reference import parse_reference
from mason.ir.resolver import ImageMetaResolver

__all__ = ["DockerfileFrontend", "LowerOptions", "is_builtin_syntax", "syntax_directive"]

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


class DockerfileFrontend:
    """The built-in Dockerfile frontend."""

    name: ClassVar[str] = "dockerfile"

    def __init__(self, options: LowerOptions | None = None,
                 resolver: ImageMetaResolver | None = None):
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
        t0 = time.perf_counter()
        try:
            df = parse_instructions(result, text)
        except MasonError as e:
            raise e.with_source(text) from None
        self.timings["instructions"] = (time.perf_counter() - t0) * 1000
        return df

    def lower_parsed(self, result: ParseResult, text: str, filename: str = "Dockerfile") -> Graph:
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
