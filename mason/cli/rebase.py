"""``mason rebase IMAGE --run-image NEW``: the image's layers above its base moved onto NEW with
no build step run (what ``pack rebase`` does); the work is :func:`mason.rebase.rebase`."""

from __future__ import annotations

import click

from mason.cli.build import SectionedCommand, _check_iidfile, progress_sink, report
from mason.cli.progress import MODES


@click.command("rebase", cls=SectionedCommand)
@click.argument("image", metavar="IMAGE")
@click.option("--run-image", required=True, metavar="NEW", help="The new base (run image) to put under IMAGE's layers.")
@click.option("--base", metavar="OLD", help="IMAGE's current base, when mason does not know it (an image mason "
                                            "did not build, or built before it recorded bases).")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME",
              help="Name the result (repeatable; default: IMAGE itself, as pack rebase does).")
@click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
              help="Where the result goes, as for mason build.")
@click.option("--iidfile", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the result's manifest digest to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the image digest.")
@click.option("--progress", default="auto", show_default=True, type=click.Choice(MODES),
              help="Progress output on stderr.")
@click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST",
              help="Plain HTTP for this registry (loopback ones always may).")
@click.option("--root", envvar="MASON_ROOT", metavar="DIR", help="mason's state directory.")
@click.option("--containerd-address", envvar="MASON_CONTAINERD_ADDRESS", metavar="SOCKET", help="Use this containerd.")
def rebase(image, run_image, base, tags, outputs, iidfile, quiet, progress, insecure_registries, root,
           containerd_address) -> None:
    """Put IMAGE's layers above its base onto the image NEW, without running a build step."""
    from mason.rebase import RebaseRequest
    from mason.rebase import rebase as do_rebase

    _check_iidfile(iidfile)
    with progress_sink(progress, quiet) as sink:
        result = do_rebase(RebaseRequest(image, run_image, base=base, tags=tuple(tags), outputs=tuple(outputs),
                                         root=root, containerd_address=containerd_address,
                                         insecure_registries=tuple(insecure_registries), events=sink))
    report(result, quiet or progress == "quiet", iidfile)
