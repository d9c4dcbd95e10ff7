"""The Mockerfile frontend (``Mockerfile.yaml``; ``#syntax=r2d4/mocker`` or ``mason/mockerfile``):
positioned YAML → typed tree (:mod:`.model`) → LLB (:mod:`.lower`)."""

from __future__ import annotations

import posixpath
import re
import time
from typing import TYPE_CHECKING, ClassVar

from mason.frontends.base import BaseFrontend, Diagnostic, FrontendRequest, FrontendResult, TargetInfo, Targets
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.reference import parse_reference

if TYPE_CHECKING:  # the model, the reader and the lowering load when a file of this kind is read
    from mason.frontends.mockerfile.model import Mockerfile

__all__ = ["MockerfileFrontend", "read_mockerfile", "SYNTAXES"]

SYNTAXES = ("docker.io/r2d4/mocker", "docker.io/mason/mockerfile")
_FILENAME = re.compile(r"^(?:.*\.)?mockerfile(?:\.[A-Za-z0-9_-]+)?\.ya?ml$|^mockerfile$", re.I)


def read_mockerfile(text: str, filename: str = "Mockerfile.yaml") -> Mockerfile:
    """Parse and check ``text``; errors carry their source line."""
    from mason.frontends.mockerfile.model import parse_mockerfile
    from mason.frontends.yamldoc import load_yaml

    try:
        return parse_mockerfile(load_yaml(text, filename))
    except MasonError as e:
        raise e.with_source(text) from None


class MockerfileFrontend(BaseFrontend):
    name: ClassVar[str] = "mockerfile"
    description: ClassVar[str] = "Mockerfile YAML (r2d4/mocker): images with packages, downloads, steps, outputs"

    def claims(self, path: str, text: str) -> bool:
        return bool(_FILENAME.match(posixpath.basename(path)))

    def handles_syntax(self, value: str) -> bool:
        v = value.strip()
        if v == self.name:
            return True
        try:
            return parse_reference(v).repository in SYNTAXES
        except MasonError:
            return False

    def lower(self, request: FrontendRequest) -> FrontendResult:
        from mason.frontends.mockerfile.lower import lower_mockerfile

        t0 = time.perf_counter()
        mf = read_mockerfile(request.text, request.filename)
        t1 = time.perf_counter()
        warns: list[tuple[str, SourceLoc | None]] = []
        try:
            graph = lower_mockerfile(mf, resolver=request.resolver, platform=request.platform,
                                     excludes=request.excludes, target=request.target, warnings=warns)
        except MasonError as e:
            raise e.with_source(request.text) from None
        t2 = time.perf_counter()
        return FrontendResult(graph, tuple(im.name for im in mf.images),
                              [Diagnostic(m, loc) for m, loc in warns],
                              {"parse": (t1 - t0) * 1000, "lower": (t2 - t1) * 1000})

    def targets(self, request: FrontendRequest) -> Targets:
        mf = read_mockerfile(request.text, request.filename)
        last = len(mf.images) - 1
        return Targets(tuple(TargetInfo(im.name, base=im.base or im.parent, default=i == last, loc=im.loc)
                             for i, im in enumerate(mf.images)))
