"""A TOML reader that keeps positions: the values come from :mod:`tomllib` (the standard
library's TOML 1.0 parser), the positions from a scan of the lines that maps every table header
and ``key =`` back to where it is written (keys inside inline tables take the position of the
key that holds the table). The result is a :class:`~mason.frontends.schema.Node` tree.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from mason.frontends.schema import Node
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["load_toml", "key_positions"]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^(\s*)({_DOTTED})\s*=")
_PART = re.compile(rf"\s*({_KEY})\s*\.?")
_TOMLERR = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.S)
_TOMLEND = re.compile(r"^(.*) \(at end of document\)$", re.S)


def _parts(dotted: str) -> list[str]:
    out = []
    for m in _PART.finditer(dotted):
        k = m.group(1)
        if k.startswith('"'):
            try:
                k = tomllib.loads(f"k = {k}")["k"]
            except tomllib.TOMLDecodeError:
                k = k[1:-1]
        elif k.startswith("'"):
            k = k[1:-1]
        out.append(k)
    return out


def key_positions(text: str, filename: str) -> dict[tuple, SourceLoc]:
    """Where each table (path with array-of-tables indexes) and key is written."""
    pos: dict[tuple, SourceLoc] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    in_string: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if _closes(line, in_string):
                in_string = None
            continue
        h = _HEADER.match(line)
        if h is not None:
            is_array = h.group(1) == "[["
            names = _parts(h.group(2))
            out: list = []
            for i, part in enumerate(names):
                out.append(part)
                t = tuple(out)
                if i == len(names) - 1 and is_array:
                    counts[t] = counts.get(t, 0) + 1
                    out.append(counts[t] - 1)
                elif t in counts:
                    out.append(counts[t] - 1)
            current = tuple(out)
            pos.setdefault(current, SourceLoc(filename, lineno, line.index("[") + 1))
            continue
        a = _ASSIGN.match(line)
        if a is None:
            continue
        path = current + tuple(_parts(a.group(2)))
        pos.setdefault(path, SourceLoc(filename, lineno, len(a.group(1)) + 1))
        rest = line[a.end():]
        for delim in ('"""', "'''"):
            if rest.count(delim) % 2 == 1:
                in_string = delim
                break
    return pos


def _closes(line: str, delim: str) -> bool:
    return line.count(delim) % 2 == 1


def load_toml(text: str, filename: str) -> Node:
    """``text`` as a positioned tree; a syntax error is located where tomllib found it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOMLERR.match(msg)
        if m is not None:
            raise MasonError(f"invalid TOML: {m.group(1)}", SourceLoc(filename, int(m.group(2)),
                                                                     int(m.group(3)))) from None
        m = _TOMLEND.match(msg)
        lines = text.splitlines() or [""]
        end = SourceLoc(filename, len(lines), len(lines[-1]) + 1)
        raise MasonError(f"invalid TOML: {m.group(1) if m else msg}", end) from None
    except RecursionError:
        raise MasonError("invalid TOML: nested too deeply", SourceLoc(filename, 1, 1)) from None
    pos = key_positions(text, filename)
    return _tree(data, (), SourceLoc(filename, 1, 1), pos)


def _tree(value: Any, path: tuple, loc: SourceLoc, pos: dict[tuple, SourceLoc]) -> Node:
    """Iterative: a document nested a thousand deep does not overflow the stack."""
    top = Node(None, loc)
    stack: list[tuple[Any, tuple, Node]] = [(value, path, top)]
    while stack:
        v, p, node = stack.pop()
        if isinstance(v, dict):
            node.value = {}
            for k, sub in v.items():
                kp = p + (k,)
                kloc = pos.get(kp, node.loc)
                child = Node(None, kloc)
                node.value[k] = child
                node.key_locs[k] = kloc
                stack.append((sub, kp, child))
        elif isinstance(v, list):
            node.value = []
            for i, sub in enumerate(v):
                ip = p + (i,)
                child = Node(None, pos.get(ip, node.loc))
                node.value.append(child)
                stack.append((sub, ip, child))
        else:
            node.value = v
    return top
