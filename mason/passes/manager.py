"""The pass manager: named passes, pipeline strings and running them, like LLVM's ``opt`` and
``xdsl-opt``.

A pass is a small frozen dataclass with a ``name`` and ``run(graph) -> Graph`` that never mutates
its input; its dataclass fields are its options. ``@register_pass`` puts it in :data:`PASSES`.
A pipeline is a string::

    verify,hoist-config,dedupe,prune{targets=app,test}

Passes are separated by commas; options go in braces as ``key=value`` pairs separated by commas.
A value is a bare word, a ``"quoted string"`` (JSON escapes) or a ``{braced group}`` kept as
raw text (braces nest). For a list-valued option the value is a comma-separated list: a comma
followed by an element without ``=`` continues the list of the key before it, so
``prune{targets=a,b}`` names two targets. A boolean option may be given bare (``p{flag}``) when it
comes first. Option names are kebab-case spellings of the field names.
"""

from __future__ import annotations

import json
import sys
import time
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable, ClassVar, Iterable, TextIO, TypeVar

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph
from mason.ir.text import format_graph

__all__ = [
    "Pass", "PASSES", "register_pass", "parse_pipeline", "format_pipeline", "pipeline_for_level",
    "run_pipeline", "LEVELS",
]

LEVELS = {
    0: "verify",
    1: "verify,hoist-config,dedupe,prune",
    2: "verify,hoist-config,dedupe,prune,merge",
}


