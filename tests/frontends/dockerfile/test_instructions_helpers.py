"""Helpers for the instructions-layer tests: build syntax-layer nodes by hand (one per line),
as the syntax layer would, and run them through the instructions layer."""

from __future__ import annotations

from dataclasses import dataclass

from mason.frontends.dockerfile.instructions import parse_instructions
from mason.frontends.dockerfile.nodes import Heredoc, Node, ParseResult
from mason.ir.errors import MasonErrors, SourceLoc

FILE = "Dockerfile"


@dataclass
class N:
    """One instruction line: its source text and the node fields the syntax layer would give.
    ``name`` defaults to the first word of the text, lower-cased."""

    text: str
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    onbuild: "N | None" = None
    name: str | None = None

    def node(self, line: int) -> Node:
        name = self.name or self.text.split()[0].lower()
        inner = None
        if self.onbuild is not None:
            ob = self.onbuild
            col = self.text.lower().find(ob.text.split()[0].lower(), len("onbuild")) + 1
            inner = Node(ob.name or ob.text.split()[0].lower(), tuple(ob.args), tuple(ob.flags),
                         tuple(ob.heredocs), ob.json, None, ob.text,
                         SourceLoc(FILE, line, col, line))
        return Node(name, tuple(self.args), tuple(self.flags), tuple(self.heredocs), self.json,
                    inner, self.text, SourceLoc(FILE, line, 1, line))


def nodes_of(*items: N | str) -> tuple[tuple[Node, ...], str]:
    """Nodes (``FROM x`` strings allowed as shorthand for a one-argument FROM) and the text."""
    out, lines = [], []
    for i, item in enumerate(items, start=1):
        if isinstance(item, str):
            item = N(item, tuple(item.split()[1:]))
        out.append(item.node(i))
        lines.append(item.text)
    return tuple(out), "\n".join(lines) + "\n"


def parse(*items: N | str, with_text: bool = True):
    nodes, text = nodes_of(*items)
    result = ParseResult(nodes, loc=SourceLoc(FILE, 1, 1, len(nodes)))
    return parse_instructions(result, text if with_text else None)


def errors(*items: N | str, with_text: bool = True) -> list[tuple[int, int, str]]:
    """(line, column, message) of every error parse() raises; fails if it raises none."""
    try:
        parse(*items, with_text=with_text)
    except MasonErrors as e:
        for err in e.errors:
            assert err.loc is not None and err.loc.file == FILE
        return [(err.loc.line, err.loc.col, err.message) for err in e.errors]
    raise AssertionError("no error raised")


def first_stage(*items: N | str):
    df = parse("FROM base", *items)
    return df.stages[0].instructions
