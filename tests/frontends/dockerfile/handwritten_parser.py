"""The hand-written Dockerfile syntax layer that preceded the lark one (``syntax``): kept as
the independent reference the tests check the lark parser against (same nodes, same errors,
same locations, on the corpus and on generated text). mason itself does not use it.

It works in two steps, like BuildKit:

* a line pass: parser directives at the top (``# escape=``/``# syntax=``/``# check=``, BOM),
  comments, continuation lines with the current escape character (also across comment and
  empty lines, which warn), and heredoc bodies after the instruction that names them;
* per instruction: the command word, ``--flags``, and the instruction's own argument form
  (JSON exec form, whitespace words, ENV/LABEL pairs, HEALTHCHECK, ONBUILD's nested
  instruction), with BuildKit's word tokenizers (``syntax_words``).
"""

from __future__ import annotations

import re

from mason.frontends.dockerfile.nodes import Directive, Heredoc, Node, ParseResult
from mason.frontends.dockerfile.syntax_dump import go_quote
from mason.frontends.dockerfile.syntax_heredoc import HeredocError, heredocs_from_line
from mason.frontends.dockerfile.syntax_lexer import _bad_json_element
from mason.frontends.dockerfile.syntax_words import (
    GO_SPACE,
    RE_WHITESPACE,
    NotStringArray,
    go_lower,
    parse_json_array,
    parse_words,
    split_command,
    split_health,
    split_whitespace,
)
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["parse_dockerfile"]

# Go's regexp \s is [\t\n\f\r ]; $ is the end of the text.
_DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_VALID_DIRECTIVES = ("syntax", "escape", "check")
_MAX_LINE_BYTES = 64 * 1024  # bufio.Scanner's token limit, newline included

_SPACE_SET = frozenset(GO_SPACE)
# an instruction word, one space, arguments that neither start with "-" nor start or end with
# whitespace: split_command's result without the general machinery
_SIMPLE_LINE = re.compile(r"([^\s][^\t\v\f\r ]*) ([^\s-](?:.*[^\s])?)\Z", re.S)
_SIMPLE_FLAGS_LINE = re.compile(r"([^\s][^\t\v\f\r ]*) ((?:--[!#-&(-\[\]-~]+ )+)([^\s-](?:.*[^\s])?)\Z", re.S)
_LOWER: dict[str, str] = {}
_MAYBE_JSON = frozenset(("run", "cmd", "entrypoint", "shell"))
_MAYBE_JSON_LIST = frozenset(("add", "copy", "volume"))
_WORDS = frozenset(("expose", "from"))
_STRING = frozenset(("maintainer", "stopsignal", "user", "workdir"))
_HEREDOC_INSTRUCTIONS = frozenset(("add", "copy", "run"))


class _LineError(Exception):
    """An error inside one logical instruction line; ``offset`` indexes that line."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> ParseResult:
    """Parse Dockerfile source into BuildKit's generic node tree (see the module docstring)."""
    return _Parser(text, filename).parse()


