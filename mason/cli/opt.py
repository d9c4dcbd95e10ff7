"""``mason opt IN.llb --passes PIPELINE -o OUT.llb``: run passes over an LLB Definition, like
LLVM's ``opt``. ``-O0``/``-O1``/``-O2`` pick a preset (``-O1`` when neither is given); IR dumps
(``--print-after``, ``--print-after-all``) and ``--time-passes`` go to stderr. A file with one
output is written as a bare Definition (what BuildKit reads), several as mason's Definition stream.
The work is :func:`opt_bytes`, callable from Python.
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

import click

from mason.ir.codec import decode_graph, encode_graph, write_stream
from mason.ir.errors import MasonError
from mason.ir.text import format_graph


def opt_bytes(data: bytes, pipeline: str, *, print_after: Iterable[str] = (), print_after_all: bool = False,
              verify_each: bool = False, time_passes: bool = False, text: bool = False,
              err: TextIO | None = None) -> bytes:
    """Decode ``data`` (a Definition or a stream of them), run ``pipeline`` and encode the result
    (``text``: the IR text form instead)."""
    from mason.passes import run_pipeline

    graph = decode_graph(data)
    graph = run_pipeline(graph, pipeline, print_after=print_after, print_after_all=print_after_all,
                         verify_each=verify_each, time_passes=time_passes, out=err)
    if text:
        return format_graph(graph).encode()
    defs = encode_graph(graph)
    return defs[0] if len(defs) == 1 else write_stream(defs)


def _read(path: str) -> bytes:
    if path == "-":
        stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        return stdin.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MasonError(f"cannot read {path}: {e.strerror or e}") from None


def _write(path: str, data: bytes) -> None:
    if path == "-":
        out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
        out.write(data)
        out.flush()
        return
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise MasonError(f"cannot write {path}: {e.strerror or e}") from None


@click.command("opt")
@click.argument("input", default="-", metavar="[IN.llb|-]")
@click.option("--passes", "-p", "passes", metavar="PIPELINE",
              help="Pass pipeline, e.g. 'verify,hoist-config,dedupe,prune{targets=app}'.")
@click.option("-O", "level", type=click.IntRange(0, 2), metavar="LEVEL",
              help="Preset: -O0 verify; -O1 (default) + hoist-config,dedupe,prune; -O2 + merge.")
@click.option("-o", "output", metavar="OUT", help="Output file ('-': stdout; the default).")
@click.option("-S", "text", is_flag=True, help="Write the IR text form instead of a Definition.")
@click.option("--print-after", "print_after", multiple=True, metavar="PASS",
              help="Print the IR to stderr after every run of PASS (repeatable).")
@click.option("--print-after-all", is_flag=True, help="Print the IR to stderr after every pass.")
@click.option("--verify-each", is_flag=True, help="Run verify after every pass.")
@click.option("--time-passes", is_flag=True, help="Print each pass's time in ms to stderr.")
def opt(input: str, passes: str | None, level: int | None, output: str | None, text: bool,
        print_after: tuple[str, ...], print_after_all: bool, verify_each: bool, time_passes: bool) -> None:
    """Run passes over the LLB Definition in IN.llb (default: stdin)."""
    from mason.passes import pipeline_for_level

    if passes is not None and level is not None:
        raise MasonError("give either --passes or -O, not both")
    pipeline = passes if passes is not None else pipeline_for_level(1 if level is None else level)
    if output is None and not text and sys.stdout.isatty():
        raise MasonError("refusing to write a binary Definition to a terminal: use -o FILE, -o -, or -S")
    data = _read(input)
    result = opt_bytes(data, pipeline, print_after=print_after, print_after_all=print_after_all,
                       verify_each=verify_each, time_passes=time_passes, text=text, err=sys.stderr)
    _write(output or "-", result)
