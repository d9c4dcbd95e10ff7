"""One self-contained HTML page of a graph: the SVG drawing (:mod:`.svg`) inline, and a side
panel that shows a vertex's fields — kind, digest, progress name, stage, a build's status and
duration, and the op as ``buildctl debug dump-llb`` prints it — when the vertex is clicked.
Inline CSS and JS, no network: the file opens anywhere.

The vertices' data is a JSON ``<script type="application/json">`` block keyed by the SVG ids
(``op-<hex>``), with ``<`` escaped so no field can close the element; the panel is filled with
``textContent`` only, so an op's strings are never parsed as markup."""

from __future__ import annotations

import html
import json
import re

from mason.backends.dump.graph import BuildGraph
from mason.backends.dump.styled import clean_text, format_seconds, node_id
from mason.backends.dump.svg import render_svg

__all__ = ["render_html", "PANEL_ID"]

PANEL_ID = "panel"

_CSS = """
html, body { margin: 0; height: 100%; font: 13px Helvetica, Arial, sans-serif; }
body { display: flex; }
#graph { flex: 1; overflow: auto; padding: 8px; }
#graph g.node { cursor: pointer; }
#graph g.node.selected > polygon, #graph g.node.selected > ellipse, #graph g.node.selected > path {
  stroke: #1f78b4; stroke-width: 4; }
#panel { width: 420px; border-left: 1px solid #ccc; padding: 8px 12px; overflow: auto; background: #fafafa; }
#panel h2 { font-size: 15px; margin: 4px 0 8px; }
#panel dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0 0 8px; }
#panel dt { color: #555; }
#panel dd { margin: 0; word-break: break-all; }
#panel pre { background: #fff; border: 1px solid #ddd; padding: 6px; white-space: pre-wrap;
  word-break: break-all; font-size: 11px; }
"""

_JS = """
(function () {
  var data = JSON.parse(document.getElementById('graph-data').textContent);
  var panel = document.getElementById('panel');
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function show(id) {
    var v = data[id];
    if (!v) return;
    var old = document.querySelectorAll('#graph g.node.selected');
    for (var i = 0; i < old.length; i++) old[i].classList.remove('selected');
    var g = document.getElementById(id);
    if (g) g.classList.add('selected');
    panel.textContent = '';
    panel.appendChild(el('h2', v.kind + (v.label ? ': ' + v.label : '')));
    var dl = el('dl');
    v.rows.forEach(function (r) { dl.appendChild(el('dt', r[0])); dl.appendChild(el('dd', r[1])); });
    panel.appendChild(dl);
    panel.appendChild(el('pre', JSON.stringify(v.fields, null, 2)));
  }
  var nodes = document.querySelectorAll('#graph g.node');
  for (var i = 0; i < nodes.length; i++) {
    nodes[i].addEventListener('click', function (ev) { show(this.id); ev.stopPropagation(); });
  }
})();
"""

_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)


def _rows(v) -> list[tuple[str, str]]:
    rows = [("digest", v.id), ("kind", v.kind)]
    if v.name:
        rows.append(("name", v.name))
    if v.stage:
        rows.append(("stage", v.stage))
    if v.status:
        rows.append(("status", v.status))
    if v.duration is not None:
        rows.append(("duration", format_seconds(v.duration)))
    if v.critical:
        rows.append(("critical path", "yes"))
    return rows


def render_html(g: BuildGraph) -> str:
    """``g`` as one HTML document."""
    svg = _PROLOGUE.sub("", render_svg(g), count=1)
    data = {node_id(v.id): {"kind": v.kind, "label": v.label, "rows": _rows(v), "fields": v.fields}
            for v in g.vertices}
    # ASCII JSON: whatever the fields hold (a lone surrogate too) is escaped, never raw
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(clean_text(g.title or "LLB graph"))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<div id=\"graph\">\n{svg}</div>\n"
        f"<div id=\"{PANEL_ID}\"><p>Click a vertex to see its op.</p></div>\n"
        f"<script type=\"application/json\" id=\"graph-data\">{blob}</script>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )
