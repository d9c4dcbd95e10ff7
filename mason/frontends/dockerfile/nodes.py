"""The generic syntax tree of a Dockerfile (BuildKit's parser ``Node``), shared by the syntax
layer that builds it and the instructions layer that reads it.

A Dockerfile parses to a list of :class:`Node`, one per instruction, each carrying its source
span. Nothing here knows instruction semantics: flags are kept as raw ``--name[=value]`` words and
arguments as strings, exactly as BuildKit's parser keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mason.ir.errors import SourceLoc


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One heredoc attached to an instruction (``<<EOF`` … ``EOF``)."""

    name: str  # the delimiter word, e.g. "EOF"
    content: str  # the body, including its final newline
    expand: bool = True  # False for a quoted delimiter (<<'EOF' / <<"EOF")
    chomp: bool = False  # True for <<-EOF (leading tabs stripped)
    fd: int = 0  # the file descriptor written before the operator (``3<<EOF``), 0 if none


@dataclass(frozen=True, slots=True)
class Node:
    """One instruction.

    ``name`` is lower-cased (``"run"``), ``original`` the full original text of the instruction
    (continuations joined), ``flags`` the raw flag words (``"--mount=type=cache,target=/x"``),
    ``args`` the arguments as BuildKit's parser splits them (for ENV/LABEL: key, value, separator
    triples; for JSON form: the array elements). ``json`` is True when the arguments came from an
    exec-form (JSON array). ``onbuild`` holds the nested instruction of ``ONBUILD``.
    ``loc`` spans the instruction: ``line``/``col`` where it starts, ``end_line`` its last line.
    """

    name: str
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    json: bool = False
    onbuild: "Node | None" = None
    original: str = ""
    loc: SourceLoc | None = field(default=None, compare=False)
    # the comment lines right above the instruction (BuildKit's PrevComment), for checks
    comments: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Directive:
    """A parser directive at the top of the file (``# syntax=…``, ``# escape=…``, ``# check=…``)."""

    name: str
    value: str
    loc: SourceLoc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The whole file: directives, the escape character in force, instructions, and warnings
    (e.g. empty continuation lines), each warning a (message, location) pair."""

    nodes: tuple[Node, ...]
    directives: tuple[Directive, ...] = ()
    escape: str = "\\"
    warnings: tuple[tuple[str, SourceLoc], ...] = ()
    loc: SourceLoc | None = field(default=None, compare=False)  # span of the whole file's node
