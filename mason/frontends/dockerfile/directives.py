"""Parser directives at the top of a Dockerfile (``# syntax=``, ``# escape=``, ``# check=``),
found without the parser: choosing a frontend (``mason.frontends.registry.syntax_of``) reads
them before anything is parsed, so this module imports neither lark nor the syntax layer."""

from __future__ import annotations

import re

from mason.frontends.dockerfile.nodes import Directive
from mason.ir.errors import SourceLoc

__all__ = ["DIRECTIVE", "VALID_DIRECTIVES", "detect_directive"]

DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
VALID_DIRECTIVES = ("syntax", "escape", "check")
_SLASH_DIRECTIVE = re.compile(r"//[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")


def detect_directive(text: str, key: str, any_format: bool = False) -> Directive | None:
    """BuildKit's ``ParseDirective``/``DetectSyntax``: find directive ``key`` at the top of the
    file, skipping a BOM and a ``#!`` line; with ``any_format`` (used for ``syntax``) also the
    ``// key=value`` comment form and a JSON object ``{"key": "value"}``. Never raises."""
    if text.startswith("\ufeff"):
        text = text[1:]
    first, nl, rest = text.partition("\n")
    shebang = 0
    if first.startswith("#!"):
        text = rest if nl else ""
        shebang = 1
    pats = [DIRECTIVE, _SLASH_DIRECTIVE] if any_format else [DIRECTIVE]
    for pat in pats:
        seen: set[str] = set()
        for idx, line in enumerate(text.splitlines()):
            m = pat.match(line)
            if m is None:
                break
            k = m.group(1).lower()
            if k not in VALID_DIRECTIVES:
                break
            if k in seen:
                break
            seen.add(k)
            if k == key:
                return Directive(k, m.group(2), SourceLoc("", idx + 1 + shebang, 1, idx + 1 + shebang))
    if any_format:
        import json

        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if isinstance(obj, dict) and isinstance(obj.get(key), str):
            return Directive(key, obj[key], SourceLoc("", 1 + shebang, 1, 1 + shebang))
    return None
