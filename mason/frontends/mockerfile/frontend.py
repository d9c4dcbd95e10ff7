"""The Mockerfile frontend (``Mockerfile.yaml``; ``#syntax=r2d4/mocker`` or ``mason/mockerfile``):
positioned YAML → typed tree (:mod:`.model`) → LLB (:mod:`.lower`)."""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, ClassVar

from mason.frontends.base import FrontendRequest, FrontendResult, TargetInfo, Targets
from mason.frontends.document import DocumentFrontend, Warnings, read_document

if TYPE_CHECKING:  # the model, the reader and the lowering load when a file of this kind is read
    from mason.frontends.mockerfile.model import Mockerfile
    from mason.ir.graph import Graph

__all__ = ["MockerfileFrontend", "read_mockerfile", "SYNTAXES"]

SYNTAXES = ("docker.io/r2d4/mocker", "docker.io/mason/mockerfile")
_FILENAME = re.compile(r"^(?:.*\.)?mockerfile(?:\.[A-Za-z0-9_-]+)?\.ya?ml$|^mockerfile$", re.I)


def read_mockerfile(text: str, filename: str = "Mockerfile.yaml") -> Mockerfile:
    """Parse and check ``text``; errors carry their source line."""
    from mason.frontends.mockerfile.model import parse_mockerfile
    from mason.frontends.yamldoc import load_yaml

    return read_document(text, filename, load_yaml, parse_mockerfile)


class MockerfileFrontend(DocumentFrontend):
    name: ClassVar[str] = "mockerfile"
    description: ClassVar[str] = "Mockerfile YAML (r2d4/mocker): images with packages, downloads, steps, outputs"
    syntaxes: ClassVar[tuple[str, ...]] = SYNTAXES

    def claims(self, path: str, text: str) -> bool:
        return bool(_FILENAME.match(posixpath.basename(path)))

    def lower(self, request: FrontendRequest) -> FrontendResult:
        from mason.frontends.mockerfile.lower import lower_mockerfile

        def run(mf: Mockerfile, warns: Warnings) -> Graph:
            return lower_mockerfile(mf, resolver=request.resolver, platform=request.platform,
                                    excludes=request.excludes, target=request.target, warnings=warns)

        return self.lowered(request, read_mockerfile, run, lambda mf: tuple(im.name for im in mf.images))

    def targets(self, request: FrontendRequest) -> Targets:
        mf = read_mockerfile(request.text, request.filename)
        last = len(mf.images) - 1
        return Targets(tuple(TargetInfo(im.name, base=im.base or im.parent, default=i == last, loc=im.loc)
                             for i, im in enumerate(mf.images)))
