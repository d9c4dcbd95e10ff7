"""Error collection and location for the Dockerfile instructions layer: every mistake becomes a
:class:`MasonError` located at the offending flag or argument when its text can be found in the
instruction's source lines (1-based columns), else at the instruction."""

from __future__ import annotations

import re

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

    def check_utf8(self, node: Node) -> bool:
        """Report text that is not UTF-8 (kept by the syntax layer as surrogate escapes, as
        BuildKit's parser keeps bytes): LLB carries it in proto3 strings, which must be UTF-8,
        so BuildKit refuses it when it marshals the build. The bodies of heredocs that become
        files (COPY/ADD, a lone ``#!`` RUN script) are bytes and may hold anything. Returns
        whether the instruction is clean."""
        if _BAD_UTF8.search(node.original) is not None:
            self._utf8_error(node, f"invalid UTF-8 in {node.name.upper()} instruction", False)
            return False
        if (node.heredocs and node.name.lower() == "run"
                and any(_BAD_UTF8.search(h.content) for h in node.heredocs)
                and not _run_script_file(node)):
            self._utf8_error(node, "invalid UTF-8 in a RUN heredoc (only a script that starts "
                             "with #! is written to a file, where any bytes may go)", True)
            return False
        return True

    def _utf8_error(self, node: Node, message: str, in_body: bool) -> None:
        loc = node.loc
        if loc is None:
            self.errors.append(MasonError(message, SourceLoc(self.file, 1, 1)))
            return
        where = SourceLoc(loc.file, loc.line, loc.col)
        lines = self.lines
        if lines is not None:
            last = min(loc.end_line or loc.line, len(lines))
            body = sum(h.content.count("\n") + 1 for h in node.heredocs)
            first_body = last - body + 1 if node.heredocs else last + 1
            start, stop = (first_body, last) if in_body else (loc.line, min(last, first_body - 1))
            for ln in range(max(start, loc.line), stop + 1):
                text = lines[ln - 1]
                if not in_body and ln != loc.line and text.lstrip().startswith("#"):
                    continue  # a comment line inside the instruction: not part of it
                m = _BAD_UTF8.search(text)
                if m is not None:
                    where = SourceLoc(loc.file, ln, m.start() + 1)
                    break
        elif not in_body and (loc.end_line or loc.line) == loc.line:
            m = _BAD_UTF8.search(node.original)
            lead = len(node.original) - len(node.original.lstrip())
            if m is not None:
                where = SourceLoc(loc.file, loc.line, loc.col + m.start() - lead)
        err = MasonError(message, where)
        if lines is not None and 1 <= where.line <= len(lines):
            err.source_line = lines[where.line - 1]
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


_BAD_UTF8 = re.compile("[\ud800-\udfff]")  # bytes that were not UTF-8 (surrogateescape)


def _run_script_file(node: Node) -> bool:
    """Whether RUN's heredoc is a ``#!`` script that the lowering writes to a file (a lone
    heredoc, as ``lower_run`` decides), where its bytes are data, not LLB strings."""
    from mason.frontends.dockerfile.syntax_heredoc import HeredocError, parse_heredoc_word

    if node.json or len(node.args) != 1 or not node.heredocs:
        return False
    try:
        lone = parse_heredoc_word(node.args[0])
    except HeredocError:
        return False
    first = node.heredocs[0]
    data = re.sub(r"(?m)^\t+", "", first.content) if first.chomp else first.content
    return lone is not None and data.startswith("#!") and not any(
        _BAD_UTF8.search(h.content) for h in node.heredocs[1:])


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
