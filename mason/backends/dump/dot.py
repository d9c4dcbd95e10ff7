"""Graphviz DOT dump of a Definition, in the shape of ``buildctl debug dump-llb --dot``.

``digraph {``, then one node line per op in ``def`` order,
``  "<digest>" [label="…" shape="…"];``, then one edge line per op input, in op order then
input order, ``  "<input digest>" -> "<op digest>" [label="…"];`` where the label is the
destination of the exec mount reading that input (the last such mount if several; empty for the
root mount and for other ops). Strings are quoted as Go's ``%q`` does.

Labels and shapes: source → identifier, ellipse; exec → args joined by spaces, box; file →
``copy{src=…, dest=…}``, ``mkfile{path=…}``, ``mkdir{path=…}``, ``rm{path=…}`` joined by ``,``,
note; build → ``build``, box3d; merge → ``merge``, invtriangle; diff → ``diff``, doublecircle;
anything else (the terminal op, passthrough) → its digest, plaintext. Two additions BuildKit does
not have: a symlink action labels as ``symlink{oldpath=…, newpath=…}`` (BuildKit leaves it
empty), and mason's ConfigOp is a ``component`` labelled with its history text.
"""

from __future__ import annotations

from typing import Any, Iterable

from mason.backends.dump.model import DumpedOp
from mason.ir.golang import go_quote

SHAPES = {
    "source": "ellipse",
    "exec": "box",
    "file": "note",
    "build": "box3d",
    "merge": "invtriangle",
    "diff": "doublecircle",
    "config": "component",
}

def op_kind(op: Any) -> str:
    """``source``, ``exec``, ``file``, … (the op oneof's field), or ``terminal`` for a bare op."""
    return op.WhichOneof("op") or "terminal"


def file_action_paths(action: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A ``pb.FileAction``'s kind and its paths as (field, path): a copy's ``src`` and ``dest``,
    the ``path`` of mkfile/mkdir/rm, a symlink's ``oldpath`` and ``newpath``; none for another."""
    which = action.WhichOneof("action") or ""
    if which == "copy":
        return which, (("src", action.copy.src), ("dest", action.copy.dest))
    if which in ("mkfile", "mkdir", "rm"):
        return which, (("path", getattr(action, which).path),)
    if which == "symlink":
        return which, (("oldpath", action.symlink.oldpath), ("newpath", action.symlink.newpath))
    return which, ()


def file_action_label(action: Any) -> str:
    which, paths = file_action_paths(action)
    return f"{which}{{{', '.join(f'{k}={v}' for k, v in paths)}}}" if paths else ""


def config_label(config: Any) -> str:
    """A ConfigOp's label: its history text (``EXPOSE map[80/tcp:{}]``), else its changes."""
    if config.created_by:
        return config.created_by
    return ", ".join(f"{c.action} {c.key}={c.value}" for c in config.changes) or "config"


def node_attrs(digest: str, op: Any) -> tuple[str, str]:
    """(label, shape) of an op, as ``dump-llb --dot`` draws it."""
    kind = op_kind(op)
    if kind == "source":
        return op.source.identifier, SHAPES[kind]
    if kind == "exec":
        return " ".join(op.exec.meta.args), SHAPES[kind]
    if kind == "file":
        return ",".join(file_action_label(a) for a in op.file.actions), SHAPES[kind]
    if kind in ("build", "merge", "diff"):
        return kind, SHAPES[kind]
    if kind == "config":
        return config_label(op.config), SHAPES[kind]
    return digest, "plaintext"


def edge_labels(op: Any) -> list[str]:
    """One label per input of ``op``: the exec mount destination reading it, else empty."""
    labels = [""] * len(op.inputs)
    if op.WhichOneof("op") == "exec":
        for m in op.exec.mounts:
            if 0 <= m.input < len(labels) and m.dest != "/":
                labels[m.input] = m.dest
    return labels


def dump_dot(records: Iterable[DumpedOp]) -> str:
    """The ``dump-llb --dot`` text of ``records``."""
    records = list(records)
    lines = ["digraph {"]
    for r in records:
        label, shape = node_attrs(r.digest, r.op)
        lines.append(f"  {go_quote(r.digest)} [label={go_quote(label)} shape={go_quote(shape)}];")
    for r in records:
        dst = go_quote(r.digest)
        for inp, label in zip(r.op.inputs, edge_labels(r.op), strict=False):
            lines.append(f"  {go_quote(inp.digest)} -> {dst} [label={go_quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
