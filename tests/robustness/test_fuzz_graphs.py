"""The graph a build record keeps (``graph.json``) is a file mason reads back: any JSON there is
either refused (``mason history --graph`` then says so in one line) or a graph that draws —
no crash, no endless loop on edges that go round. Labels with any characters lay out in dot."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mason.backends.dump import draw
from mason.backends.dump.graph import BuildGraph, Edge, StepResult, Vertex, annotate
from mason.backends.dump.styled import styled_dot

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)

IDS = [f"sha256:{c * 64}" for c in "0123"]
vertex = st.fixed_dictionaries({
    "id": st.sampled_from(IDS) | st.text(max_size=6), "kind": st.sampled_from(["exec", "source", "weird", ""]),
    "label": st.text(max_size=20), "name": st.text(max_size=20), "stage": st.none() | st.text(max_size=6),
    "fields": st.dictionaries(st.text(max_size=4), json_values, max_size=3)})
edge = st.fixed_dictionaries({"src": st.sampled_from(IDS), "dst": st.sampled_from(IDS), "label": st.text(max_size=10)})
stored = st.fixed_dictionaries({"version": st.just(1), "title": st.text(max_size=10) | st.integers(),
                                "vertices": st.lists(vertex, max_size=5), "edges": st.lists(edge, max_size=6)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, stored), st.dictionaries(st.sampled_from(IDS), st.tuples(
    st.sampled_from(["done", "cached", "error", "cancelled", "running", "?"]),
    st.none() | st.floats(min_value=0, max_value=1e6)), max_size=4))
def test_any_stored_graph_is_refused_or_drawn(o: object, steps: dict) -> None:
    g = BuildGraph.from_json(json.loads(json.dumps(o)))
    if g is None:
        return
    annotate(g, {d: StepResult(s, t) for d, (s, t) in steps.items()})
    text = styled_dot(g)
    assert text.startswith("digraph llb {") and text.endswith("}\n")
    assert sum(1 for v in g.vertices if v.critical) <= len(g.vertices)


def test_a_cycle_is_refused() -> None:
    o = {"version": 1, "vertices": [{"id": i, "kind": "exec", "label": "", "name": "", "stage": None, "fields": {}}
                                    for i in IDS[:2]],
         "edges": [{"src": IDS[0], "dst": IDS[1], "label": ""}, {"src": IDS[1], "dst": IDS[0], "label": ""}]}
    assert BuildGraph.from_json(o) is None
    o["edges"] = o["edges"][:1]
    assert BuildGraph.from_json(o) is not None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=30), min_size=3, max_size=3), st.none() | st.text(max_size=10))
def test_any_label_lays_out(texts: list[str], stage: str | None) -> None:
    g = BuildGraph([Vertex(IDS[0], "exec", texts[0], stage=stage, fields={"x": texts[1]}),
                    Vertex(IDS[1], "file", texts[1], stage=stage)],
                   [Edge(IDS[0], IDS[1], texts[2])], title=texts[2])
    ET.fromstring(draw(g, "svg").encode())  # well-formed SVG whatever the labels held
    page = draw(g, "html")
    assert page.count("<script") == 2  # no label opened another
