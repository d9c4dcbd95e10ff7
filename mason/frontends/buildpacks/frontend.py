"""The buildpacks frontend (``project.toml``; ``#syntax=mason/buildpacks``): positioned TOML →
typed descriptor (:mod:`.model`) → the lifecycle as LLB (:mod:`.lower`)."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, ClassVar

from mason.frontends.base import FrontendRequest, FrontendResult, TargetInfo, Targets
from mason.frontends.document import DocumentFrontend, Warnings, read_document
from mason.ir.errors import MasonError

if TYPE_CHECKING:  # the model, the reader and the lowering load when a file of this kind is read
    from mason.frontends.buildpacks.model import Project
    from mason.ir.graph import Graph

__all__ = ["BuildpacksFrontend", "read_project"]

SYNTAXES = ("docker.io/mason/buildpacks",)


def read_project(text: str, filename: str = "project.toml") -> Project:
    from mason.frontends.buildpacks.model import parse_project
    from mason.frontends.tomldoc import load_toml

    return read_document(text, filename, load_toml, parse_project)


class BuildpacksFrontend(DocumentFrontend):
    name: ClassVar[str] = "buildpacks"
    description: ClassVar[str] = "Cloud Native Buildpacks project descriptor (project.toml, schema 0.1/0.2)"
    syntaxes: ClassVar[tuple[str, ...]] = SYNTAXES

    def claims(self, path: str, text: str) -> bool:
        return posixpath.basename(path) == "project.toml"

    def lower(self, request: FrontendRequest) -> FrontendResult:
        from mason.frontends.buildpacks.lower import lower_project

        def run(project: Project, warns: Warnings) -> Graph:
            if request.target not in (None, "", "default"):
                raise MasonError(f"target {request.target!r} could not be found: a project descriptor builds one "
                                 "image (target 'default')")
            return lower_project(project, resolver=request.resolver, platform=request.platform,
                                 excludes=request.excludes, build_args=request.build_args, warnings=warns)

        return self.lowered(request, read_project, run)

    def targets(self, request: FrontendRequest) -> Targets:
        p = read_project(request.text, request.filename)
        return Targets((TargetInfo("default", p.name or p.id or "", base=p.builder[0] if p.builder else None,
                                   default=True),))
