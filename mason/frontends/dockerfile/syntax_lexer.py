"""The reader of the Dockerfile syntax layer: source text → the tokens of
``grammars/dockerfile.lark``, one item (an instruction with the comments above it) at a time.

It does what a grammar cannot do at LALR(1) speed and what BuildKit does before it splits an
instruction: it reads the parser directives at the top (BOM, ``# escape=`` choosing the escape
character), splices continuation lines (also across comment and empty lines, which warn) like a
C preprocessor, drops blank lines, keeps comments for the next instruction, and cuts heredoc
bodies out of the text after the instruction that names them. Then, as a contextual lexer, it
splits the instruction with the tokenizer of the argument form its keyword expects (BuildKit's
word splitters in ``syntax_words``). What the tokens form is the grammar's business: a token
sequence that does not fit (an ENV without a value, an exec form holding a number) is a syntax
error raised by lark.

Each token is a type, a value and an offset: for an instruction's tokens the offset in the
spliced instruction line (exact for the keyword, the first flag, the arguments' start and the
tokens that can be a syntax error; words share their group's offset), for a comment token its
line index. Reader errors (a bad directive, an unterminated heredoc, an over-long line) are
raised as :class:`ReaderError`; the syntax layer turns them, and lark's, into ``MasonError``.
"""

from __future__ import annotations

import functools
import re

from mason.frontends.dockerfile.directives import DIRECTIVE, VALID_DIRECTIVES
from mason.frontends.dockerfile.nodes import Directive, Heredoc
from mason.frontends.dockerfile.syntax_dump import go_quote
from mason.frontends.dockerfile.syntax_heredoc import HeredocError, heredocs_from_line
from mason.frontends.dockerfile.syntax_words import (
    GO_SPACE,
    RE_WHITESPACE,
    NotStringArray,
    go_lower,
    parse_json_array,
    parse_words,
    split_command,
    split_health,
)
from mason.ir.errors import SourceLoc

# Go's regexp \s is [\t\n\f\r ]; $ is the end of the text.
MAX_LINE_BYTES = 64 * 1024  # bufio.Scanner's token limit, newline included

_SPACE_SET = frozenset(GO_SPACE)
# an instruction word, one space, arguments that neither start with "-" nor start or end with
# whitespace: split_command's result without the general machinery
SIMPLE_LINE = re.compile(r"([^\s][^\t\v\f\r ]*) ([^\s-](?:.*[^\s])?)\Z", re.S)
SIMPLE_FLAGS_LINE = re.compile(r"([^\s][^\t\v\f\r ]*) ((?:--[!#-&(-\[\]-~]+ )+)([^\s-](?:.*[^\s])?)\Z", re.S)

