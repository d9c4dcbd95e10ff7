"""Go-compatible behaviour the LLB and BuildKit's messages depend on — one implementation for
every layer (frontends, passes and backends import it from here):

* JSON as Go's ``encoding/json`` writes it (BuildKit marshals source attributes such as
  ``local.followpaths`` with it; ``buildctl debug dump-llb`` prints with it);
* strings as Go's ``strconv.Quote`` / ``%q`` writes them (history texts, parser dumps, errors,
  DOT labels);
* Go's ``path.Clean`` and ``filepath.Match`` (wildcards in COPY sources and FileOp paths).

BuildKit v0.32.2 is built with Go 1.27: its JSON has the ``\b`` and ``\f`` short escapes
(Go 1.22 added them; before, ``\u0008`` and ``\u000c``)."""

from __future__ import annotations

import functools
import json
import posixpath
import re
from typing import Any

__all__ = ["go_json", "go_quote", "go_quote_rune", "has_wildcard", "match_regex", "path_clean"]

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


# Python's encoder (in C) writes the same compact text as Go 1.22+ (``\b``, ``\f``, ``\n``,
# ``\r``, ``\t`` short, other controls ``\u00XX``) but for these, patched afterwards (they only
# ever occur inside JSON strings). A lone surrogate is a byte that was not UTF-8
# (surrogateescape) or no rune at all: Go writes U+FFFD's escape for each.
_GO_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                          "\u2029": "\\u2029", **{chr(c): "\\ufffd" for c in range(0xD800, 0xE000)}})


def go_json(value: Any) -> str:
    """Compact JSON text as Go's ``json.Marshal`` writes it (key order as given): ``<``, ``>``,
    ``&`` and U+2028/2029 escaped, invalid UTF-8 as ``\\ufffd``, other characters as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_JSON)


def path_clean(p: str) -> str:
    """Go's ``path.Clean``: one slash between elements, ``.`` dropped, ``..`` eating the element
    before it (dropped right after the root), no trailing slash; ``""`` is ``"."``."""
    if not p:
        return "."
    out = posixpath.normpath(p)  # the same rules, but POSIX keeps a leading "//"; Go does not
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def has_wildcard(pattern: str) -> bool:
    """Whether ``pattern`` has a ``*``, ``?`` or ``[`` that no backslash escapes (BuildKit's
    ``containsWildcards``: such a path is matched, not looked up)."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[":
            return True
        i += 1
    return False


class _BadPattern(Exception):
    pass


def _class_char(pat: str, i: int) -> tuple[str, int]:
    """Go's ``getEsc``: one character of a class (``\\x`` is ``x``), never ``-`` or ``]``
    unescaped, and never the pattern's end (the class must still close)."""
    if i >= len(pat) or pat[i] in "-]":
        raise _BadPattern
    if pat[i] == "\\":
        i += 1
        if i >= len(pat):
            raise _BadPattern
    if i + 1 >= len(pat):
        raise _BadPattern
    return pat[i], i + 1


def _class(pat: str, i: int) -> tuple[str, int]:
    """The regex of the class whose ``[`` is at ``i - 1``, and where the pattern goes on."""
    negated = i < len(pat) and pat[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    nrange = 0
    while True:
        if i < len(pat) and pat[i] == "]" and nrange > 0:
            i += 1
            break
        lo, i = _class_char(pat, i)
        hi = lo
        if pat[i] == "-":
            hi, i = _class_char(pat, i + 1)
        if lo <= hi:  # Go accepts an inverted range, which matches nothing
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        nrange += 1
    if not ranges:
        return ("(?s:.)" if negated else "(?!)"), i
    return "[" + ("^" if negated else "") + "".join(ranges) + "]", i


@functools.lru_cache(maxsize=512)
def match_regex(pattern: str) -> re.Pattern[str] | None:
    """Go's ``filepath.Match(pattern, name)`` as a regex for ``fullmatch`` (``*`` and ``?`` never
    match ``/``; classes ``[a-z]``, ``[^…]``; ``\\`` escapes), or None where Go's answer is
    ``ErrBadPattern`` (an unclosed or empty class, ``-`` or ``]`` unescaped in a class, a
    trailing backslash): such a pattern matches nothing."""
    out: list[str] = []
    i, n = 0, len(pattern)
    try:
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[":
                rx, i = _class(pattern, i)
                out.append(rx)
            elif c == "\\":
                if i >= n:
                    return None
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(re.escape(c))
    except _BadPattern:
        return None
    return re.compile("".join(out), re.S)
