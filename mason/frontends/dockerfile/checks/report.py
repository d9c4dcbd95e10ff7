"""One build-check warning, the collector the rules report into, and the text form
(``file:line:col``, the source line, a caret under the range, the rule's one-line explanation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mason.frontends.dockerfile.checks.config import CheckConfig
from mason.frontends.dockerfile.checks.rules import RULES
from mason.frontends.dockerfile.nodes import Node
from mason.ir.errors import SourceLoc

__all__ = ["CheckWarning", "Collector"]


@dataclass(frozen=True, slots=True)
class CheckWarning:
    """``rule`` (BuildKit's name), ``description`` (the rule's one-line explanation),
    ``message`` (this occurrence), ``loc`` (start line/col, end line/col exclusive; 1-based) and
    ``source_line`` (the text of ``loc.line``, when the source was given)."""

    rule: str
    description: str
    message: str
    loc: SourceLoc
    source_line: str | None = field(default=None, compare=False)

    def format(self) -> str:
        out = f"{self.loc}: warning: {self.rule}: {self.message}"
        if self.source_line is not None:
            line = self.source_line.rstrip("\r\n").replace("\t", " ")
            col = max(self.loc.col, 1)
            width = 1
            if self.loc.end_col is not None and (self.loc.end_line in (None, self.loc.line)):
                width = max(1, self.loc.end_col - col)
            width = max(1, min(width, len(line) - col + 1))
            out += f"\n    {line}\n    {' ' * (col - 1)}{'^' * width}"
        return out + f"\n    {self.description}"

    def __str__(self) -> str:
        return self.format()


class Collector:
    """What the rules report into: drops rules the config disables, locates a warning at a
    token of the instruction's source when it can find it, and keeps the source line."""

    def __init__(self, config: CheckConfig, lines: list[str] | None, file: str):
        self.config = config
        self.lines = lines
        self.file = file
        self.warnings: list[CheckWarning] = []
        self._seen: set[tuple[str, str, int, int]] = set()

    def on(self, rule: str) -> bool:
        return self.config.enabled(rule)

    def locate(self, node: Node | None, needle: str | None = None,
               loc: SourceLoc | None = None) -> SourceLoc:
        """The range of ``needle`` in ``node``'s source lines (past its keyword), else the
        instruction's first line."""
        base = loc or (node.loc if node is not None else None) or SourceLoc(self.file, 1, 1)
        lines = self.lines
        if needle and lines is not None and 1 <= base.line <= len(lines):
            last = min(base.end_line or base.line, len(lines))
            for ln in range(base.line, last + 1):
                text = lines[ln - 1]
                start = base.col - 1 if ln == base.line else 0
                if ln == base.line:  # skip the keyword itself
                    while start < len(text) and not text[start].isspace():
                        start += 1
                i = text.find(needle, start)
                if i >= 0:
                    return SourceLoc(base.file, ln, i + 1, ln, i + 1 + len(needle))
        end = None
        if lines is not None and 1 <= base.line <= len(lines):
            end = len(lines[base.line - 1].rstrip("\r")) + 1
        return SourceLoc(base.file, base.line, base.col, base.line, end)

    def warn(self, rule: str, message: str, node: Node | None = None, needle: str | None = None,
             loc: SourceLoc | None = None) -> None:
        if not self.on(rule):
            return
        where = self.locate(node, needle, loc)
        key = (rule, message, where.line, where.col)
        if key in self._seen:
            return
        self._seen.add(key)
        source = None
        if self.lines is not None and 1 <= where.line <= len(self.lines):
            source = self.lines[where.line - 1]
        self.warnings.append(CheckWarning(rule, RULES[rule].description, message, where, source))
