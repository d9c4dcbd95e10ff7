"""``mason history``: list the recorded builds, newest first — id, start time, status, target,
tags, steps ran / cached, duration. The rows come from :func:`history_rows`, callable from
Python. ``mason history --graph BUILD`` draws a build's solved graph (:func:`build_graph`): each
vertex's duration and cached/ran status, the critical path highlighted."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import click

from mason.backends.containerd.daemon import state_root
from mason.cli.daemon import root_option

COLUMNS = ("BUILD ID", "CREATED", "STATUS", "TARGET", "TAGS", "STEPS", "DURATION")
GRAPH_FORMATS = {".svg": "svg", ".dot": "dot", ".html": "html"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def history_rows(root: str | Path) -> list[tuple[str, ...]]:
    """One row of strings per recorded build, newest first."""
    from mason.backends.solver.history import list_builds

    rows = []
    for r in reversed(list_builds(root)):
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
        rows.append((r.id, created, r.status, r.target or "-", ",".join(r.tags) or "-",
                     f"{r.ran} ran, {r.cached} cached", format_duration(r.duration)))
    return rows


def graph_format(path: str, fmt: str | None = None) -> str:
    """The drawing format for ``path`` (``fmt`` if given, else its extension); a bad one is a
    MasonError."""
    from mason.ir.errors import MasonError

    if fmt is not None:
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in GRAPH_FORMATS:
        raise MasonError(f"--graph {path}: the file name must end in {', '.join(GRAPH_FORMATS)} (the format)")
    return GRAPH_FORMATS[ext]


def build_graph(root: str | Path, build: str | None):
    """The solved graph of ``build`` (id or prefix; None: the latest), annotated with its steps'
    results and critical path."""
    from mason.backends.dump.graph import GRAPH_FILE, BuildGraph, StepResult, annotate
    from mason.backends.solver.history import load_build
    from mason.ir.errors import MasonError

    rec = load_build(root, build)
    g = BuildGraph.from_json(rec.attachment(GRAPH_FILE))
    if g is None:
        raise MasonError(f"build {rec.id} has no graph recorded (it failed before its solve, "
                         "or an older mason recorded it)")
    annotate(g, {s.digest: StepResult(s.status, s.duration) for s in rec.steps if s.digest})
    took = format_duration(rec.duration) if rec.duration is not None else "-"
    g.title = f"build {rec.id} ({rec.status}, {took}; {rec.ran} ran, {rec.cached} cached)"
    return g


def write_graph(root: str | Path, build: str | None, path: str, fmt: str) -> None:
    """Draw ``build``'s graph into ``path`` (``-``: stdout) as ``fmt``, written whole or not at all."""
    from mason.backends.dump import draw
    from mason.ir.errors import MasonError

    text = draw(build_graph(root, build), fmt)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise MasonError(f"cannot write {path}: {e.strerror or e}") from None


@click.command()
@root_option
@click.option("--graph", "graph", metavar="BUILD",
              help="Draw BUILD's solved graph (an id or its prefix; 'latest': the last build): each step's "
                   "duration, cached or ran, the critical path in red.")
@click.option("-o", "--output", "output", default="-", metavar="FILE",
              help="With --graph: write it to FILE (default: stdout); .svg, .dot or .html chooses the format.")
@click.option("--format", "fmt", type=click.Choice(sorted(set(GRAPH_FORMATS.values()))), default=None,
              help="With --graph: the drawing's format (default: from -o's extension, else svg).")
def history(root: str | None, graph: str | None = None, output: str = "-", fmt: str | None = None) -> None:
    """List recorded builds, newest first (see `mason logs BUILD` for their output)."""
    if graph is not None:
        chosen = fmt or ("svg" if output == "-" else graph_format(output))
        write_graph(state_root(root), None if graph == "latest" else graph, output, chosen)
        return
    rows = history_rows(state_root(root))
    if not rows:
        click.echo(f"no builds recorded under {state_root(root)}", err=True)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [COLUMNS, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
