"""Print a parsed Dockerfile in the s-expression form of BuildKit's parser tests
(``mason parse --dump``): one line per instruction, ``(name ["--flag"] "arg" …)``, every
string quoted exactly like Go's ``strconv.Quote``.

Text that came from bytes which were not valid UTF-8 carries those bytes as lone surrogates
(``surrogateescape``); they print as ``\\xNN`` like Go prints invalid bytes.
"""

from __future__ import annotations

from mason.frontends.dockerfile.nodes import Node, ParseResult
from mason.ir.golang import go_quote


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
