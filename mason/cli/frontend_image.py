"""``mason frontend-image NAME -t TAG``: package one of mason's frontends (a built-in, a plugin, or
``module:attribute``) as a BuildKit gateway frontend image, which ``buildctl build --frontend
gateway.v0 --opt source=TAG`` or ``# syntax=TAG`` runs (on BuildKit or on mason). What goes into
the image: :mod:`mason.gateway.package`; what its entrypoint does: :mod:`mason.gateway.client`."""

from __future__ import annotations

import click

from mason.cli.progress import MODES


@click.command("frontend-image")
@click.argument("name")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME", help="Name the image in mason's image store.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
              help="Where the image goes, as mason build's --output (type=registry,name=N | type=oci,dest=F …).")
@click.option("--push", is_flag=True, help="Push the image too (shorthand for type=image,push=true).")
@click.option("--base", metavar="IMAGE",
              help="The image with the Python mason runs on (same minor version as this one; "
                   "default: docker.io/library/python:X.Y-slim of this Python).")
@click.option("--python", "python", default="python3", show_default=True, metavar="PATH",
              help="The base image's Python interpreter.")
@click.option("--iidfile", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the image's manifest digest to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the image digest.")
@click.option("--progress", default="auto", show_default=True, type=click.Choice(MODES),
              help="Progress output on stderr.")
@click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST",
              help="Plain HTTP for this registry (loopback ones always may).")
@click.option("--root", envvar="MASON_ROOT", metavar="DIR", help="mason's state directory.")
@click.option("--containerd-address", envvar="MASON_CONTAINERD_ADDRESS", metavar="SOCKET", help="Use this containerd.")
def frontend_image(name: str, tags, outputs, push, base, python, iidfile, quiet, progress, insecure_registries, root,
                   containerd_address) -> None:
    """Package the frontend NAME (see mason frontends; or module:attribute) as a gateway image."""
    import shutil
    import tempfile
    from pathlib import Path

    from mason.cli.build import _check_iidfile, progress_sink, report
    from mason.driver import BuildRequest, build
    from mason.gateway import package
    from mason.ir.errors import MasonError

    if not tags and not outputs:
        raise MasonError("mason frontend-image needs -t NAME or --output (where the image goes)")
    _check_iidfile(iidfile)
    base = base or package.default_base()
    contents = package.contents(name)
    work = Path(tempfile.mkdtemp(prefix="mason-frontend-image-"))
    try:
        dockerfile = package.write_context(contents, work, base=base, python=python)
        with progress_sink(progress, quiet) as sink:
            try:
                result = build(BuildRequest(context=str(work), dockerfile=str(dockerfile), tags=tuple(tags),
                                            outputs=tuple(outputs), push=push,
                                            insecure_registries=tuple(insecure_registries), root=root,
                                            containerd_address=containerd_address, events=sink))
            except MasonError as e:
                raise MasonError(f"packaging frontend {name} on {base}: {e.message}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(result, quiet or progress == "quiet", iidfile)
