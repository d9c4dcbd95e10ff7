"""``mason opt IN.llb --passes PIPELINE -o OUT.llb``: run passes over an LLB Definition, like
LLVM's ``opt``. ``-O0``/``-O1``/``-O2`` pick a preset (``-O1`` when neither is given); IR dumps
(``--print-after``, ``--print-after-all``) and ``--time-passes`` go to stderr. A file with one
output is written as a bare Definition (what BuildKit reads), several as mason's Definition stream.
The work is :func:`opt_bytes`, callable from Python.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import uuid
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
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise MasonError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def check_writable(path: str) -> None:
    """Fail now if :func:`write_output` could not create ``path`` (its directory is missing, or
    it is a directory), so a command with several outputs writes all of them or none."""
    if path == "-":
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise MasonError(f"cannot write {path}: Is a directory")
    if not os.path.isdir(parent):
        raise MasonError(f"cannot write {path}: {parent} is not a directory")


def write_output(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (``-``: stdout) all at once: a regular file is written beside
    itself and renamed into place, so a failure never leaves a half-written or stray file."""
    if path == "-":
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:  # a text-only stdout (an embedding application's StringIO)
            sys.stdout.write(data.decode("utf-8", "surrogateescape"))
        return
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            with open(path, "wb") as f:  # /dev/stdout, a FIFO: no rename over those
                f.write(data)
            return
        d, base = os.path.split(os.path.abspath(path))
        tmp = os.path.join(d, f".{base}.mason-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        why = getattr(e, "strerror", None) or e
        raise MasonError(f"cannot write {path}: {why}") from None


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
    write_output(output or "-", result)
