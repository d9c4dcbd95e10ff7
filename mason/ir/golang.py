"""Go-compatible text the LLB and BuildKit's messages carry: JSON as Go's ``encoding/json``
writes it (BuildKit marshals source attributes such as ``local.followpaths`` with it), and
strings as Go's ``strconv.Quote`` / ``%q`` writes them (history texts, parser dumps, errors,
DOT labels) — one implementation for every layer."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["go_json", "go_quote", "go_quote_rune"]

_SIMPLE = re.compile(r'[ !#-\[\]-~]*\Z')  # printable ASCII without '"' and '\\': quoted as is
_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _quote_char(c: str, quote: str) -> str:
    if c == quote or c == "\\":
        return "\\" + c
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): Go's \xNN
        return f"\\x{o - 0xDC00:02x}"
    if 0xD800 <= o <= 0xDFFF:  # no such rune in Go: what it prints for U+FFFD's escape
        return "\\ufffd"
    if c.isprintable():  # Go's IsPrint: letters, marks, numbers, punctuation, symbols, U+0020
        return c
    esc = _SHORT.get(c)
    if esc is not None:
        return esc
    if o < 0x80:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints for a string)."""
    if _SIMPLE.match(s):
        return '"' + s + '"'
    return '"' + "".join([_quote_char(c, '"') for c in s]) + '"'


def go_quote_rune(n: int) -> str:
    """Go's ``%q`` of an integer: a quoted character literal (``'\\x00'``, ``'\\x03'``)."""
    if n < 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        return "'\\ufffd'"
    return "'" + _quote_char(chr(n), "'") + "'"


def go_json(value: Any) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it (``<``, ``>``, ``&`` and U+2028/2029
    escaped, other characters as they are)."""
    s = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
