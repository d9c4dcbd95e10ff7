"""A YAML reader that keeps positions: PyYAML's safe composer gives every node its marks, and
:func:`load_yaml` turns them into :class:`~mason.frontends.schema.Node` trees.

Only one document is read; duplicate keys, non-string keys, recursive aliases and alias bombs
are errors at their line, as is any syntax error PyYAML reports.
"""

from __future__ import annotations

from typing import Any

from mason.frontends.schema import Node
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["load_yaml"]

MAX_NODES = 100_000  # aliases can make a small file expand enormously ("billion laughs")


def _loc(filename: str, mark: Any) -> SourceLoc:
    if mark is None:
        return SourceLoc(filename, 1, 1)
    return SourceLoc(filename, mark.line + 1, mark.column + 1)


def load_yaml(text: str, filename: str) -> Node:
    """The one YAML document in ``text`` as a positioned tree (an empty file is null)."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = (e.problem or e.context or "invalid YAML").strip()
        raise MasonError(f"invalid YAML: {msg}", _clamp(_loc(filename, mark), text)) from None
    except yaml.YAMLError as e:  # ReaderError (a character YAML does not allow), …
        pos = getattr(e, "position", None)
        loc = _offset_loc(filename, text, pos) if isinstance(pos, int) else SourceLoc(filename, 1, 1)
        reason = getattr(e, "reason", None) or "invalid YAML"
        raise MasonError(f"invalid YAML: {reason}", loc) from None
    except RecursionError:
        raise MasonError("invalid YAML: nested too deeply", SourceLoc(filename, 1, 1)) from None
    if root is None:
        return Node(None, SourceLoc(filename, 1, 1))
    return _convert(root, filename, yaml)


def _clamp(loc: SourceLoc, text: str) -> SourceLoc:
    """A location past the last line (the end of the stream) moves to the end of the last line."""
    lines = text.splitlines()
    if loc.line <= len(lines) or not lines:
        return loc
    return SourceLoc(loc.file, len(lines), len(lines[-1]) + 1)


def _offset_loc(filename: str, text: str, pos: int) -> SourceLoc:
    before = text[:pos]
    line = before.count("\n") + 1
    return SourceLoc(filename, line, pos - (before.rfind("\n") + 1) + 1)


def _convert(root: Any, filename: str, yaml: Any) -> Node:
    """Iterative conversion (deep nesting cannot overflow the stack)."""
    constructor = yaml.SafeLoader("")
    count = 0
    on_path: set[int] = set()

    def scalar(n: Any) -> Node:
        loc = _loc(filename, n.start_mark)
        try:
            v = constructor.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as e:
            raise MasonError(f"invalid YAML value {n.value!r}: {getattr(e, 'problem', None) or e}", loc) from None
        if isinstance(v, bytes):
            raise MasonError("binary values are not supported here", loc)
        return Node(v, loc, raw=n.value if n.style is None else None)

    # a stack of (yaml node, Node being filled, iterator over children)
    def open_(n: Any) -> tuple[Any, Node]:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise MasonError(f"YAML document too large (more than {MAX_NODES} values once aliases are expanded)",
                             _loc(filename, n.start_mark))
        if id(n) in on_path:
            raise MasonError("a recursive YAML alias (a value that contains itself)", _loc(filename, n.start_mark))
        loc = _loc(filename, n.start_mark)
        if isinstance(n, yaml.MappingNode):
            return n, Node({}, loc)
        if isinstance(n, yaml.SequenceNode):
            return n, Node([], loc)
        return n, scalar(n)

    def children(n: Any) -> list:
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)  # `<<: *base` merge keys
            return list(n.value)
        if isinstance(n, yaml.SequenceNode):
            return list(n.value)
        return []

    first, top = open_(root)
    stack: list[tuple[Any, Node, list, int]] = [(first, top, children(first), 0)]
    on_path.add(id(first))
    while stack:
        n, node, kids, i = stack[-1]
        if i >= len(kids):
            stack.pop()
            on_path.discard(id(n))
            continue
        stack[-1] = (n, node, kids, i + 1)
        item = kids[i]
        if isinstance(node.value, dict):
            knode, vnode = item
            kloc = _loc(filename, knode.start_mark)
            if not isinstance(knode, yaml.ScalarNode):
                raise MasonError("a mapping key must be a string", kloc)
            key = scalar(knode).value
            if not isinstance(key, str):
                key = knode.value
            if key in node.value:
                raise MasonError(f"duplicate key {key!r}", kloc)
            child_n, child = open_(vnode)
            node.value[key] = child
            node.key_locs[key] = kloc
        else:
            child_n, child = open_(item)
            node.value.append(child)
        if not isinstance(child_n, yaml.ScalarNode):
            stack.append((child_n, child, children(child_n), 0))
            on_path.add(id(child_n))
    return top
