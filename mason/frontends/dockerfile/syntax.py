"""The Dockerfile syntax layer: source text → the generic node tree of BuildKit's parser.

``parse_dockerfile(text, filename)`` returns a :class:`ParseResult` whose nodes split their
arguments exactly as BuildKit's parser does (its golden ``result`` files are the conformance
suite), with file:line:col locations, or raises :class:`MasonError` with a location. Unknown
instructions, unknown flags and instructions before FROM are not errors here: the instructions
layer judges them.

The structure is ``grammars/dockerfile.lark``, parsed by lark (LALR, strict, with
``propagate_positions``) over the tokens of the reader in ``syntax_lexer`` (directives, line
splicing, comments, heredoc bodies, and the contextual split of each instruction's arguments).
The file is read item by item: an item is an instruction with the comments above it. An LALR
parse depends only on the sequence of token *types*, so lark's tree for an item is the same for
every item of the same type sequence: lark parses each distinct sequence once (start symbol
``item``), the :class:`_Shapes` transformer turns its tree into a :class:`Shape` (which token
becomes which field of the node, compiled to one expression) and later items of that sequence
replay it. With ``replay=False`` lark parses the whole file instead (start symbol ``file``, one
parse, nothing remembered); the tests check that both give the same result.

Syntax errors — lark's (``UnexpectedInput``) and the reader's — become ``MasonError`` with
file:line:col in :func:`_to_mason_error`, the only place that sees them.
"""


from __future__ import annotations

import bisect
import functools
import hashlib
import os
import uuid
from operator import itemgetter

import lark
from lark import Token, Transformer
from lark.exceptions import UnexpectedInput
from lark.lexer import Lexer

from mason.frontends.dockerfile.directives import detect_directive
from mason.frontends.dockerfile.nodes import Node, ParseResult
from mason.frontends.dockerfile.syntax_dump import dump, go_quote
from mason.frontends.dockerfile.syntax_lexer import (
    COMMENT_TYPES,
    Item,
    Reader,
    ReaderError,
    map_offset,
)
from mason.frontends.dockerfile.syntax_words import GO_SPACE
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.paths import cache_root

__all__ = ["parse_dockerfile", "dump", "go_quote", "detect_directive"]

_MAX_SHAPES = 4096  # distinct item type sequences remembered (bench/parse_bench.py's file has 12)


class _Tokens(Lexer):
    """lark's side of the reader: the tokens are already made; hand them over."""

    def __init__(self, conf):
        pass

    def lex(self, tokens):  # type: ignore[override]
        return iter(tokens)


