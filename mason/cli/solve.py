"""``mason solve def.llb``: execute any LLB Definition (mason's or BuildKit's; a mason stream of
several outputs too) and optionally name the result (``-t``). ``local://NAME`` sources come
from ``--local NAME=DIR`` (``context`` defaults to the current directory). The work is
:func:`mason.build.solve_graph`."""

from __future__ import annotations

import click

from mason.cli.build import common_solve_options, renderer, report
from mason.ir.errors import MasonError


@click.command("solve")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--local", "locals_", multiple=True, metavar="NAME=DIR", help="A directory for local://NAME.")
@click.option("--output-name", "output", metavar="NAME", help="Which output of a multi-output stream to solve.")
@common_solve_options
def solve(file: str, locals_, output, tags, outputs, secrets, ssh, allow, no_cache, progress,
          insecure_registries, root, containerd_address, jobs, network_default) -> None:
    """Execute the LLB Definition in FILE (default: stdin)."""
    from mason.build import solve_graph
    from mason.cli.llb import read_input
    from mason.ir.codec import decode_graph

    graph = decode_graph(read_input(file))
    dirs = {"context": "."}
    for item in locals_:
        k, sep, v = item.partition("=")
        if not sep or not k or not v:
            raise MasonError(f"--local {item!r}: expected NAME=DIR")
        dirs[k] = v
    sink = renderer(progress)
    result = solve_graph(graph, output=output, tags=tags, outputs=outputs, locals=dirs, secrets=secrets, ssh=ssh,
                         allow=allow, no_cache=no_cache, insecure_registries=insecure_registries, root=root,
                         containerd_address=containerd_address, jobs=jobs, network_default=network_default,
                         events=sink)
    report(result, progress == "quiet")