# the keyword token of each instruction BuildKit's parser knows; any other name is OTHER
KEYWORDS = {name.lower(): name for name in (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")}
_LOWER: dict[str, str] = {}
_MAYBE_JSON = frozenset(("run", "cmd", "entrypoint", "shell"))
_MAYBE_JSON_LIST = frozenset(("add", "copy", "volume"))
_WORDS = frozenset(("expose", "from"))
_STRING = frozenset(("maintainer", "stopsignal", "user", "workdir"))
COMMENT_TYPES = frozenset(("COMMENT", "COMMENT_BREAK", "TRAILING_COMMENT"))


class ReaderError(Exception):
    """An error found while reading lines: at line index ``idx`` (0-based), column ``col``
    (1-based), in an instruction whose last line index is ``end_idx``."""

    def __init__(self, message: str, idx: int, col: int = 1, end_idx: int | None = None):
        super().__init__(message)
        self.message = message
        self.idx = idx
        self.col = col
        self.end_idx = end_idx


class Item:
    """One instruction's tokens (``types``/``vals``/``offs``, the comments above it first) and
    where it is: the spliced ``line``, its first line index ``start`` and column ``col0``
    (0-based), the splice map ``segs`` (None for a single physical line), its last line index
    ``end`` (after any heredoc bodies) and the column after its last character ``end_col``.
    :meth:`Reader.items` yields these fields as a plain tuple (cheaper); ``Item(*fields)``."""

    __slots__ = ("types", "vals", "offs", "line", "start", "col0", "segs", "end", "end_col")

    def __init__(self, types, vals, offs, line, start, col0, segs, end, end_col):
        self.types = types
        self.vals = vals
        self.offs = offs
        self.line = line
        self.start = start
        self.col0 = col0
        self.segs = segs
        self.end = end
        self.end_col = end_col

    def position(self, i: int) -> tuple[int, int]:
        """(line index, 1-based column) of token ``i``."""
        if self.types[i] in COMMENT_TYPES:
            return self.offs[i], 1
        return map_offset(self.offs[i], self.start, self.col0, self.segs)


def map_offset(offset: int, start: int, col0: int, segs) -> tuple[int, int]:
    """(line index, 1-based column) of ``offset`` in a spliced instruction line."""
    if segs is None:
        return start, col0 + offset + 1
    for loff, li, c0 in reversed(segs):
        if offset >= loff:
            return li, c0 + offset - loff + 1
    return start, col0 + 1


class Reader:
    """Reads one Dockerfile: ``read_header()`` (``directives``, ``escape``), then ``items()``;
    ``warnings`` and ``trailing`` (the comment tokens after the last instruction) after it."""

    def __init__(self, text: str, filename: str):
        self.file = filename
        if text.startswith("\ufeff"):  # a byte-order mark; columns count from after it
            text = text[1:]
        lines = text.split("\n")
        self.final_newline = lines[-1] == ""
        if self.final_newline:
            lines.pop()
        self.lines = lines
        self.warnings: list[tuple[str, SourceLoc]] = []
        self.trailing: list[tuple[str, str, int]] = []
        self.body = 0
        self.escape = "\\"
        self.directives: list[Directive] = []

    # -- directives -------------------------------------------------------------------------

    def read_header(self) -> None:
        """Read the parser directives at the top."""
        self.body, self.escape, self.directives = self._header()

    def _header(self) -> tuple[int, str, list[Directive]]:
        """The parser directives at the top: (index of the first line after them, escape
        character, directives)."""
        lines = self.lines
        esc = "\\"
        directives: list[Directive] = []
        seen: set[str] = set()
        i = 0
        while i < len(lines):
            tok = lines[i].rstrip("\r")
            content = tok.lstrip(GO_SPACE)
            if content[:1] != "#":
                break
            d = self._directive(content, i, len(tok) - len(content), seen)
            if d is None:
                break  # an ordinary comment: items() takes it
            directives.append(d)
            if d.name == "escape":
                esc = d.value
            i += 1
        return i, esc, directives

    def _directive(self, content: str, idx: int, col0: int, seen: set[str]) -> Directive | None:
        """BuildKit's DirectiveParser.ParseLine on a comment line while directives are allowed."""
        m = DIRECTIVE.match(content)
        if m is None:
            return None
        key = m.group(1).lower()
        if key not in VALID_DIRECTIVES:
            return None
        if key in seen:
            raise ReaderError(f"only one {key} parser directive can be used", idx, col0 + m.start(1) + 1)
        seen.add(key)
        value = m.group(2)
        if key == "escape" and value not in ("\\", "`"):
            raise ReaderError(f"invalid escape token '{value}' does not match ` or \\", idx, col0 + m.start(2) + 1)
        return Directive(key, value, SourceLoc(self.file, idx + 1, col0 + 1, idx + 1))

    # -- items ------------------------------------------------------------------------------

    def items(self):
        """Yield the fields of an :class:`Item` per instruction, in order; raise
        :class:`ReaderError` where reading fails (an over-long line: after the items before it)."""
        lines = self.lines
        n = len(lines)
        file = self.file
        esc = self.escape
        space = GO_SPACE
        space_set = _SPACE_SET
        late_error: ReaderError | None = None
        ctypes: list[str] = []  # the comments since the last instruction
        cvals: list[str] = []
        coffs: list[int] = []
        lex = lex_instruction
        i = self.body
        while i < n:
            raw = lines[i]
            if not raw:
                i += 1
                continue
            last = raw[-1]
            if (raw[0] in space_set or raw[0] == "#" or last == esc or last == "\r" or last == " "
                    or last == "\t" or len(raw) > MAX_LINE_BYTES // 4):
                # the general case: comments, indentation, continuations, CR, long lines
                if len(raw) > MAX_LINE_BYTES // 4 and self._too_long(i):
                    late_error = self._too_long_error(i)
                    break
                tok = raw.rstrip("\r")
                content = tok.lstrip(space)
                if content[:1] == "#":
                    comment = raw[1:].strip(space)
                    ctypes.append("COMMENT" if comment else "COMMENT_BREAK")
                    cvals.append(comment)
                    coffs.append(i)
                    i += 1
                    continue
                col0 = len(tok) - len(content)
                start = i
                end = content.rstrip(" \t")
                if not end or end[-1] != esc or (len(end) > 1 and end[-2] == esc):
                    if not content:
                        i += 1
                        continue
                    line = content
                    segs = None
                else:
                    line, segs, i, empty_cont, late_error = self._continued(end[:-1], i, col0, esc)
                    if empty_cont:
                        self.warnings.append(("Empty continuation line found in: " + line,
                                              SourceLoc(file, i + 1, 1, i + 1)))
                    if late_error is not None:
                        n = i + 1  # the scanner stopped at the long line
            else:
                line = raw
                start = i
                col0 = 0
                segs = None
            if ctypes:
                types, vals, offs = ctypes, cvals, coffs
                ctypes, cvals, coffs = [], [], []
            else:
                types, vals, offs = [], [], []
            if lex(line, esc, types, vals, offs, 0) and "<<" in line:
                i = self._heredocs(line, start, col0, segs, i, n, types, vals, offs)
                end_col = len(lines[i].rstrip("\r")) + 1
            else:
                end_col = len(line) + 1 if segs is None else len(lines[i].rstrip("\r")) + 1
            yield types, vals, offs, line, start, col0, segs, i, end_col
            i += 1
        self.trailing = [("TRAILING_COMMENT", v, o) for v, o in zip(cvals, coffs, strict=False)]
        if late_error is not None:
            raise late_error

    def _continued(self, first: str, i: int, col0: int, esc: str):
        """Join continuation lines after line ``i`` (whose text without the continuation
        character is ``first``): (line, segments, last line index, saw an empty line, error)."""
        lines = self.lines
        n = len(lines)
        space = GO_SPACE
        parts = [first]
        segs = [(0, i, col0)]
        length = len(first)
        empty_cont = False
        while i + 1 < n:
            tok = lines[i + 1].rstrip("\r")
            if len(tok) > MAX_LINE_BYTES // 4 and self._too_long(i + 1):
                return "".join(parts), segs, i, empty_cont, self._too_long_error(i + 1)
            i += 1
            s = tok.lstrip(space)
            if s[:1] == "#":
                continue
            if not s:
                empty_cont = True
                continue
            end = tok.rstrip(" \t")
            cont = end[-1] == esc and (len(end) == 1 or end[-2] != esc)
            if cont:
                tok = end[:-1]
            segs.append((length, i, 0))
            parts.append(tok)
            length += len(tok)
            if not cont:
                break
        return "".join(parts), segs, i, empty_cont, None

    def _too_long(self, idx: int) -> bool:
        raw = self.lines[idx]
        nl = 1 if idx < len(self.lines) - 1 or self.final_newline else 0
        return len(raw.encode("utf-8", "surrogateescape")) + nl > MAX_LINE_BYTES

    def _too_long_error(self, idx: int) -> ReaderError:
        return ReaderError(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES - 1}", idx)

    def _heredocs(self, line: str, start: int, col0: int, segs, i: int, n: int, types, vals, offs) -> int:
        """Read the bodies of the heredocs ``line`` names (BuildKit's heredocsFromLine) after
        line ``i``, as HEREDOC tokens; the index of the last line read."""
        try:
            found = heredocs_from_line(line)
        except HeredocError as e:
            ln, col = map_offset(line.find("<<"), start, col0, segs)
            raise ReaderError(str(e), ln, col, i) from None
        lines = self.lines
        for doc, word in found:
            body = []
            terminated = False
            while i + 1 < n:
                i += 1
                raw = lines[i]
                possible = raw.rstrip("\r")
                if doc.chomp:
                    possible = possible.lstrip("\t")
                if possible == doc.name:
                    terminated = True
                    break
                body.append(raw + "\n" if i < len(lines) - 1 or self.final_newline else raw)
            pos = line.find(word)
            if not terminated:
                ln, col = map_offset(pos if pos >= 0 else line.find("<<"), start, col0, segs)
                raise ReaderError(f"unterminated heredoc {go_quote(doc.name)}: no line {go_quote(doc.name)} "
                                  "before the end of the file", ln, col, n - 1)
            types.append("HEREDOC")
            vals.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
            offs.append(max(pos, 0))
        return i


# -- the contextual lexer of one instruction ----------------------------------------------------


def lex_instruction(line: str, esc: str, types: list, vals: list, offs: list, base: int) -> bool:
    """Append the tokens of the instruction ``line`` (BuildKit's ``newNodeFromLine``: keyword,
    flags, then the argument form the keyword expects); offsets are ``base`` + the offset in
    ``line``. True when the instruction may carry heredocs (shell-form RUN, COPY, ADD)."""
    m = SIMPLE_LINE.match(line)
    if m is not None:  # "NAME args" without flags or odd spacing: the common case
        cmd, rest = m.groups()
        off = m.start(2)
        flags = None
        dashdash = False
    elif (m := SIMPLE_FLAGS_LINE.match(line)) is not None:  # plain ASCII --flags, single spaces
        cmd, flag_text, rest = m.groups()
        off = m.start(3)
        flags = flag_text[:-1].split(" ")
        dashdash = False
    else:
        cmd, flags, rest, off, dashdash = split_command(line)
    name = _LOWER.get(cmd)
    if name is None:
        name = go_lower(cmd)
        if len(_LOWER) < 256:
            _LOWER[cmd] = name
    types.append(KEYWORDS.get(name, "OTHER"))
    vals.append(name)
    offs.append(base)
    off += base
    if flags:
        for f in flags:
            types.append("FLAG")
            vals.append(f)
            offs.append(base + len(cmd) + 1)
    if dashdash:
        types.append("DASHDASH")
        vals.append("--")
        offs.append(off)
    if name in _MAYBE_JSON:
        if rest:
            if rest[0] == "[" and _lex_json(rest, off, types, vals, offs):
                return False
            types.append("TEXT")
            vals.append(rest)
            offs.append(off)
        return name == "run"
    if name in _MAYBE_JSON_LIST:
        if rest[:1] == "[" and _lex_json(rest, off, types, vals, offs):
            return False
        if rest:
            words = RE_WHITESPACE.split(rest)
            types += ["WORD"] * len(words)
            vals += words
            offs += [off] * len(words)
        return name != "volume"
    if name in _STRING:
        if rest:
            types.append("TEXT")
            vals.append(rest)
            offs.append(off)
    elif name in _WORDS:
        if rest:
            words = RE_WHITESPACE.split(rest)
            types += ["WORD"] * len(words)
            vals += words
            offs += [off] * len(words)
    elif name == "env" or name == "label":
        _lex_name_val(rest, esc, off, types, vals, offs)
    elif name == "arg":
        words = parse_words(rest, esc)
        types += ["WORD"] * len(words)
        vals += words
        offs += [off] * len(words)
    elif name == "healthcheck":
        typ, tail = split_health(rest)
        if typ:
            types.append("WORD")
            vals.append(typ)
            offs.append(off)
            if tail:
                toff = off + len(rest) - len(tail)
                if not (tail.lstrip(GO_SPACE)[:1] == "[" and _lex_json(tail, toff, types, vals, offs)):
                    types.append("TEXT")
                    vals.append(tail)
                    offs.append(toff)
    elif name == "onbuild":
        if rest:
            k = len(types)
            # BuildKit's canContainHeredoc looks one level into ONBUILD, not further
            return lex_instruction(rest, esc, types, vals, offs, off) and types[k] != "ONBUILD"
    else:
        types.append("IGNORED")  # parseIgnore: an unknown instruction keeps one empty argument
        vals.append("")
        offs.append(off)
    return False


_JSON_TYPES: dict[int, list[str]] = {}


def _lex_json(rest: str, off: int, types: list, vals: list, offs: list) -> bool:
    """Exec form: ``[`` STRING (``,`` STRING)* ``]`` when ``rest`` is a JSON array of strings,
    ``[`` JSON_VALUE when it is an array holding something else; False (no tokens) when it is
    not a JSON array (then the arguments are shell form)."""
    try:
        arr = parse_json_array(rest)
    except NotStringArray:
        bad = _bad_json_element(rest)
        types += ("LSQB", "JSON_VALUE")
        vals += ("[", rest[bad:])
        offs += (off, off + bad)
        return True
    if arr is None:
        return False
    n = len(arr)
    kinds = _JSON_TYPES.get(n)
    if kinds is None:
        kinds = ["LSQB"] + ["STRING", "COMMA"] * n
        if n:
            kinds.pop()
        kinds.append("RSQB")
        _JSON_TYPES[n] = kinds
    types += kinds
    vals.append("[")
    if n:
        seq = [","] * (2 * n - 1)
        seq[::2] = arr
        vals += seq
    vals.append("]")
    offs += [off] * len(kinds)
    return True


def _lex_name_val(rest: str, esc: str, off: int, types: list, vals: list, offs: list) -> None:
    """BuildKit's ``parseNameVal`` (ENV, LABEL): KEY ``=`` VALUE per word, or, when the first
    word has no ``=``, the legacy KEY SPACE VALUE (the first word and all the rest). A later
    word without ``=`` is a WORD, which the grammar rejects."""
    words = parse_words(rest, esc)
    if not words:
        return
    if "=" not in words[0]:
        parts = RE_WHITESPACE.split(rest, maxsplit=1)
        types.append("KEY")
        vals.append(parts[0])
        offs.append(off)
        if len(parts) == 2:
            types += ("SPACE", "VALUE")
            vals += ("", parts[1])
            offs += (off + len(parts[0]), off + len(rest) - len(parts[1]))
        return
    for w in words:
        k, eq, v = w.partition("=")
        if eq:
            types += ("KEY", "EQUAL", "VALUE")
            vals += (k, "=", v)
            offs += (off, off, off)
        else:
            types.append("WORD")
            vals.append(w)
            offs.append(off + max(rest.find(w), 0))


# -- exec-form JSON, located with the lark grammar ----------------------------------------------


@functools.cache
def _json_parser():
    import lark

    from mason.frontends.dockerfile.syntax import grammar_text

    grammar = grammar_text("dockerfile_json.lark")
    return lark.Lark(grammar, parser="lalr", propagate_positions=True)


def _bad_json_element(rest: str) -> int:
    """Offset in ``rest`` of the first element of the JSON array that is not a string."""
    import lark

    lead = len(rest) - len(rest.lstrip(GO_SPACE))
    try:
        tree = _json_parser().parse(rest[lead:])
    except lark.exceptions.LarkError:  # Go accepts it, Python's json module did not: point at '['
        return lead
    for child in tree.children[0].children:
        if isinstance(child, lark.Tree) and child.data != "string" and not child.meta.empty:
            return lead + child.meta.start_pos
    return lead