def grammar_text(name: str) -> str:
    """A grammar of ``mason/grammars`` (read as a file next to this package: importlib.resources
    would load its reader machinery, zipfile included, on every build)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(os.path.dirname(os.path.dirname(here)), "grammars", name), encoding="utf-8") as f:
        return f.read()


@functools.cache
def _parser() -> lark.Lark:
    grammar = grammar_text("dockerfile.lark")
    options = dict(parser="lalr", lexer=_Tokens, start=["file", "item"],
                   propagate_positions=True, maybe_placeholders=False, strict=True)
    # lark's grammar analysis costs ~60 ms per process; its cache (a pickle keyed by grammar,
    # options and lark version) loads in ~3 ms. Written to a temporary name and renamed, so
    # concurrent processes never read half a file; any trouble just means no cache.
    key = hashlib.sha256(f"{lark.__version__}\0{grammar}".encode()).hexdigest()[:16]
    path = cache_root() / "lark" / f"dockerfile-{key}.pickle"
    if path.exists():
        try:
            return lark.Lark(grammar, cache=str(path), **options)
        except Exception:  # noqa: BLE001 - a bad cache file is not the user's problem
            pass
    parser = lark.Lark(grammar, **options)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".lark-{os.getpid()}-{uuid.uuid4().hex}.pickle"  # must not exist yet
        lark.Lark(grammar, cache=str(tmp), **options)  # writes the analysis to tmp
        os.replace(tmp, path)
    except OSError:
        pass
    return parser


def parse_dockerfile(text: str, filename: str = "Dockerfile", *, replay: bool = True) -> ParseResult:
    """Parse Dockerfile source into BuildKit's generic node tree; raise ``MasonError`` with a
    location for a syntax error. ``replay=False`` parses the whole file with lark in one go."""
    reader = Reader(text, filename)
    try:
        reader.read_header()
        return _parse_items(reader) if replay else _parse_file(reader)
    except (UnexpectedInput, ReaderError) as e:
        raise _to_mason_error(e, reader.lines, filename) from None


# -- shapes: lark's tree of an item, as token indices -------------------------------------------


def _getter(indices: tuple[int, ...]):
    """values → the tuple of ``values[i]`` for ``indices``."""
    if not indices:
        return _none
    if len(indices) == 1:
        i = indices[0]
        return lambda vals: (vals[i],)
    return itemgetter(*indices)


def _none(vals) -> tuple:
    return ()


class Shape:
    """What lark's tree says about an item of one token-type sequence: the index of the keyword
    token (whose value is the name), of the flag, argument, heredoc and kept comment tokens, the
    exec-form mark, and the nested instruction of ONBUILD. ``make(vals, line, loc)`` builds the
    node of an item without ONBUILD nesting straight from its token values."""

    __slots__ = ("name", "flags", "args", "heredocs", "comments", "json", "nested", "indices", "make")

    def __init__(self, name: int, flags, args, heredocs, json: bool, nested: "Shape | None"):
        self.indices = (name, flags, args, heredocs, ())
        self.name = name
        self.flags = _getter(flags)
        self.args = _getter(args)
        self.heredocs = _getter(heredocs)
        self.comments = _none
        self.json = json
        self.nested = nested
        self.make = None

    def with_comments(self, comments: tuple[int, ...]) -> "Shape":
        self.indices = self.indices[:4] + (comments,)
        self.comments = _getter(comments)
        return self


def _compile(shape: Shape):
    """``make`` for a shape: one expression that picks the token values lark's tree names
    (generated code, as dataclasses and namedtuple generate theirs: calling four getters per
    item instead costs about a tenth of the syntax layer's time)."""
    name, flags, args, heredocs, comments = shape.indices

    def pick(indices: tuple[int, ...]) -> str:
        return "(" + "".join(f"v[{int(i)}], " for i in indices) + ")"

    src = (f"lambda v, line, loc: Node(v[{int(name)}], {pick(args)}, {pick(flags)}, {pick(heredocs)}, "
           f"{bool(shape.json)}, None, line, loc, {pick(comments)})")
    return eval(src, {"Node": Node})  # noqa: S307 -- integers and names of our own only


class _Shapes(Transformer):
    """lark tree → :class:`Shape`. Token ``start_pos`` is the token's index in the item (or
    in the file, for a whole-file parse)."""

    def comments(self, children):
        kept = []
        for tok in children:
            if tok.type == "COMMENT_BREAK":
                kept = []  # an empty comment line restarts BuildKit's PrevComment
            else:
                kept.append(tok.start_pos)
        return tuple(kept)

    def flags(self, children):
        return tuple(t.start_pos for t in children if t.type == "FLAG")

    def exec_form(self, children):
        return ("json", tuple(t.start_pos for t in children if t.type == "STRING"))

    def shell_form(self, children):
        return ("args", (children[0].start_pos,))

    def pair(self, children):
        key, sep, value = children
        return ("args", (key.start_pos, value.start_pos, sep.start_pos))

    def legacy_pair(self, children):
        key, sep, value = children
        return ("args", (key.start_pos, value.start_pos, sep.start_pos))

    def heredoc(self, children):
        return ("heredoc", children[0].start_pos)

    def instruction(self, children):
        keyword, flags, *parts = children
        args: list[int] = []
        heredocs: list[int] = []
        json = False
        nested = None
        for part in parts:
            if isinstance(part, Token):  # WORD, TEXT, IGNORED
                args.append(part.start_pos)
            elif isinstance(part, Shape):  # ONBUILD's instruction; its heredocs are ONBUILD's too
                nested = part
                heredocs = list(part.indices[3])
            elif part[0] == "heredoc":
                heredocs.append(part[1])
            else:
                args += part[1]
                json = json or part[0] == "json"
        return Shape(keyword.start_pos, tuple(flags), tuple(args), tuple(heredocs), json, nested)

    run = command = copy = volume = words = arg = text = pairs = healthcheck = onbuild = other = instruction

    def item(self, children):
        comments, shape = children
        return shape.with_comments(comments)

    def file(self, children):
        return [c for c in children if isinstance(c, Shape)]


_SHAPES: dict[tuple[str, ...], Shape] = {}


def _lark_tokens(item: Item, base: int) -> list[Token]:
    """The item's tokens for lark: ``start_pos`` = index (counted from ``base``), physical
    line and column; the end of an instruction's token is the item's last line."""
    out = []
    end = item.end + 1
    for i, (typ, val) in enumerate(zip(item.types, item.vals, strict=False)):
        ln, col = item.position(i)
        out.append(Token(typ, val, base + i, ln + 1, col, ln + 1 if typ in COMMENT_TYPES else end, None, base + i + 1))
    n = base + len(item.types)  # the end of the instruction; not in the type sequence (all items have it)
    out.append(Token("_NL", "", n, end, item.end_col, end, item.end_col, n))
    return out


def _learn(item: Item, key: tuple[str, ...]) -> Shape:
    """Parse an item whose type sequence is new; remember the shape of lark's tree."""
    try:
        tree = _parser().parse(_lark_tokens(item, 0), start="item")
    except UnexpectedInput as e:
        e.locate = lambda index: (item, index)  # type: ignore[attr-defined]
        raise
    shape = _Shapes().transform(tree)
    if shape.nested is None:
        shape.make = _compile(shape)
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape


# -- nodes ---------------------------------------------------------------------------------------


def _node(shape: Shape, vals: list, base: int, item: Item, file: str, comments: tuple) -> Node:
    """The node of an item; ``vals`` holds the item's token values from index ``base``."""
    loc = SourceLoc(file, item.start + 1, item.col0 + 1, item.end + 1, item.end_col)
    nested = None if shape.nested is None else _nested(shape.nested, vals, base, item, file, loc)
    return Node(vals[shape.name], shape.args(vals), shape.flags(vals), shape.heredocs(vals), shape.json, nested,
                item.line, loc, comments)


def _nested(shape: Shape, vals: list, base: int, item: Item, file: str, outer: SourceLoc) -> Node:
    """ONBUILD's instruction: it starts at its keyword and runs to the end of the line."""
    off = item.offs[shape.name - base]
    ln, col = map_offset(off, item.start, item.col0, item.segs)
    loc = SourceLoc(file, ln + 1, col, outer.end_line, outer.end_col)
    nested = None if shape.nested is None else _nested(shape.nested, vals, base, item, file, outer)
    return Node(vals[shape.name], shape.args(vals), shape.flags(vals), shape.heredocs(vals), shape.json, nested,
                item.line[off:].rstrip(GO_SPACE), loc)


def _result(reader: Reader, nodes: list[Node]) -> ParseResult:
    first, last = nodes[0].loc, nodes[-1].loc
    whole = SourceLoc(reader.file, first.line, first.col, last.end_line, last.end_col)
    return ParseResult(tuple(nodes), tuple(reader.directives), reader.escape, tuple(reader.warnings), whole)


def _parse_items(reader: Reader) -> ParseResult:
    """Item by item, each token-type sequence parsed by lark once and replayed after that."""
    file = reader.file
    shapes = _SHAPES
    nodes: list[Node] = []
    append = nodes.append
    for fields in reader.items():
        types, vals, _, line, start, col0, _, end, end_col = fields
        key = tuple(types)
        shape = shapes.get(key)
        if shape is None:
            shape = _learn(Item(*fields), key)
        make = shape.make
        if make is not None:
            append(make(vals, line, SourceLoc(file, start + 1, col0 + 1, end + 1, end_col)))
        else:
            append(_node(shape, vals, 0, Item(*fields), file, shape.comments(vals)))
    if not nodes:  # the grammar says what is missing: let lark say it
        return _parse_file(reader, read_items=False)
    return _result(reader, nodes)


def _parse_file(reader: Reader, read_items: bool = True) -> ParseResult:
    """The whole file in one lark parse (start symbol ``file``), nothing remembered."""
    file = reader.file
    parser = _parser().parse_interactive(None, start="file")
    bases: list[int] = []
    items: list[Item] = []
    vals: list = []

    def locate(index: int):
        k = bisect.bisect_right(bases, index) - 1
        return (items[k], index - bases[k]) if k >= 0 else (None, index)

    try:
        for d in reader.directives:
            parser.feed_token(Token("DIRECTIVE", d.value, len(vals), d.loc.line, d.loc.col, d.loc.line, None,
                                    len(vals) + 1))
            vals.append(d.value)
        if read_items:
            for fields in reader.items():
                item = Item(*fields)
                bases.append(len(vals))
                items.append(item)
                for tok in _lark_tokens(item, len(vals)):
                    parser.feed_token(tok)
                vals += item.vals
                vals.append("")  # _NL's
        for typ, val, idx in reader.trailing:
            parser.feed_token(Token(typ, val, len(vals), idx + 1, 1, idx + 1, None, len(vals) + 1))
            vals.append(val)
        last = len(reader.lines)
        tree = parser.feed_eof(Token("$END", "", len(vals), last, 1, last, None, len(vals)))
    except UnexpectedInput as e:
        e.locate = locate  # type: ignore[attr-defined]
        raise
    shapes = _Shapes().transform(tree)
    nodes = [_node(shape, vals, base, item, file, shape.comments(vals))
             for shape, base, item in zip(shapes, bases, items, strict=False)]
    return _result(reader, nodes)


# -- errors ----------------------------------------------------------------------------------------


def _to_mason_error(e: Exception, lines: list[str], file: str) -> MasonError:
    """The one place syntax errors become ``MasonError``: the reader's, and lark's unexpected
    tokens, named the way BuildKit names them."""
    if isinstance(e, ReaderError):
        return _error(lines, file, e.message, e.idx, e.col, e.end_idx)
    tok = getattr(e, "token", None)
    expected = getattr(e, "expected", None) or set()
    stack = e.state.value_stack if getattr(e, "state", None) is not None else []
    locate = getattr(e, "locate", None)

    def at(token: Token, shift: int = 0) -> MasonError:
        item, i = locate(token.start_pos) if locate is not None else (None, 0)
        if item is None:
            return _error(lines, file, message, token.line - 1, token.column + shift)
        ln, col = map_offset(item.offs[i] + shift, item.start, item.col0, item.segs)
        return _error(lines, file, message, ln, col, item.end)

    if tok is None:  # not a token error (lark's grammar is LALR: it should not happen)
        message = str(e).strip().splitlines()[0]
        return _error(lines, file, message, 0)
    if tok.type == "JSON_VALUE":
        message = "when using JSON array syntax, arrays must be comprised of strings only"
        return at(tok)
    if "SPACE" in expected and stack and getattr(stack[-1], "type", None) == "KEY":
        key = stack[-1]  # a legacy `ENV name` without a value: BuildKit points after the name
        keyword = next((v for v in reversed(stack) if getattr(v, "type", None) in ("ENV", "LABEL")), None)
        message = f"{keyword.type if keyword is not None else 'ENV'} must have two arguments"
        return at(key, len(key))
    if tok.type == "WORD" and "KEY" in expected:
        message = f"Syntax error - can't find = in {go_quote(tok)}. Must be of the form: name=value"
        return at(tok)
    if tok.type in ("$END", "TRAILING_COMMENT") and "RUN" in expected:  # an instruction was due
        return _error(lines, file, "file with no instructions", len(lines) - 1)
    message = f"unexpected {tok.type} {go_quote(str(tok))}"
    return at(tok)


def _error(lines: list[str], file: str, message: str, idx: int, col: int = 1,
           end_idx: int | None = None) -> MasonError:
    """A located error at line index ``idx`` (0-based), column ``col`` (1-based), clamped into
    the file, with the physical source line."""
    if not lines:
        return MasonError(message, SourceLoc(file, 1, 1), "")
    idx = min(max(idx, 0), len(lines) - 1)
    src = lines[idx].rstrip("\r")
    col = min(max(col, 1), len(src) + 1)
    end = None if end_idx is None else end_idx + 1
    return MasonError(message, SourceLoc(file, idx + 1, col, end), src)