@dataclass(frozen=True)
class Pass:
    """Base of every pass. Subclasses set ``name`` (kebab-case, equal to their module's name)
    and implement :meth:`run`; their dataclass fields are their options."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph) -> Graph:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in fields(cls)]

    def __str__(self) -> str:
        """The pipeline spelling: the name, then non-default options in braces."""
        opts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.default is not MISSING and v == f.default:
                continue
            if f.default_factory is not MISSING and v == f.default_factory():
                continue
            opts.append(f"{f.name.replace('_', '-')}={_format_value(v)}")
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


PASSES: dict[str, type[Pass]] = {}
P = TypeVar("P", bound=type)


def register_pass(cls: P) -> P:
    """Class decorator: add a pass to :data:`PASSES`. A pass in ``mason.passes`` must live in
    the module named after it (``hoist-config`` in ``hoist_config.py``)."""
    name = getattr(cls, "name", "")
    if not name or not all(c.isalnum() or c == "-" for c in name) or name != name.lower():
        raise ValueError(f"pass {cls.__name__}: name {name!r} is not kebab-case")
    mod = cls.__module__
    if mod.startswith("mason.passes.") and mod.rsplit(".", 1)[1].replace("_", "-") != name:
        raise ValueError(f"pass {name!r} must live in mason/passes/{name.replace('-', '_')}.py, not {mod}")
    old = PASSES.get(name)
    if old is not None and old is not cls and (old.__module__, old.__qualname__) != (mod, cls.__qualname__):
        raise ValueError(f"pass {name!r} is registered twice ({old.__module__} and {mod})")
    PASSES[name] = cls  # type: ignore[assignment]
    return cls


def _valid(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none"


def pipeline_for_level(level: int) -> str:
    """The pipeline of ``-O<level>``: 0 = verify, 1 = verify,hoist-config,dedupe,prune (the
    default), 2 = -O1 + merge."""
    try:
        return LEVELS[int(level)]
    except (KeyError, ValueError, TypeError):
        raise MasonError(f"unknown optimization level {level!r} (valid: 0, 1, 2)") from None


# ================================================================ parsing

class _Parser:
    """A hand-written recursive-descent parser over the pipeline text, keeping offsets so
    errors point at the offending character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def error(self, message: str, at: int | None = None) -> MasonError:
        col = (self.i if at is None else at) + 1
        return MasonError(message, SourceLoc("<pipeline>", 1, col), self.text)

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t", "\n", "\r") and self.peek():
            self.i += 1

    def name(self, what: str) -> tuple[str, int]:
        self.skip_ws()
        start = self.i
        while self.peek() and (self.peek().isalnum() or self.peek() in "-_."):
            self.i += 1
        if self.i == start:
            got = f"{self.peek()!r}" if self.peek() else "the end"
            raise self.error(f"expected a {what}, found {got}")
        return self.text[start:self.i], start

    def pipeline(self) -> list[tuple[str, int, list[tuple[str, int, list[str]]]]]:
        """[(pass name, offset, [(option key, offset, [values])])]."""
        out = []
        self.skip_ws()
        if not self.peek():
            return out
        while True:
            name, at = self.name("pass name")
            self.skip_ws()
            opts: list[tuple[str, int, list[str]]] = []
            if self.peek() == "{":
                self.i += 1
                opts = self.options()
            out.append((name, at, opts))
            self.skip_ws()
            if not self.peek():
                return out
            if self.peek() != ",":
                raise self.error(f"expected ',' or the end after pass {name!r}, found {self.peek()!r}")
            self.i += 1

    def options(self) -> list[tuple[str, int, list[str]]]:
        opts: list[tuple[str, int, list[str]]] = []
        self.skip_ws()
        if self.peek() == "}":
            self.i += 1
            return opts
        while True:
            self.skip_ws()
            start = self.i
            word = self.value() if self.peek() in ('"', "{") else self.bare(stop="=,}")
            self.skip_ws()
            if self.peek() == "=":
                if self.text[start] in ('"', "{") or not word:
                    raise self.error("expected an option name before '='", start)
                self.i += 1
                self.skip_ws()
                opts.append((word, start, [self.value()]))
            elif opts:  # a further element of the previous key's list
                opts[-1][2].append(word)
            else:
                opts.append((word, start, []))  # a bare flag
            self.skip_ws()
            c = self.peek()
            if c == "}":
                self.i += 1
                return opts
            if c != ",":
                raise self.error("unterminated options: expected ',' or '}'" if not c
                                 else f"expected ',' or '}}' in options, found {c!r}")
            self.i += 1

    def bare(self, stop: str) -> str:
        start = self.i
        while self.peek() and self.peek() not in stop and self.peek() not in '"{':
            self.i += 1
        return self.text[start:self.i].strip()

    def value(self) -> str:
        c = self.peek()
        if c == '"':
            start = self.i
            self.i += 1
            while True:
                ch = self.peek()
                if not ch:
                    raise self.error("unterminated string", start)
                self.i += 1
                if ch == "\\":
                    self.i += 1
                elif ch == '"':
                    break
            try:
                return json.loads(self.text[start:self.i])
            except ValueError as e:
                raise self.error(f"bad string: {e}", start) from None
        if c == "{":
            start = self.i
            depth = 0
            while True:
                ch = self.peek()
                if not ch:
                    raise self.error("unbalanced '{'", start)
                self.i += 1
                if ch == '"':
                    self.i -= 1
                    self.value()
                    continue
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        return self.text[start:self.i]
        return self.bare(stop=",}=")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _convert(cls: type[Pass], key: str, values: list[str], hint: Any, err: Callable[[str], MasonError]) -> Any:
    origin = typing.get_origin(hint)
    if origin in (tuple, list, set, frozenset):
        items = [v for v in values if v != ""] if values != [""] else []
        return tuple(items) if origin is not list else list(items)
    if hint is bool:
        if not values:
            return True
        if len(values) == 1 and values[0].lower() in _TRUE | _FALSE:
            return values[0].lower() in _TRUE
        raise err(f"option {key!r} of pass {cls.name!r} takes true or false, not {','.join(values)!r}")
    if not values:
        raise err(f"option {key!r} of pass {cls.name!r} needs a value ({key}=...)")
    if len(values) != 1:
        raise err(f"option {key!r} of pass {cls.name!r} takes one value, not a list")
    if hint is int:
        try:
            return int(values[0], 0)
        except ValueError:
            raise err(f"option {key!r} of pass {cls.name!r} takes an integer, not {values[0]!r}") from None
    return values[0]


