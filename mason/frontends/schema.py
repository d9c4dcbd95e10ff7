"""Positioned documents and the schema checks the YAML/TOML frontends share.

A reader (:mod:`.yamldoc`, :mod:`.tomldoc`) turns a file into a tree of :class:`Node` — a
mapping (``dict[str, Node]``), a list, or a scalar — where every node and every mapping key
knows its :class:`~mason.ir.errors.SourceLoc`. The frontends then read their typed trees out
of it with the helpers here, so every mistake is an error at its line (``FILE:LINE:COL: error:``)
and an unknown key names the nearest valid one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable

from mason.ir.errors import MasonError, SourceLoc

__all__ = ["Node", "Mapping", "suggest", "type_name"]


@dataclass
class Node:
    """A value with its location. ``value`` is a ``dict[str, Node]``, a ``list[Node]`` or a
    scalar (str, int, float, bool, None, or a date/time from TOML); ``raw`` is a scalar's text
    as written (YAML) when there is one; ``key_locs`` says where each mapping key is."""

    value: Any
    loc: SourceLoc
    raw: str | None = None
    key_locs: dict[str, SourceLoc] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return type_name(self.value)

    def error(self, message: str) -> MasonError:
        return MasonError(message, self.loc)

    def mapping(self, what: str, keys: Iterable[str], required: Iterable[str] = ()) -> "Mapping":
        """This node as a mapping of ``what`` with only ``keys`` (``required`` among them)."""
        if not isinstance(self.value, dict):
            raise self.error(f"{what} must be a mapping, not {self.kind}")
        m = Mapping(self, what)
        m.check(keys, required)
        return m

    def seq(self, what: str) -> "list[Node]":
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.error(f"{what} must be a list, not {self.kind}")
        return self.value

    def string(self, what: str, *, empty: bool = False) -> str:
        """A string (a YAML number or version written bare is taken as written)."""
        v = self.value
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            raise self.error(f"{what} must be a string, not {self.kind}")
        if isinstance(v, str):
            s = v
        elif self.raw is not None and isinstance(v, (int, float)):
            s = self.raw
        else:
            raise self.error(f"{what} must be a string, not {self.kind}")
        if not empty and not s.strip():
            raise self.error(f"{what} must not be empty")
        if "\x00" in s:
            raise self.error(f"{what} must not contain a NUL character")
        return s

    def boolean(self, what: str) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"{what} must be true or false, not {self.kind}")
        return self.value

    def strings(self, what: str) -> list[tuple[str, "Node"]]:
        """A list of strings (each with its node); a single string counts as a list of one."""
        if isinstance(self.value, str):
            return [(self.string(what), self)]
        return [(n.string(f"each entry of {what}"), n) for n in self.seq(what)]


class Mapping:
    """A mapping node being read: ``get`` a key's node, ``loc`` of a key."""

    def __init__(self, node: Node, what: str):
        self.node = node
        self.what = what
        self.items: dict[str, Node] = node.value

    def check(self, keys: Iterable[str], required: Iterable[str] = ()) -> None:
        valid = list(keys)
        for k in self.items:
            if k not in valid:
                raise MasonError(f"unknown key {k!r} in {self.what}{suggest(k, valid)}", self.key_loc(k))
        for k in required:
            if k not in self.items:
                raise MasonError(f"{self.what} needs {k!r}", self.node.loc)

    def key_loc(self, key: str) -> SourceLoc:
        if key not in self.items:
            return self.node.loc
        return self.node.key_locs.get(key) or self.items[key].loc

    def get(self, key: str) -> Node | None:
        n = self.items.get(key)
        return None if n is None or n.value is None else n

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def string(self, key: str, default: str | None = None, *, empty: bool = False) -> str | None:
        n = self.get(key)
        return default if n is None else n.string(f"{key!r} in {self.what}", empty=empty)

    def strings(self, key: str) -> list[tuple[str, Node]]:
        n = self.get(key)
        return [] if n is None else n.strings(f"{key!r} in {self.what}")

    def seq(self, key: str) -> "list[Node]":
        n = self.get(key)
        return [] if n is None else n.seq(f"{key!r} in {self.what}")

    def boolean(self, key: str, default: bool = False) -> bool:
        n = self.get(key)
        return default if n is None else n.boolean(f"{key!r} in {self.what}")


def suggest(word: str, valid: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the nearest of ``valid``, or ``" (valid: a, b)"``."""
    options = sorted(set(valid))
    near = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not near:
        low = {o.lower(): o for o in options}
        near = [low[word.lower()]] if word.lower() in low else []
    if near:
        return f" (did you mean {near[0]!r}?)"
    return f" (valid keys: {', '.join(options)})" if options else ""


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (int, float)):
        return "a number"
    return type(v).__name__
