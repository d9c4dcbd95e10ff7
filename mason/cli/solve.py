"""``mason solve def.llb``: execute any LLB Definition (mason's or BuildKit's; a mason stream of
several outputs too) and write its outputs (``-t``, ``--output``) as ``mason build`` does. ``local://NAME``
sources come from ``--local NAME=DIR`` (``context`` defaults to the current directory).
``SOURCE_DATE_EPOCH`` in the environment makes the output reproducible. The work is
:func:`mason.driver.solve_graph`; the solve is recorded for ``mason history`` / ``mason logs``."""

from __future__ import annotations

import os

import click

from mason.cli.build import SectionedCommand, _check_iidfile, common_solve_options, progress_sink, report, run_limits
from mason.ir.errors import MasonError


@click.command("solve", cls=SectionedCommand)
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option("--local", "locals_", multiple=True, metavar="NAME=DIR", help="A directory for local://NAME.")
@click.option("--output-name", "output", metavar="NAME", help="Which output of a multi-output stream to solve.")
@common_solve_options
def solve(file: str, locals_, output, tags, outputs, push, iidfile, quiet, progress, secrets, ssh, no_cache, allow,
          network_default, jobs, insecure_registries, root, containerd_address, memory=None, cpu_quota=None,
          cpu_period=None) -> None:
    """Execute the LLB Definition in FILE (default: stdin)."""
    from mason.backends.exporters.outputs import source_date_epoch
    from mason.cli.llb import read_input
    from mason.driver import solve_graph
    from mason.ir.codec import decode_graph

    _check_iidfile(iidfile)
    limits = run_limits(memory, cpu_quota, cpu_period)
    graph = decode_graph(read_input(file))
    dirs = {"context": "."}
    for item in locals_:
        k, sep, v = item.partition("=")
        if not sep or not k or not v:
            raise MasonError(f"--local {item!r}: expected NAME=DIR")
        dirs[k] = v
    epoch = source_date_epoch(None)
    record = {"definition": os.path.abspath(file) if file != "-" else "-",
              "locals": {k: os.path.abspath(v) for k, v in dirs.items()}}
    with progress_sink(progress, quiet) as sink:
        result = solve_graph(graph, output=output, tags=tags, outputs=outputs, push=push, locals=dirs,
                             secrets=secrets, ssh=ssh, allow=allow, no_cache=no_cache,
                             insecure_registries=insecure_registries, root=root,
                             containerd_address=containerd_address, jobs=jobs, network_default=network_default,
                             source_date_epoch=epoch, events=sink, record=record, limits=limits)
    report(result, quiet or progress == "quiet", iidfile)