def _load_builtin_passes() -> None:
    import mason.passes  # noqa: F401  (imports every built-in pass module)


def parse_pipeline(text: str) -> list[Pass]:
    """The passes of a pipeline string, configured. An unknown pass or option, or a bad value,
    is a MasonError that lists the valid names and points at the offending character."""
    _load_builtin_passes()
    p = _Parser(text)
    out: list[Pass] = []
    for name, at, opts in p.pipeline():
        cls = PASSES.get(name)
        if cls is None:
            raise p.error(f"unknown pass {name!r} (valid: {_valid(PASSES)})", at)
        hints = typing.get_type_hints(cls)
        by_opt = {f.name.replace("_", "-"): f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, kat, values in opts:
            f = by_opt.get(key) or by_opt.get(key.replace("_", "-"))
            if f is None:
                raise p.error(f"unknown option {key!r} for pass {name!r} (valid: {_valid(by_opt)})", kat)
            if f.name in kwargs:
                raise p.error(f"option {key!r} given twice for pass {name!r}", kat)
            kwargs[f.name] = _convert(cls, key, values, hints.get(f.name, str), lambda m, a=kat: p.error(m, a))
        try:
            out.append(cls(**kwargs))
        except MasonError as e:
            raise p.error(f"pass {name!r}: {e.message}", at) from None
    return out


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list, set, frozenset)):
        return ",".join(_format_value(x) for x in v)
    s = str(v)
    if not s or any(c in s for c in ',{}="') or s != s.strip():
        return json.dumps(s)
    return s


def format_pipeline(passes: Iterable[Pass]) -> str:
    """The pipeline string of configured passes (parses back to equal passes)."""
    return ",".join(str(p) for p in passes)


# ================================================================ running

def _check_names(names: Iterable[str], what: str) -> set[str]:
    _load_builtin_passes()
    s = set(names)
    bad = sorted(s - set(PASSES))
    if bad:
        raise MasonError(f"{what}: unknown pass {bad[0]!r} (valid: {_valid(PASSES)})")
    return s


def run_pipeline(graph: Graph, pipeline: str | Iterable[Pass], *, print_after: Iterable[str] = (),
                 print_after_all: bool = False, verify_each: bool = False, time_passes: bool = False,
                 out: TextIO | None = None) -> Graph:
    """Run ``pipeline`` (a string or configured passes) over ``graph`` and return the result.

    ``print_after`` names passes after which the IR is printed (text form) to ``out`` (default
    stderr); ``print_after_all`` prints after every pass; ``verify_each`` runs ``verify`` after
    every pass (an error names the pass that broke the graph); ``time_passes`` prints each
    pass's wall time in ms, then the total."""
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    wanted = _check_names(print_after, "--print-after")
    stream = out if out is not None else sys.stderr
    verifier = PASSES["verify"]() if verify_each else None
    timings: list[tuple[str, float]] = []
    for p in passes:
        t0 = time.perf_counter()
        graph = p.run(graph)
        timings.append((str(p), (time.perf_counter() - t0) * 1000.0))
        if verifier is not None and p.name != "verify":
            try:
                verifier.run(graph)
            except MasonError as e:
                raise MasonError(f"after pass {p}: {e.message}", e.loc, e.source_line) from None
        if print_after_all or p.name in wanted:
            stream.write(f"// -----// IR after {p} //----- //\n")
            stream.write(format_graph(graph))
    if time_passes:
        total = sum(t for _, t in timings)
        stream.write("// pass timings (ms)\n")
        for n, t in timings:
            stream.write(f"{t:10.3f}  {n}\n")
        stream.write(f"{total:10.3f}  total\n")
    if hasattr(stream, "flush"):
        stream.flush()
    return graph
