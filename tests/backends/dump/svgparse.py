"""Reading what graphviz drew (imported as ``tests.backends.dump.svgparse``): the vertices,
clusters and edges of an SVG by their ``<title>`` and class, and the statements of a DOT text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS = "{http://www.w3.org/2000/svg}"
SHAPES = ("ellipse", "polygon", "path")


@dataclass
class Drawn:
    title: str
    id: str
    classes: list[str]
    fills: set[str]
    strokes: set[str]
    texts: list[str]
    box: tuple[float, float, float, float]  # min x, min y, max x, max y of its points


@dataclass
class Drawing:
    nodes: dict[str, Drawn] = field(default_factory=dict)  # by title (the short digest)
    clusters: dict[str, Drawn] = field(default_factory=dict)  # by label text
    edges: dict[str, Drawn] = field(default_factory=dict)  # by title "a->b"
    root: ET.Element | None = None


def _points(g: ET.Element) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for el in g.iter():
        if el.tag == f"{NS}polygon":
            for p in (el.get("points") or "").split():
                x, y = p.split(",")
                pts.append((float(x), float(y)))
        elif el.tag == f"{NS}path":  # "M x,y C x,y x,y …" (a rounded cluster's outline)
            for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", el.get("d") or ""):
                pts.append((float(x), float(y)))
        elif el.tag == f"{NS}ellipse":
            cx, cy, rx, ry = (float(el.get(k) or 0) for k in ("cx", "cy", "rx", "ry"))
            pts += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
    return pts


def parse_svg(svg: str) -> Drawing:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    out = Drawing(root=root)
    for g in root.iter(f"{NS}g"):
        classes = (g.get("class") or "").split()
        if not classes or classes[0] not in ("node", "cluster", "edge"):
            continue
        title = g.find(f"{NS}title")
        assert title is not None and title.text
        els = [el for tag in SHAPES for el in g.iter(f"{NS}{tag}")]
        pts = _points(g) or [(0.0, 0.0)]
        d = Drawn(title.text, g.get("id") or "", classes,
                  {f for el in els if (f := el.get("fill")) and f != "none"},
                  {s for el in els if (s := el.get("stroke")) and s not in ("none", "transparent")},
                  [t.text or "" for t in g.iter(f"{NS}text")],
                  (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)))
        if classes[0] == "node":
            out.nodes[d.title] = d
        elif classes[0] == "cluster":
            out.clusters[d.texts[0] if d.texts else d.title] = d
        else:
            out.edges[d.title] = d
    return out


def inside(inner: Drawn, outer: Drawn) -> bool:
    ax, ay, bx, by = inner.box
    cx, cy, dx, dy = outer.box
    return cx <= ax and cy <= ay and bx <= dx and by <= dy


_NODE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" \[(.*)\];$')
_EDGE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"(?: \[(.*)\])?;$')
_ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_SUB = re.compile(r'^\s*subgraph "(cluster_\d+)" \{$')


def unquote(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]], dict[str, str]]:
    """(nodes: name → attrs, edges: (src, dst) → attrs, node name → its cluster's label)."""
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    cluster_of: dict[str, str] = {}
    cluster: str | None = None
    label: str | None = None
    for line in text.splitlines():
        if _SUB.match(line):
            cluster, label = _SUB.match(line).group(1), None  # type: ignore[union-attr]
            continue
        if cluster is not None and line.strip() == "}":
            cluster = None
            continue
        if (m := _EDGE.match(line)) is not None:
            edges[(unquote(m.group(1)), unquote(m.group(2)))] = {
                k: unquote(v) for k, v in _ATTR.findall(m.group(3) or "")}
        elif (m := _NODE.match(line)) is not None:
            name = unquote(m.group(1))
            nodes[name] = {k: unquote(v) for k, v in _ATTR.findall(m.group(2))}
            if cluster is not None:
                assert label is not None, f"a node before its cluster's label: {line}"
                cluster_of[name] = label
        elif cluster is not None and label is None and line.strip().startswith("label="):
            label = unquote(_ATTR.findall(line)[0][1])
    return nodes, edges, cluster_of
