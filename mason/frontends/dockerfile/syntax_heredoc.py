"""Heredoc detection for the Dockerfile syntax layer, as BuildKit's parser does it.

BuildKit finds heredocs by splitting the instruction line into shell words (quotes and escapes
kept, variables left unexpanded) and matching each word against ``[fd]<<[-]NAME``; the name is
then lexed once more, with and without quotes, to learn whether it was quoted (no expansion of
the body). A line the shell lexer cannot split (an unterminated quote, a bad ``${``) has no
heredocs at all. This module holds the small shell lexer that needs, with an empty environment
in which unset variables stay as written.
"""

from __future__ import annotations

import re

from mason.frontends.dockerfile.nodes import Heredoc
from mason.frontends.dockerfile.syntax_words import GO_SPACE

_SPACE = frozenset(GO_SPACE)
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)([^<]*)\Z", re.S)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ShellSyntaxError(Exception):
    """The shell lexer could not process a word (unterminated quote, bad substitution…)."""


class _Words:
    """BuildKit's ``wordsStruct``: accumulates characters into whitespace-separated words."""

    __slots__ = ("buf", "words", "in_word")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _SPACE:
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.buf.append(ch)
            self.in_word = True

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.buf.append(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Lexer:
    """The subset of BuildKit's shell lexer (escape ``\\``, empty environment, unset variables
    kept as written) that heredoc detection runs."""

    def __init__(self, src: str, raw_quotes: bool, raw_escapes: bool) -> None:
        self.s = src
        self.n = len(src)
        self.pos = 0
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < self.n else ""

    def next(self) -> str:
        if self.pos < self.n:
            ch = self.s[self.pos]
            self.pos += 1
            return ch
        return ""

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.pos < self.n:
            ch = self.s[self.pos]
            if stop and ch == stop:
                self.pos += 1
                return "".join(result), words.get()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "'":
                tmp = self.single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch == '"':
                tmp = self.double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                self.pos += 1
                if ch == "\\":
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ShellSyntaxError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def single_quote(self) -> str:
        out = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if not ch:
                raise ShellSyntaxError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out = []
        ch = self.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            p = self.peek()
            if not p:
                raise ShellSyntaxError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == "\\":
                if self.raw_escapes:
                    out.append(ch)
                p = self.peek()
                if not p:
                    continue
                if p in '"$\\':
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out = []
        while self.pos < self.n:
            ch = self.s[self.pos]
            if not out and ch.isdecimal():
                while self.pos < self.n and self.s[self.pos].isdecimal():
                    out.append(self.s[self.pos])
                    self.pos += 1
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                self.pos += 1
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(ch)
            self.pos += 1
        return "".join(out)

    def dollar(self) -> str:
        self.pos += 1  # the '$'
        if self.peek() != "{":
            name = self.name()
            return "$" + name  # empty environment: unset variables stay as written
        self.pos += 1
        p = self.peek()
        if not p:
            raise ShellSyntaxError("syntax error: missing '}'")
        if p in "{}:":
            raise ShellSyntaxError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return "${" + name + "}"
        chs = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch or "\ufffd"
        if null_is_unset or (ch and ch in "+-?#%"):
            raw = ch in ("#", "%") and ch != ""
            if null_is_unset and raw:
                raise ShellSyntaxError(f"unsupported modifier ({chs}) in substitution")
            word, _ = self.stop_on("}", raw)
            return "${" + name + chs + word + "}"
        if ch == "/":
            if self.peek() == "/":
                self.pos += 1
            pattern, _ = self.stop_on("/", True)
            replacement, _ = self.stop_on("}", True)
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        raise ShellSyntaxError(f"unsupported modifier ({chs or chr(0xFFFD)}) in substitution")


def process_words(src: str, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """``Lex.ProcessWords`` with an empty environment (unset variables kept)."""
    return _Lexer(src, raw_quotes, raw_escapes).stop_on("", raw_escapes)[1]


class HeredocError(Exception):
    """A heredoc word that BuildKit rejects (the message is BuildKit's)."""


def parse_heredoc_word(word: str) -> Heredoc | None:
    """BuildKit's ``ParseHeredoc``: a heredoc (without content) if ``word`` is ``[fd]<<[-]NAME``."""
    m = _HEREDOC_WORD.match(word)
    if m is None:
        return None
    fd_text, dash, rest = m.groups()
    if not rest:
        return None
    try:
        words = process_words(rest, raw_quotes=False, raw_escapes=False)
        if len(words) != 1:
            return None
        raw = process_words(rest, raw_quotes=True, raw_escapes=False)
    except ShellSyntaxError as e:
        raise HeredocError(f"failed to process {rest!r}: {e}") from None
    if len(raw) != len(words):
        raise HeredocError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    expand = (name.count("'") + name.count('"')) == (raw[0].count("'") + raw[0].count('"'))
    fd = min(int(fd_text), 2**64 - 1) if fd_text else 0
    return Heredoc(name=name, content="", expand=expand, chomp=dash == "-", fd=fd)


def heredocs_from_line(line: str) -> list[tuple[Heredoc, str]]:
    """BuildKit's ``heredocsFromLine``: every heredoc named on an instruction line, each with
    the shell word that introduced it (for locating errors)."""
    try:
        words = process_words(line, raw_quotes=True, raw_escapes=True)
    except ShellSyntaxError:
        return []  # BuildKit ignores lexing errors here: the line has no heredocs
    docs = []
    for w in words:
        if "<<" not in w:
            continue
        h = parse_heredoc_word(w)
        if h is not None:
            docs.append((h, w))
    return docs
