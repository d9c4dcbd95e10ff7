"""What the frontends of one structured document share (the Mockerfile's YAML, buildpacks'
``project.toml``): reading it with errors that show their source line, answering ``# syntax=``
by name or by the image repositories it stands for, and a lowering timed as the driver reports
it (``parse`` and ``lower`` milliseconds)."""

from __future__ import annotations

import time
from typing import Callable, ClassVar, TypeVar

from mason.frontends.base import BaseFrontend, Diagnostic, FrontendRequest, FrontendResult
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.reference import parse_reference

__all__ = ["DocumentFrontend", "read_document", "Warnings"]

T = TypeVar("T")
N = TypeVar("N")
Warnings = list[tuple[str, SourceLoc | None]]  # what a lowering reports: (message, where)


def read_document(text: str, filename: str, load: Callable[[str, str], N], parse: Callable[[N], T]) -> T:
    """``parse(load(text, filename))``; a located error gets its source line."""
    try:
        return parse(load(text, filename))
    except MasonError as e:
        raise e.with_source(text) from None


class DocumentFrontend(BaseFrontend):
    """A frontend for one kind of document, selected by ``# syntax=NAME`` or by a ``# syntax=``
    image whose repository is one of :attr:`syntaxes`."""

    syntaxes: ClassVar[tuple[str, ...]] = ()

    def handles_syntax(self, value: str) -> bool:
        v = value.strip()
        if v == self.name:
            return True
        try:
            return parse_reference(v).repository in self.syntaxes
        except MasonError:
            return False

    @staticmethod
    def lowered(request: FrontendRequest, read: Callable[[str, str], T], lower: Callable[[T, Warnings], Graph],
                stages: Callable[[T], tuple[str, ...]] = lambda doc: ()) -> FrontendResult:
        """Read the request's document, lower it (errors get their source line) and report both
        times; ``stages`` names the document's stages for the result."""
        t0 = time.perf_counter()
        doc = read(request.text, request.filename)
        t1 = time.perf_counter()
        warns: Warnings = []
        try:
            graph = lower(doc, warns)
        except MasonError as e:
            raise e.with_source(request.text) from None
        t2 = time.perf_counter()
        return FrontendResult(graph, stages(doc), [Diagnostic(m, loc) for m, loc in warns],
                              {"parse": (t1 - t0) * 1000, "lower": (t2 - t1) * 1000})
