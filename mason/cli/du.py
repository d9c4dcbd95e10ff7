"""``mason du``: what the build cache holds, by record (like ``docker buildx du``)."""

from __future__ import annotations

import time

import click

from mason.cli.daemon import containerd_address_option, root_option


def human_ago(t: float, now: float | None = None) -> str:
    """``5 seconds ago``, ``About an hour ago``, ``3 days ago`` (docker's wording)."""
    s = max(0.0, (time.time() if now is None else now) - t)
    m, h, d = s / 60, s / 3600, s / 86400
    if s < 1:
        text = "Less than a second"
    elif int(s) == 1:
        text = "1 second"
    elif s < 60:
        text = f"{int(s)} seconds"
    elif int(m) == 1:
        text = "About a minute"
    elif m < 60:
        text = f"{int(m)} minutes"
    elif int(h) == 1:
        text = "About an hour"
    elif h < 48:
        text = f"{int(h)} hours"
    elif h < 24 * 7 * 2:
        text = f"{int(d)} days"
    elif h < 24 * 30 * 2:
        text = f"{int(d // 7)} weeks"
    elif h < 24 * 365 * 2:
        text = f"{int(d // 30)} months"
    else:
        text = f"{int(d // 365)} years"
    return f"{text} ago"


def open_cache(containerd_address: str | None, root: str | None):
    """The client and result store ``--containerd-address`` / ``--root`` select."""
    from mason.backends.containerd.client import connect
    from mason.backends.containerd.daemon import state_root
    from mason.backends.solver.store import ResultStore

    client = connect(containerd_address, root)
    return client, ResultStore(state_root(root))


def print_totals(records) -> None:
    from mason.backends.solver.gc import usage_totals
    from mason.cli.images import human_size

    t = usage_totals(records)
    rows = []
    if t.shared:
        rows += [("Shared:", t.shared), ("Private:", t.total - t.shared)]
    rows += [("Reclaimable:", t.reclaimable), ("Total:", t.total)]
    for label, n in rows:
        click.echo(f"{label:<14}{human_size(n)}")


@click.command()
@containerd_address_option
@root_option
@click.option("-v", "--verbose", is_flag=True, help="Every field of every record.")
def du(containerd_address: str | None, root: str | None, verbose: bool) -> None:
    """Show what the build cache holds, by record (ID, reclaimable, size, last use)."""
    from mason.backends.exporters.image import format_time
    from mason.backends.solver.gc import disk_usage
    from mason.cli.images import human_size

    client, store = open_cache(containerd_address, root)
    with client, store:
        records = disk_usage(client, store)
    now = time.time()
    if verbose:
        for r in records:
            fields = [("ID", r.key), ("Snapshot", r.snapshot or "(scratch)"),
                      ("Created at", format_time(int(r.created))),
                      ("Reclaimable", str(r.reclaimable).lower()), ("Shared", str(r.shared).lower()),
                      ("In use", str(r.in_use).lower()), ("Size", human_size(r.size)),
                      ("Description", r.description), ("Last used", human_ago(r.last_used, now))]
            if r.vanished:
                fields.append(("Vanished", "true"))
            for k, v in fields:
                click.echo(f"{k + ':':<14}{v}")
            click.echo()
    else:
        table = [("ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED")]
        table += [(r.id, str(r.reclaimable).lower(), human_size(r.size),
                   human_ago(r.last_used, now)) for r in records]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        for row in table:
            click.echo(f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]:<{widths[2]}}   {row[3]}")
        if records:
            click.echo()
    print_totals(records)
