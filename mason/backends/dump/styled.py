"""The styled DOT text of a :class:`~mason.backends.dump.graph.BuildGraph` — what
``mason llb dump --format dot`` prints and what graphviz lays out for ``svg``/``html``.

* a vertex is named by its short digest (``sha256:`` + 12 hex, longer where two would clash),
  which graphviz writes as the SVG ``<title>``: the browser shows it on hover; its SVG id is
  ``op-<hex digest>`` and its class ``node <kind>`` (+ ``critical``, and its build status);
* it is filled with its kind's colour (:data:`FILL`) and labelled with its kind (and, for a
  build, its status and duration) over what it does;
* each stage is a cluster (``cluster_<n>``, class ``stage``) labelled with the stage's name;
* an edge is labelled with what its input feeds (a mount point, a file action);
* with a build's results: cached vertices have a dashed outline, failed ones a red one, and the
  critical path's vertices and edges are drawn thick in :data:`CRITICAL`.
"""

from __future__ import annotations

import re

from mason.backends.dump.graph import BuildGraph, Vertex

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
SHAPES = {"source": "ellipse", "exec": "box", "file": "note", "build": "box3d", "merge": "invtriangle",
          "diff": "doublecircle", "config": "component", "terminal": "box"}
CRITICAL = "#d62728"  # red
FAILED = "#b30000"
CLUSTER_FILL = "#f7f7f7"
MAX_LABEL = 72

__all__ = ["FILL", "SHAPES", "CRITICAL", "MAX_LABEL", "styled_dot", "node_id", "format_seconds"]


# control characters (no XML document may hold them) as their Unicode pictures; a lone surrogate
# (only a hand-made graph.json has one) as U+FFFD
_UNPRINTABLE = {c: 0x2400 + c for c in range(0x20) if c != 0x0A}
_UNPRINTABLE[0x7F] = 0x2421
_UNPRINTABLE.update({c: 0xFFFD for c in range(0xD800, 0xE000)})


def clean_text(s: str) -> str:
    """``s`` with nothing an SVG or HTML document cannot hold."""
    return s.translate(_UNPRINTABLE)


def q(s: str) -> str:
    """A DOT double-quoted string (``\\`` and ``"`` escaped, a newline a centred line break,
    control characters shown as their pictures)."""
    return '"' + clean_text(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def node_id(digest: str) -> str:
    """The SVG id of a vertex: ``op-`` and the digest's hex."""
    return "op-" + digest.partition(":")[2] if ":" in digest else "op-" + digest


def format_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s"


_DIGEST_RE = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")


def _truncate(text: str, limit: int = MAX_LABEL) -> str:
    """One line of at most ``limit`` characters, digests in it shortened."""
    text = _DIGEST_RE.sub(r"\1", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_line(v: Vertex) -> str:
    if v.status is None:
        return ""
    if v.status in ("ran", "error", "cancelled", "running") and v.duration is not None:
        return f"{v.status} {format_seconds(v.duration)}"
    return v.status


def _node(v: Vertex, short: str) -> str:
    head = "result" if v.kind == "terminal" else v.kind
    status = _status_line(v)
    if status:
        head += f" · {status}"
    label = head if not v.label else f"{head}\n{_truncate(v.label)}"
    classes = [v.kind] + ([v.status.replace(" ", "-")] if v.status else []) + (["critical"] if v.critical else [])
    attrs = [f"label={q(label)}", f"shape={q(SHAPES.get(v.kind, 'box'))}",
             f"fillcolor={q(FILL.get(v.kind, '#ffffff'))}", f"id={q(node_id(v.id))}",
             f"class={q(' '.join(classes))}"]
    style = ["filled"]
    if v.status in ("cached", "not run"):
        style.append("dashed")
    if v.critical:
        attrs += [f"color={q(CRITICAL)}", 'penwidth="3"']
    elif v.status in ("error", "cancelled"):
        attrs += [f"color={q(FAILED)}", 'penwidth="2"']
    attrs.append(f"style={q(','.join(style))}")
    return f"{q(short)} [{' '.join(attrs)}];"


def styled_dot(g: BuildGraph) -> str:
    """The DOT text of ``g``."""
    short = g.short_ids()
    lines = ["digraph llb {"]
    title = g.title
    if g.critical_seconds:
        title = (title + "\n" if title else "") + f"critical path {format_seconds(g.critical_seconds)}"
    lines += [
        '  graph [rankdir="TB" fontname="Helvetica" fontsize="11" labelloc="t"'
        + (f" label={q(title)}" if title else "") + "];",
        '  node [style="filled" fontname="Helvetica" fontsize="10"];',
        '  edge [fontname="Helvetica" fontsize="9" color="#555555"];',
    ]
    for i, stage in enumerate(g.stages()):
        lines.append(f"  subgraph {q(f'cluster_{i}')} {{")
        lines.append(f'    label={q(stage)} class="stage" id={q(f"stage-{i}")} style="rounded,filled"'
                     f' fillcolor={q(CLUSTER_FILL)} color="#999999";')
        lines += [f"    {_node(v, short[v.id])}" for v in g.vertices if v.stage == stage]
        lines.append("  }")
    lines += [f"  {_node(v, short[v.id])}" for v in g.vertices if v.stage is None]
    for e in g.edges:
        attrs = [f"label={q(e.label)}"] if e.label else []
        if e.critical:
            attrs += [f"color={q(CRITICAL)}", 'penwidth="3"', 'class="critical"']
        tail = f" [{' '.join(attrs)}]" if attrs else ""
        lines.append(f"  {q(short[e.src])} -> {q(short[e.dst])}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"
