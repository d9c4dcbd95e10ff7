"""Print a parsed Dockerfile in the s-expression form of BuildKit's parser tests
(``mason parse --dump``): one line per instruction, ``(name ["--flag"] "arg" …)``, every
string quoted exactly like Go's ``strconv.Quote``.

Text that came from bytes which were not valid UTF-8 carries those bytes as lone surrogates
(``surrogateescape``); they print as ``\\xNN`` like Go prints invalid bytes.
"""

from __future__ import annotations

import re

from mason.frontends.dockerfile.nodes import Node, ParseResult

_SIMPLE = re.compile(r'[ !#-\[\]-~]*\Z')  # printable ASCII without '"' and '\\'
_SHORT_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    '"': '\\"', "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """``strconv.Quote``: a double-quoted Go string literal for ``s``."""
    if _SIMPLE.match(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        esc = _SHORT_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        cp = ord(ch)
        if 0xDC80 <= cp <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append("\\x%02x" % (cp - 0xDC00))
        elif ch.isprintable():  # Go's IsPrint: categories L, M, N, P, S and U+0020
            out.append(ch)
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif 0xD800 <= cp <= 0xDFFF:  # not a valid rune: Go prints U+FFFD's escape
            out.append("\\ufffd")
        elif cp < 0x10000:
            out.append("\\u%04x" % cp)
        else:
            out.append("\\U%08x" % cp)
    out.append('"')
    return "".join(out)


def dump_node(node: Node) -> str:
    """One instruction as BuildKit's ``Node.Dump`` prints it (without the outer parentheses)."""
    parts = [node.name]
    if node.flags:
        parts.append("[" + " ".join(go_quote(f) for f in node.flags) + "]")
    if node.onbuild is not None:
        parts.append("(" + dump_node(node.onbuild) + ")")
    else:
        parts.extend(go_quote(a) for a in node.args)
    # Go trims the whole string: a node named "" with no args would print as "".
    return " ".join(parts).strip(" \t\n\v\f\r\x85\xa0")


def dump(result: ParseResult) -> str:
    """The whole file: one ``(…)`` line per instruction, with a final newline."""
    return "".join("(" + dump_node(n) + ")\n" for n in result.nodes)
