"""The buildpacks frontend (``project.toml``; ``#syntax=mason/buildpacks``): positioned TOML →
typed descriptor (:mod:`.model`) → the lifecycle as LLB (:mod:`.lower`)."""

from __future__ import annotations

import posixpath
import time
from typing import TYPE_CHECKING, ClassVar

from mason.frontends.base import BaseFrontend, Diagnostic, FrontendRequest, FrontendResult, TargetInfo, Targets
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.reference import parse_reference

if TYPE_CHECKING:  # the model, the reader and the lowering load when a file of this kind is read
    from mason.frontends.buildpacks.model import Project

__all__ = ["BuildpacksFrontend", "read_project"]

SYNTAXES = ("docker.io/mason/buildpacks",)


def read_project(text: str, filename: str = "project.toml") -> Project:
    from mason.frontends.buildpacks.model import parse_project
    from mason.frontends.tomldoc import load_toml

    try:
        return parse_project(load_toml(text, filename))
    except MasonError as e:
        raise e.with_source(text) from None


class BuildpacksFrontend(BaseFrontend):
    name: ClassVar[str] = "buildpacks"
    description: ClassVar[str] = "Cloud Native Buildpacks project descriptor (project.toml, schema 0.1/0.2)"

    def claims(self, path: str, text: str) -> bool:
        return posixpath.basename(path) == "project.toml"

    def handles_syntax(self, value: str) -> bool:
        v = value.strip()
        if v == self.name:
            return True
        try:
            return parse_reference(v).repository in SYNTAXES
        except MasonError:
            return False

    def lower(self, request: FrontendRequest) -> FrontendResult:
        from mason.frontends.buildpacks.lower import lower_project

        t0 = time.perf_counter()
        project = read_project(request.text, request.filename)
        t1 = time.perf_counter()
        if request.target not in (None, "", "default"):
            raise MasonError(f"target {request.target!r} could not be found: a project descriptor builds one "
                             "image (target 'default')")
        warns: list[tuple[str, SourceLoc | None]] = []
        try:
            graph = lower_project(project, resolver=request.resolver, platform=request.platform,
                                  excludes=request.excludes, build_args=request.build_args, warnings=warns)
        except MasonError as e:
            raise e.with_source(request.text) from None
        t2 = time.perf_counter()
        return FrontendResult(graph, (), [Diagnostic(m, loc) for m, loc in warns],
                              {"parse": (t1 - t0) * 1000, "lower": (t2 - t1) * 1000})

    def targets(self, request: FrontendRequest) -> Targets:
        p = read_project(request.text, request.filename)
        return Targets((TargetInfo("default", p.name or p.id or "", base=p.builder[0] if p.builder else None,
                                   default=True),))
