"""``mason prune``: free build cache, and the containerd snapshots and content nothing needs
any more (like ``docker builder prune``)."""

from __future__ import annotations

import click

from mason.cli.daemon import containerd_address_option, root_option

WARN_DANGLING = "WARNING! This will remove all dangling build cache."
WARN_ALL = "WARNING! This will remove all build cache that no image is built from."


@click.command()
@containerd_address_option
@root_option
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove every cache record no image is built from (and the lowering cache).")
@click.option("--keep-storage", metavar="SIZE", default=None,
              help="Remove least recently used records until the cache keeps at most SIZE (e.g. 500MB, 2GiB).")
@click.option("--filter", "filters", multiple=True, metavar="until=DURATION",
              help="Only records last used longer ago than DURATION (e.g. until=24h).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def prune(containerd_address: str | None, root: str | None, all_: bool, keep_storage: str | None,
          filters: tuple[str, ...], force: bool) -> None:
    """Remove build cache (by default only what no record or image references)."""
    from mason.backends.solver.gc import parse_filters, parse_size
    from mason.backends.solver.gc import prune as run_prune
    from mason.cli.du import open_cache
    from mason.cli.images import human_size

    # option values are checked before anything connects or asks
    limit = parse_size(keep_storage) if keep_storage is not None else None
    policy = parse_filters(filters)
    if not force:
        warn = WARN_ALL if all_ else WARN_DANGLING
        try:
            if not click.confirm(f"{warn}\nAre you sure you want to continue?", default=False):
                return
        except click.Abort:
            return
    client, store = open_cache(containerd_address, root)
    with client, store:
        report = run_prune(client, store, all=all_, keep_storage=limit, **policy)
    if all_:  # every cache: the lowering cache too (a cold build after prune --all lowers again)
        from mason.backends.containerd.daemon import state_root
        from mason.lowering_cache import clear

        clear(state_root(root))
    if report.records:
        click.echo("Deleted build cache objects:")
        for r in report.records:
            note = " (snapshot vanished)" if r.vanished else ""
            click.echo(f"{r.id}  {r.description}{note}".rstrip())
        click.echo()
    click.echo(f"Removed {_n(len(report.records), 'cache record')}, {_n(len(report.snapshots), 'snapshot')}, "
               f"{_n(len(report.content), 'blob')}, {_n(len(report.leases), 'stale lease')}")
    click.echo(f"Total reclaimed space: {human_size(report.freed)}")


def _n(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"
