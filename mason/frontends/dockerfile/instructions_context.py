"""Error collection and location for the Dockerfile instructions layer: every mistake becomes a
:class:`MasonError` located at the offending flag or argument when its text can be found in the
instruction's source lines (1-based columns), else at the instruction."""

from __future__ import annotations

from mason.frontends.dockerfile.instructions_values import Problems
from mason.frontends.dockerfile.nodes import Node
from mason.ir.errors import MasonError, SourceLoc


class Ctx:
    """Per-file state: the source text (split into lines only when an error needs locating)
    and the collected errors."""

    __slots__ = ("text", "_lines", "errors", "file")

    def __init__(self, text: str | None, file: str):
        self.text = text
        self._lines: list[str] | None = None
        self.errors: list[MasonError] = []
        self.file = file

    @property
    def lines(self) -> list[str] | None:
        if self._lines is None and self.text is not None:
            self._lines = self.text.split("\n")  # as the syntax layer numbers lines
        return self._lines

    def error(self, node: Node, message: str, *needles: str) -> None:
        err = MasonError(message, self.locate(node, needles))
        if self.lines is not None and err.loc is not None:
            line = err.loc.line
            if 1 <= line <= len(self.lines):
                err.source_line = self.lines[line - 1]
        self.errors.append(err)

    def problems(self, node: Node, probs: Problems) -> None:
        for msg, needles in probs:
            self.error(node, msg, *needles)

    def locate(self, node: Node, needles: tuple[str, ...]) -> SourceLoc:
        loc = node.loc
        if loc is None:
            return SourceLoc(self.file, 1, 1)
        base = SourceLoc(loc.file, loc.line, loc.col)
        needles = tuple(n for n in needles if n)
        if not needles:
            return base
        start_col = loc.col - 1 + len(node.name)
        if self.lines is not None:
            last = min(loc.end_line or loc.line, len(self.lines))
            segments = [(ln, self.lines[ln - 1]) for ln in range(loc.line, last + 1)]
        else:
            # Without the text, only a one-line instruction maps onto columns via `original`.
            if (loc.end_line or loc.line) != loc.line or not node.original:
                return base
            orig = node.original
            lead = len(orig) - len(orig.lstrip())
            segments = [(loc.line, " " * (loc.col - 1) + orig[lead:])]
        found = None
        line_i, col = 0, start_col
        prev = None
        for needle in needles:
            if needle == prev:  # the same text again: its next occurrence (a repeated flag)
                col += 1
            prev = needle
            hit = _search(segments, line_i, col, needle)
            if hit is None:
                break
            line_i, col = hit
            found = hit
        if found is None:
            return base
        return SourceLoc(loc.file, segments[found[0]][0], found[1] + 1)


def _search(segments: list[tuple[int, str]], line_i: int, col: int,
            needle: str) -> tuple[int, int] | None:
    for exact in (True, False):
        i, c = line_i, col
        want = needle if exact else needle.lower()
        while i < len(segments):
            text = segments[i][1] if exact else segments[i][1].lower()
            j = text.find(want, c)
            if j >= 0:
                return i, j
            i, c = i + 1, 0
    return None
