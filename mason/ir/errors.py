"""Source locations and mason's error type.

Every user-facing error is a :class:`MasonError`. One with a location prints as

    Dockerfile:12:6: error: COPY needs a source and a destination
        COPY app
             ^

and one without as ``error: message``. :class:`MasonErrors` carries several at once so a
frontend can report every mistake it finds before stopping.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A position in a source file: 1-based line and column, optional end (inclusive line,
    exclusive column). Carried by IR values with ``compare=False``: never part of a digest."""

    file: str
    line: int
    col: int = 1
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class MasonError(Exception):
    """A user-facing error: a message, optionally a location and the text of the source line."""

    def __init__(self, message: str, loc: SourceLoc | None = None, source_line: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.source_line = source_line

    def with_source(self, text: str) -> "MasonError":
        """Fill in ``source_line`` from the whole source text, if there is a location."""
        if self.loc is not None and self.source_line is None:
            lines = text.splitlines()
            if 1 <= self.loc.line <= len(lines):
                self.source_line = lines[self.loc.line - 1]
        return self

    def format(self) -> str:
        if self.loc is None:
            return f"error: {self.message}"
        out = f"{self.loc}: error: {self.message}"
        if self.source_line is not None:
            line = self.source_line.rstrip("\r\n").replace("\t", " ")
            caret = " " * (max(self.loc.col, 1) - 1) + "^"
            out += f"\n    {line}\n    {caret}"
        return out

    def __str__(self) -> str:
        return self.format()


class MasonErrors(MasonError):
    """Several errors found in one go (e.g. every mistake in a Dockerfile)."""

    def __init__(self, errors: list[MasonError]):
        if not errors:
            raise ValueError("MasonErrors needs at least one error")
        first = errors[0]
        super().__init__(first.message, first.loc, first.source_line)
        self.errors = list(errors)

    def with_source(self, text: str) -> "MasonErrors":
        for e in self.errors:
            e.with_source(text)
        return self

    def format(self) -> str:
        return "\n".join(e.format() for e in self.errors)