class _Parser:
    def __init__(self, text: str, filename: str):
        self.text = text
        self.file = filename
        if text.startswith("\ufeff"):  # a byte-order mark; columns count from after it
            text = text[1:]
        lines = text.split("\n")
        self.final_newline = lines[-1] == ""
        if self.final_newline:
            lines.pop()
        self.lines = lines

    # -- errors ---------------------------------------------------------------------------

    def error(self, message: str, idx: int, col: int = 1, end_idx: int | None = None) -> MasonError:
        """A located error at line index ``idx`` (0-based), column ``col`` (1-based)."""
        if not self.lines:
            return MasonError(message, SourceLoc(self.file, 1, 1), "")
        idx = min(max(idx, 0), len(self.lines) - 1)
        src = self.lines[idx].rstrip("\r")
        col = min(max(col, 1), len(src) + 1)
        end = None if end_idx is None else end_idx + 1
        return MasonError(message, SourceLoc(self.file, idx + 1, col, end), src)

    # -- the line pass ----------------------------------------------------------------------

    def parse(self) -> ParseResult:
        lines = self.lines
        n = len(lines)
        file = self.file
        space = GO_SPACE
        space_set = _SPACE_SET
        nodes: list[Node] = []
        warnings: list[tuple[str, SourceLoc]] = []
        late_error: MasonError | None = None
        i, esc, directives, comments = self._header()
        node_parts = _node_parts
        while i < n:
            raw = lines[i]
            if not raw:
                i += 1
                continue
            last = raw[-1]
            if (raw[0] in space_set or raw[0] == "#" or last == esc or last == "\r" or last == " "
                    or last == "\t" or len(raw) > _MAX_LINE_BYTES // 4):
                # the general case: comments, indentation, continuations, CR, long lines
                if len(raw) > _MAX_LINE_BYTES // 4 and self._too_long(i):
                    late_error = self._too_long_error(i)
                    break
                tok = raw.rstrip("\r")
                content = tok.lstrip(space)
                if content[:1] == "#":
                    comment = raw[1:].strip(space)
                    if comment:
                        comments.append(comment)
                    else:
                        comments = []
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
                        warnings.append(("Empty continuation line found in: " + line,
                                         SourceLoc(file, i + 1, 1, i + 1)))
                    if late_error is not None:
                        n = i + 1  # the scanner stopped at the long line
            else:
                line = raw
                start = i
                col0 = 0
                segs = None
            try:
                parts = node_parts(line, esc)
            except _LineError as e:
                ln, col = self._map(e.offset, start, col0, segs)
                raise self.error(e.message, ln, col, i) from None
            if "<<" in line and _can_contain_heredoc(parts):
                i, heredocs = self._read_heredocs(line, start, col0, segs, i, n)
                end_col = len(lines[i].rstrip("\r")) + 1
            else:
                heredocs = ()
                end_col = len(line) + 1 if segs is None else len(lines[i].rstrip("\r")) + 1
            if parts[5] is None:
                nodes.append(Node(parts[0], parts[1], parts[2], heredocs, parts[3], None, line,
                                  SourceLoc(file, start + 1, col0 + 1, i + 1, end_col),
                                  tuple(comments) if comments else ()))
            else:
                nodes.append(self._node(parts, line, heredocs, start, col0, segs, i, end_col,
                                        tuple(comments)))
            if comments:
                comments = []
            i += 1

        if not nodes:
            if late_error is not None:
                raise late_error
            raise self.error("file with no instructions", max(n - 1, 0), 1)
        if late_error is not None:
            raise late_error
        first, lastn = nodes[0].loc, nodes[-1].loc
        whole = SourceLoc(file, first.line, first.col, lastn.end_line, lastn.end_col)
        return ParseResult(tuple(nodes), tuple(directives), esc, tuple(warnings), whole)

    def _header(self) -> tuple[int, str, list[Directive], list[str]]:
        """The parser directives at the top: (index of the first line after them, escape
        character, directives, comments seen so far)."""
        lines = self.lines
        esc = "\\"
        directives: list[Directive] = []
        comments: list[str] = []
        seen: set[str] = set()
        i = 0
        while i < len(lines):
            raw = lines[i]
            tok = raw.rstrip("\r")
            content = tok.lstrip(GO_SPACE)
            if content[:1] != "#":
                break
            d = self._directive(content, i, len(tok) - len(content), seen)
            if d is None:
                break  # an ordinary comment: the main loop takes it
            directives.append(d)
            if d.name == "escape":
                esc = d.value
            i += 1
        return i, esc, directives, comments

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
            if len(tok) > _MAX_LINE_BYTES // 4 and self._too_long(i + 1):
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

    def _too_long_error(self, idx: int) -> MasonError:
        return self.error(f"dockerfile line greater than max allowed size of {_MAX_LINE_BYTES - 1}", idx)

    def _node(self, parts, original: str, heredocs, start: int, col0: int, segs, end_idx: int, end_col: int,
              comments: tuple[str, ...] = (), base: int | None = None) -> Node:
        """The node of ``parts``; ``base`` is the offset of a nested instruction in the line."""
        name, args, flags, is_json, off, nested, rest = parts
        onbuild = None
        if nested is not None:
            # the nested instruction starts where ONBUILD's arguments start (at any depth, mapped
            # through the continuation lines)
            onbuild = self._node(nested, rest, heredocs, start, col0, segs, end_idx, end_col, (), (base or 0) + off)
        ln, col = (start, col0 + 1) if base is None else self._map(base, start, col0, segs)
        loc = SourceLoc(self.file, ln + 1, col, end_idx + 1, end_col)
        return Node(name, args, flags, heredocs, is_json, onbuild, original, loc, comments)

    def _too_long(self, idx: int) -> bool:
        raw = self.lines[idx]
        nl = 1 if idx < len(self.lines) - 1 or self.final_newline else 0
        return len(raw.encode("utf-8", "surrogateescape")) + nl > _MAX_LINE_BYTES

    def _directive(self, content: str, idx: int, col0: int, seen: set[str]) -> Directive | None:
        """BuildKit's DirectiveParser.ParseLine on a comment line while directives are allowed."""
        m = _DIRECTIVE.match(content)
        if m is None:
            return None
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            return None
        if key in seen:
            raise self.error(f"only one {key} parser directive can be used", idx, col0 + m.start(1) + 1)
        seen.add(key)
        value = m.group(2)
        if key == "escape" and value not in ("\\", "`"):
            raise self.error(f"invalid escape token '{value}' does not match ` or \\", idx, col0 + m.start(2) + 1)
        return Directive(key, value, SourceLoc(self.file, idx + 1, col0 + 1, idx + 1))

    @staticmethod
    def _map(offset: int | None, start: int, col0: int, segs) -> tuple[int, int]:
        """(line index, 1-based column) of ``offset`` in a logical line."""
        if offset is None:
            offset = 0
        if segs is None:
            return start, col0 + offset + 1
        for loff, li, c0 in reversed(segs):
            if offset >= loff:
                return li, c0 + offset - loff + 1
        return start, col0 + 1

    def _read_heredocs(self, line: str, start: int, col0: int, segs, i: int, n: int) -> tuple[int, tuple[Heredoc, ...]]:
        try:
            found = heredocs_from_line(line)
        except HeredocError as e:
            ln, col = self._map(line.find("<<"), start, col0, segs)
            raise self.error(str(e), ln, col, i) from None
        lines = self.lines
        out = []
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
            if not terminated:
                pos = line.find(word)
                ln, col = self._map(pos if pos >= 0 else line.find("<<"), start, col0, segs)
                raise self.error(f"unterminated heredoc {go_quote(doc.name)}: no line {go_quote(doc.name)} "
                                 "before the end of the file", ln, col, n - 1)
            out.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
        return i, tuple(out)


def _can_contain_heredoc(parts) -> bool:
    if parts[0] == "onbuild":
        if parts[5] is None:
            return False
        parts = parts[5]
    return parts[0] in _HEREDOC_INSTRUCTIONS and not parts[3]


def _node_parts(line: str, esc: str):
    """BuildKit's ``newNodeFromLine``: (name, args, flags, json, offset of the arguments in
    ``line``, the nested instruction's parts for ONBUILD, the arguments text)."""
    m = _SIMPLE_LINE.match(line)
    if m is not None:  # "NAME args" without flags or odd spacing: the common case
        cmd, rest = m.groups()
        off = m.start(2)
        flags_t: tuple[str, ...] = ()
    elif (m := _SIMPLE_FLAGS_LINE.match(line)) is not None:  # plain ASCII --flags, single spaces
        cmd, flag_text, rest = m.groups()
        off = m.start(3)
        flags_t = tuple(flag_text[:-1].split(" "))
    else:
        cmd, flags, rest, off, _ = split_command(line)
        flags_t = tuple(flags)
    name = _LOWER.get(cmd)
    if name is None:
        name = go_lower(cmd)
        if len(_LOWER) < 256:
            _LOWER[cmd] = name
    is_json = False
    nested = None
    if name in _MAYBE_JSON:
        if not rest:
            args: tuple[str, ...] = ()
        else:
            arr = _json(rest, off) if rest[0] == "[" else None
            if arr is None:
                args = (rest,)
            else:
                args, is_json = arr, True
    elif name in _MAYBE_JSON_LIST:
        arr = _json(rest, off) if rest[:1] == "[" else None
        if arr is None:
            args = tuple(split_whitespace(rest))
        else:
            args, is_json = arr, True
    elif name in _STRING:
        args = (rest,) if rest else ()
    elif name in _WORDS:
        args = tuple(split_whitespace(rest))
    elif name == "env" or name == "label":
        args = _name_val(rest, name.upper(), esc, off)
    elif name == "arg":
        args = tuple(parse_words(rest, esc))
    elif name == "healthcheck":
        args = ()
        typ, tail = split_health(rest)
        if typ:
            args = (typ,)
            if tail:
                toff = off + len(rest) - len(tail)
                arr = _json(tail, toff) if tail.lstrip(GO_SPACE)[:1] == "[" else None
                if arr is None:
                    args += (tail,)
                else:
                    args += arr
                    is_json = True
    elif name == "onbuild":
        args = ()
        if rest:
            try:
                sub = _node_parts(rest, esc)
            except _LineError as e:
                raise _LineError(e.message, off + (e.offset or 0)) from None
            nested = sub
    else:
        args = ("",)  # parseIgnore: an unknown instruction keeps one empty argument
    return name, args, flags_t, is_json, off, nested, rest


def _json(rest: str, off: int) -> tuple[str, ...] | None:
    try:
        arr = parse_json_array(rest)
    except NotStringArray:
        raise _LineError("when using JSON array syntax, arrays must be comprised of strings only",
                         off + _bad_json_element(rest)) from None
    return None if arr is None else tuple(arr)


def _name_val(rest: str, key: str, esc: str, off: int) -> tuple[str, ...]:
    """BuildKit's ``parseNameVal`` (ENV, LABEL): key, value, separator triples."""
    words = parse_words(rest, esc)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{key} must have two arguments", off + len(rest))
        return (parts[0], parts[1], "")
    out: list[str] = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq:
            pos = rest.find(w)
            raise _LineError(f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value",
                             off + max(pos, 0))
        out += (k, v, "=")
    return tuple(out)
