"""``mason history``: list the recorded builds, newest first — id, start time, status, target,
tags, steps ran / cached, duration. The rows come from :func:`history_rows`, callable from
Python."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mason.cli.daemon import root_option
from mason.cli.logs import state_root

COLUMNS = ("BUILD ID", "CREATED", "STATUS", "TARGET", "TAGS", "STEPS", "DURATION")


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


@click.command()
@root_option
def history(root: str | None) -> None:
    """List recorded builds, newest first (see `mason logs BUILD` for their output)."""
    rows = history_rows(state_root(root))
    if not rows:
        click.echo(f"no builds recorded under {state_root(root)}", err=True)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [COLUMNS, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
