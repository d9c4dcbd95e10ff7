"""``mason images``, ``mason rmi``, ``mason load``: mason's image store in containerd."""

from __future__ import annotations

import click

from mason.cli.daemon import containerd_address_option, root_option


def _client(containerd_address: str | None, root: str | None):
    from mason.backends.containerd.client import connect

    return connect(containerd_address, root)


def shown_name(name: str) -> str:
    """The familiar form of an image name from the store, or the name as stored when it is not
    a reference (``ctr`` can name an image anything): one odd name never hides the rest."""
    from mason.ir.errors import MasonError
    from mason.ir.reference import familiar

    try:
        return familiar(name)
    except MasonError:
        return name


def human_size(n: int) -> str:
    """Like docker's: ``4.86MB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n}B"  # pragma: no cover


@click.command()
@containerd_address_option
@root_option
@click.option("--no-trunc", "full", is_flag=True, help="Show full digests.")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
def images(containerd_address: str | None, root: str | None, full: bool, quiet: bool) -> None:
    """List the images in mason's image store (name, digest, size)."""
    from mason.backends.exporters.image import list_images

    with _client(containerd_address, root) as c:
        rows = list_images(c)
    if quiet:
        for r in rows:
            click.echo(shown_name(r.name))
        return
    table = [("NAME", "DIGEST", "SIZE")]
    for r in rows:
        table.append((shown_name(r.name), r.digest if full else r.digest[:19], human_size(r.size)))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo(f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]}".rstrip())


@click.command()
@containerd_address_option
@root_option
@click.argument("names", nargs=-1, required=True)
def rmi(containerd_address: str | None, root: str | None, names: tuple[str, ...]) -> None:
    """Remove images from mason's image store (their content goes with containerd's GC)."""
    from mason.backends.exporters.image import remove_image

    with _client(containerd_address, root) as c:
        for n in names:
            click.echo(f"Untagged: {shown_name(remove_image(c, n))}")


@click.command()
@containerd_address_option
@root_option
@click.option("-i", "--input", "path", required=True, type=click.Path(dir_okay=False),
              help="An OCI or Docker image archive (tar).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
def load(containerd_address: str | None, root: str | None, path: str, quiet: bool) -> None:
    """Load images from an OCI or Docker archive into mason's image store (like docker load)."""
    from mason.backends.exporters.load import load_archive
    from mason.ir.errors import MasonError

    with _client(containerd_address, root) as c:
        loaded = load_archive(c, path)
    if not loaded:
        raise MasonError(f"{path} names no image (no io.containerd.image.name, full "
                         "org.opencontainers.image.ref.name or RepoTags); its content was imported")
    if not quiet:
        for i in loaded:
            click.echo(f"Loaded image: {shown_name(i.name)} ({i.digest})")
