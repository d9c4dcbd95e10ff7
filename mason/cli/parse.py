"""``mason parse [--dump] FILE``: parse a Dockerfile and report its errors.

Without ``--dump`` both frontend layers run (syntax, then typed instructions) and nothing is
printed for a good file; with ``--dump`` only the syntax layer runs and its node tree is printed
in the format of BuildKit's parser tests. Warnings (e.g. empty continuation lines) go to stderr.
The work is :func:`parse_file`, callable from Python.
"""

from __future__ import annotations

import sys

import click

from mason.ir.errors import MasonError


def read_source(path: str) -> str:
    """The text of ``path`` (``-``: stdin). Bytes that are not UTF-8 are kept as surrogates, so
    they print back as ``\\xNN`` like BuildKit prints them; a read failure is a MasonError."""
    try:
        if path == "-":
            stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
            data = stdin.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise MasonError(f"cannot read {path}: {e.strerror or e}") from None
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "surrogateescape")


def parse_file(path: str, dump: bool = False, syntax_only: bool = False) -> tuple[str, list[str]]:
    """Parse ``path``: (the ``--dump`` text or "", warning lines). Raises MasonError."""
    from mason.frontends.dockerfile.syntax import dump as dump_tree
    from mason.frontends.dockerfile.syntax import parse_dockerfile

    text = read_source(path)
    name = "<stdin>" if path == "-" else path
    result = parse_dockerfile(text, name)
    warnings = [f"{loc}: warning: {msg}" for msg, loc in result.warnings]
    if dump:
        return dump_tree(result), warnings
    if not syntax_only:
        try:
            from mason.frontends.dockerfile.instructions import parse_instructions
        except ImportError:  # the instructions layer is optional for this command
            parse_instructions = None
        if parse_instructions is not None:
            parse_instructions(result, text)
    return "", warnings


@click.command()
@click.argument("file", metavar="FILE|-")
@click.option("--dump", is_flag=True, help="Print the syntax tree (BuildKit's parser test format).")
@click.option("--syntax-only", is_flag=True, help="Run the syntax layer only (no instruction checks).")
def parse(file: str, dump: bool, syntax_only: bool) -> None:
    """Parse a Dockerfile and report errors (or --dump its syntax tree)."""
    from mason.cli.main import echo_err

    out, warnings = parse_file(file, dump=dump, syntax_only=syntax_only)
    for w in warnings:
        echo_err(w)
    if out:
        data = out.encode("utf-8", "surrogateescape")  # raw bytes back, as Go prints them
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))
