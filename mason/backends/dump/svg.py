"""SVG drawing of a Definition, laid out by graphviz's ``dot``.

The same nodes and edges as the DOT dump, made for reading: each op is filled with its kind's
colour (``FILL``), labelled with its kind, a shortened digest and its (truncated) DOT label, with
the full label and digest as the tooltip. Needs the ``dot`` binary (Debian package ``graphviz``).
"""

from __future__ import annotations

import re
from typing import Iterable

from mason.backends.dump.dot import edge_labels, file_action_label, node_attrs, op_kind
from mason.backends.dump.model import DumpedOp
from mason.ir.errors import MasonError

FILL = {
    "source": "#a6cee3",  # blue
    "exec": "#b2df8a",  # green
    "file": "#fdbf6f",  # orange
    "merge": "#cab2d6",  # lavender
    "diff": "#fb9a99",  # pink
    "config": "#ffff99",  # yellow
    "build": "#d9d9d9",  # grey
    "passthrough": "#f0f0f0",
    "terminal": "#ffffff",
}
MAX_LABEL = 72
MAX_ACTIONS = 4
_DIGEST_RE = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")


def short_digest(digest: str) -> str:
    return _DIGEST_RE.sub(r"\1", digest)


def _truncate(text: str, limit: int = MAX_LABEL) -> str:
    text = " ".join(text.split())  # one line: newlines and runs of blanks collapse
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dot_string(s: str) -> str:
    """A DOT double-quoted string; ``\\n`` inside ``s`` stays a graphviz line break."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_label(r: DumpedOp) -> tuple[str, str]:
    """(label, tooltip): kind and short digest over the truncated dump label (a FileOp shows
    one line per action, at most ``MAX_ACTIONS``); the tooltip has the digest, the progress name
    (``llb.customname``) and the whole label."""
    kind = op_kind(r.op)
    label, _ = node_attrs(r.digest, r.op)
    head = f"{kind} {short_digest(r.digest)}"
    name = r.metadata.description.get("llb.customname", "") if r.metadata is not None else ""
    tooltip = "\n".join(x for x in (r.digest, name, label if kind != "terminal" else "") if x)
    if kind == "terminal":
        return head, tooltip
    if kind == "file":
        parts = [file_action_label(a) for a in r.op.file.actions]
        body_lines = [_truncate(short_digest(p)) for p in parts[:MAX_ACTIONS]]
        if len(parts) > MAX_ACTIONS:
            body_lines.append(f"… {len(parts) - MAX_ACTIONS} more")
        body = "\n".join(body_lines)
    else:
        body = _truncate(short_digest(label))
    return f"{head}\n{body}", tooltip


def svg_source(records: Iterable[DumpedOp]) -> str:
    """The styled DOT text that ``render_svg`` lays out."""
    records = list(records)
    lines = [
        "digraph llb {",
        '  graph [rankdir="TB" fontname="Helvetica"];',
        '  node [style="filled" fontname="Helvetica" fontsize="10"];',
        '  edge [fontname="Helvetica" fontsize="9"];',
    ]
    for r in records:
        _, shape = node_attrs(r.digest, r.op)
        kind = op_kind(r.op)
        label, tooltip = _node_label(r)
        if kind == "terminal":
            shape = "box"  # "plaintext" would not show the fill
        lines.append(
            f"  {_dot_string(r.digest)} [label={_dot_string(label)} shape={_dot_string(shape)}"
            f" fillcolor={_dot_string(FILL.get(kind, '#ffffff'))} tooltip={_dot_string(tooltip)}];"
        )
    for r in records:
        for inp, label in zip(r.op.inputs, edge_labels(r.op), strict=False):
            attrs = f" [label={_dot_string(label)}]" if label else ""
            lines.append(f"  {_dot_string(inp.digest)} -> {_dot_string(r.digest)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(records: Iterable[DumpedOp]) -> str:
    """The graph as an SVG document (runs ``dot -Tsvg``)."""
    import graphviz  # imported here: only the svg format needs it

    source = svg_source(records)
    try:
        data = graphviz.Source(source).pipe(format="svg", engine="dot")
    except graphviz.ExecutableNotFound as e:
        raise MasonError(
            "the graphviz 'dot' program is needed for --format svg; install the 'graphviz' package"
            " (apt-get install graphviz)"
        ) from e
    except graphviz.CalledProcessError as e:  # pragma: no cover - dot rejected our own text
        raise MasonError(f"graphviz 'dot' failed: {(e.stderr or b'').decode(errors='replace').strip()}") from e
    return data.decode("utf-8")
