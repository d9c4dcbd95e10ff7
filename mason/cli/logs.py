"""``mason logs [BUILD] [--step N]``: replay a recorded build's output in the plain progress
format (the latest build by default; BUILD is an id, a prefix of one, or a prefix of its random
part). The work is :func:`print_logs`, callable from Python."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click

from mason.backends.containerd.daemon import state_root
from mason.cli.daemon import root_option


def print_logs(root: str | Path, build: str | None = None, step: int | None = None,
               stream: IO[str] | None = None) -> None:
    """Write the stored output of ``build`` (or of its step ``step``) to ``stream``."""
    from mason.backends.solver.history import load_build, replay_events
    from mason.cli.progress import PlainRenderer

    rec = load_build(root, build)
    now = [rec.started]
    renderer = PlainRenderer(stream or sys.stdout, clock=lambda: now[0])
    try:
        for t, event in replay_events(rec, step):
            now[0] = t
            renderer(event)
    finally:
        renderer.close()


@click.command()
@click.argument("build", required=False)
@click.option("--step", type=int, default=None, metavar="N", help="Only step N (the #N of the progress output).")
@root_option
def logs(build: str | None, step: int | None, root: str | None) -> None:
    """Show the stored output of a build (default: the latest)."""
    print_logs(state_root(root), build, step)
