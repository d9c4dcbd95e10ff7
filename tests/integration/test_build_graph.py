"""``mason build --graph`` and ``mason history --graph``, for real builds on the session containerd:
every vertex of the solved graph with its recorded status and duration, cached vertices marked on
a rebuild, a failed step marked, and the critical path — checked against the build record's own
step durations, never against a clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mason.backends.dump.graph import GRAPH_FILE
from mason.backends.dump.styled import CRITICAL, format_seconds
from mason.backends.solver.history import list_builds, load_build
from tests.backends.dump.svgparse import parse_dot, parse_svg
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DOCKERFILE = """\
FROM {base} AS slow
RUN sleep 1 && echo slow > /slow
RUN echo again >> /slow

FROM {base} AS fast
RUN echo fast > /fast

FROM {base}
COPY --from=slow /slow /slow
COPY --from=fast /fast /fast
COPY hello.txt /hello.txt
RUN cat /slow /fast /hello.txt > /all
"""


def _short(d: str) -> str:
    return d[: len("sha256:") + 12]


def _paths(graph: dict) -> list[list[str]]:
    """Every path of the recorded graph from a vertex without inputs to one without users."""
    ins: dict[str, list[str]] = {v["id"]: [] for v in graph["vertices"]}
    outs: dict[str, list[str]] = {v["id"]: [] for v in graph["vertices"]}
    for e in graph["edges"]:
        ins[e["dst"]].append(e["src"])
        outs[e["src"]].append(e["dst"])
    paths: list[list[str]] = []

    def walk(path: list[str]) -> None:
        nxt = outs[path[-1]]
        if not nxt:
            paths.append(path)
        for n in nxt:
            walk([*path, n])

    for v, i in ins.items():
        if not i:
            walk([v])
    return paths


def _record(env, build_id: str):
    rec = load_build(env.root, build_id)
    graph = rec.attachment(GRAPH_FILE)
    assert isinstance(graph, dict)
    return rec, graph


def _check_drawing(svg: str, rec, graph: dict) -> set[str]:
    """The drawing shows every recorded vertex with its step's status and duration; returns the
    short ids drawn as critical."""
    drawing = parse_svg(svg)
    steps = {s.digest: s for s in rec.steps}
    assert set(drawing.nodes) == {_short(v["id"]) for v in graph["vertices"]}
    for v in graph["vertices"]:
        node = drawing.nodes[_short(v["id"])]
        head = node.texts[0]
        s = steps.get(v["id"])
        if v["kind"] == "terminal":
            assert head == "result"
        elif s is None:
            assert head == f"{v['kind']} · not run" and "not-run" in node.classes
        elif s.status == "cached":
            assert head == f"{v['kind']} · cached" and "cached" in node.classes
        elif s.status == "done":
            assert head == f"{v['kind']} · ran {format_seconds(s.duration)}" and "ran" in node.classes
        else:
            assert s.status == "error" and "error" in node.classes and head.startswith(f"{v['kind']} · error")
    return {t for t, n in drawing.nodes.items() if "critical" in n.classes}


def test_build_graph_durations_cached_and_critical_path(build_env, tmp_path: Path) -> None:
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base), "hello.txt": "hi\n"})
    out = tmp_path / "first.svg"
    p = env.cli("build", "--progress=plain", "--graph", str(out), str(ctx), check=True)
    assert out.is_file(), p.stderr
    (first,) = list_builds(env.root)
    rec, graph = _record(env, first.id)
    assert rec.status == "finished" and rec.ran >= 6
    svg = out.read_text()
    critical = _check_drawing(svg, rec, graph)
    # the critical path: the source-to-result path whose recorded durations add up the most
    dur = {s.digest: (s.duration or 0.0) for s in rec.steps if s.status == "done"}
    paths = _paths(graph)
    longest = max(paths, key=lambda p: sum(dur.get(v, 0.0) for v in p))
    assert critical == {_short(v) for v in longest}
    best = sum(dur.get(v, 0.0) for v in longest)
    assert all(sum(dur.get(v, 0.0) for v in p) <= best for p in paths)
    drawing = parse_svg(svg)
    crit_edges = {t for t, e in drawing.edges.items() if "critical" in e.classes}
    assert crit_edges == {f"{_short(a)}->{_short(b)}" for a, b in zip(longest, longest[1:], strict=False)}
    assert all(CRITICAL in drawing.edges[t].strokes for t in crit_edges)
    assert f"critical path {format_seconds(best)}" in " ".join(t for t in drawing.root.itertext())
    # the solved graph is the Dockerfile's: three stages as clusters, the RUN steps in them
    assert set(drawing.clusters) == {"slow", "fast", "stage-2"}
    exec_labels = {v["label"] for v in graph["vertices"] if v["kind"] == "exec"}
    assert exec_labels == {"RUN sleep 1 && echo slow > /slow", "RUN echo again >> /slow", "RUN echo fast > /fast",
                           "RUN cat /slow /fast /hello.txt > /all"}

    # mason history --graph draws the same picture from the record
    again = env.cli("history", "--graph", first.id[-6:], check=True)
    assert again.stdout == svg
    dot = env.cli("history", "--graph", first.id, "-o", str(tmp_path / "h.dot"), check=True)
    assert dot.stdout == ""
    nodes, edges, _ = parse_dot((tmp_path / "h.dot").read_text())
    assert {n for n, a in nodes.items() if "critical" in a["class"].split()} == critical

    # as a page: the side panel's data has each step's status and duration
    env.cli("history", "--graph", first.id, "-o", str(tmp_path / "h.html"), check=True)
    page = (tmp_path / "h.html").read_text()
    blob = json.loads(page.split('id="graph-data">', 1)[1].split("</script>", 1)[0])
    steps = {s.digest: s for s in rec.steps}
    for v in graph["vertices"]:
        rows = dict(blob["op-" + v["id"].split(":")[1]]["rows"])
        s = steps.get(v["id"])
        if s is not None and s.status == "done":
            assert rows["status"] == "ran" and rows["duration"] == format_seconds(s.duration)
        assert ("critical path" in rows) == (_short(v["id"]) in critical)

    # a rebuild: every step cached, nothing ran, so nothing is critical
    out2 = tmp_path / "second.svg"
    env.cli("build", "--progress=plain", "--graph", str(out2), str(ctx), check=True)
    second = list_builds(env.root)[-1]
    rec2, graph2 = _record(env, second.id)
    assert rec2.ran == 0 and rec2.cached >= 6
    assert _check_drawing(out2.read_text(), rec2, graph2) == set()
    cached = [n for n in parse_svg(out2.read_text()).nodes.values() if "cached" in n.classes]
    assert len(cached) == rec2.cached
    latest = env.cli("history", "--graph", "latest", check=True)
    assert latest.stdout == out2.read_text()


def test_failed_build_graph_marks_the_failed_step(build_env, tmp_path: Path) -> None:
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nARG V\nWORKDIR /w-$V\nCOPY <<EOF /f\n$V\nEOF\n"
                                                   "RUN echo ok > /ok\nRUN exit 3\nRUN echo never\n"})
    out = tmp_path / "failed.dot"
    p = env.cli("build", "--progress=plain", "--build-arg", "V=arg-value-not-for-history-77", "--graph", str(out),
                str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    (b,) = list_builds(env.root)
    assert b.status == "failed"
    # the record keeps build-arg names only: the RUN environments in its graph are masked
    stored = (b.dir / GRAPH_FILE).read_text()
    assert "arg-value-not-for-history-77" not in stored and "V=****" in stored
    nodes, _, _ = parse_dot(out.read_text())
    by_label = {a["label"].split("\n", 1)[1]: a for a in nodes.values() if "\n" in a["label"]}
    assert "error" in by_label["RUN exit 3"]["class"].split()
    assert "ran" in by_label["RUN echo ok > /ok"]["class"].split()
    assert "not-run" in by_label["RUN echo never"]["class"].split()


def test_graph_option_errors_are_one_line(build_env, tmp_path: Path) -> None:
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\n"})
    for args, msg in [
        (("build", "--graph", str(tmp_path / "g.png"), str(ctx)), "must end in .svg, .dot"),
        (("build", "--graph", str(tmp_path / "no" / "g.svg"), str(ctx)), "its directory does not exist"),
        (("history", "--graph", "nosuchbuild"), "no build"),
    ]:
        p = env.cli(*args)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and msg in p.stderr, p.stderr
    assert list_builds(env.root) == []  # the bad --graph stopped the build before it started
    # a record without a graph (damaged, or from before graphs were recorded): one line
    env.cli("build", str(ctx), check=True)
    (b,) = list_builds(env.root)
    (b.dir / GRAPH_FILE).write_text(json.dumps({"version": 1, "vertices": "nope"}))
    p = env.cli("history", "--graph", b.id)
    assert p.returncode == 1 and "has no graph recorded" in p.stderr and p.stderr.count("\n") == 1
