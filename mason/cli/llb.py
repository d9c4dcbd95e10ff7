"""``mason llb``: inspect LLB Definitions. ``mason llb dump [FILE|-] [--format json|text|dot|svg|html|buildkit-dot]``
prints one, like ``buildctl debug dump-llb``, or draws it; the work is :func:`mason.backends.dump.dump_definition`."""

from __future__ import annotations

import sys

import click

from mason.backends.dump import FORMATS, dump_definition
from mason.ir.errors import MasonError


@click.group()
def llb() -> None:
    """Inspect LLB Definitions (dump as json, text, dot, svg, html)."""


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of stdin for ``-``; a read failure is a MasonError."""
    if path == "-":
        stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        return stdin.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MasonError(f"cannot read {path}: {e.strerror or e}") from None


@llb.command("dump")
@click.argument("file", default="-", metavar="[FILE|-]")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
    help="json: one object per op per line, as `buildctl debug dump-llb`; text: mason's IR text; "
    "dot: the graph coloured by op kind, stages as clusters, edges labelled; svg: that drawn by graphviz; "
    "html: the SVG in one page showing an op's fields when it is clicked; buildkit-dot: as `dump-llb --dot`.",
)
@click.option("--pretty", is_flag=True, help="With json: one indented array instead of one line per op.")
@click.option("--metadata", is_flag=True, help="With text: each op's metadata as a trailing # comment.")
def dump(file: str, fmt: str, pretty: bool, metadata: bool) -> None:
    """Print the LLB Definition in FILE (default: stdin)."""
    data = read_input(file)
    out = dump_definition(data, fmt, pretty=pretty, metadata=metadata)
    sys.stdout.write(out)
    sys.stdout.flush()
