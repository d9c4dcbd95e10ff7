"""Shell-word expansion for Dockerfile instructions, with BuildKit's shell-lexer semantics.

One word (an instruction argument) is scanned once: quotes are removed, the Dockerfile's escape
character (``\\`` or a backtick) escapes the next character, and variables are expanded:
``$a`` ``${a}`` ``${a:-w}`` ``${a-w}`` ``${a:+w}`` ``${a+w}`` ``${a:?msg}`` ``${a?msg}``
``${a#p}`` ``${a##p}`` ``${a%p}`` ``${a%%p}`` ``${a/p/r}`` ``${a//p/r}``. Positional and special
parameters (``$1``, ``$@``, ``$#`` …) are recognised as names and are simply never set.
Like BuildKit's lexer, the scan yields both the whole word (``process_word``) and the word split on
unquoted whitespace after expansion (``process_words``), and records which names were looked up
and found or not (lowering uses that for ARG semantics and the UndefinedVar check).

Patterns in ``#``/``%``/``/`` modifiers are globs with ``*`` and ``?`` (``\\`` escapes ``*``, ``?``
and ``\\``), matched as BuildKit does with a leftmost regular-expression search; ``/`` replacement
text is expanded the way Go's ``Regexp.ReplaceAllString`` expands templates (``$0`` is the match,
``$$`` a dollar), again like BuildKit. ``:#`` and ``:%`` are rejected.

Errors are :class:`ShellError` (a :class:`~mason.ir.errors.MasonError`) with BuildKit's messages,
e.g. ``a: msg`` for ``${a:?msg}`` when ``a`` is unset; the caller attaches the location.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import NamedTuple

from mason.ir.errors import MasonError, SourceLoc

__all__ = ["EXPANSION_LIMIT", "ExpansionBudget", "Expansion", "ShellError", "ShellLex"]

# Go's unicode.IsSpace: what splits words (Python's str.isspace also counts U+001C..U+001F).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_SPLIT = re.compile("[" + re.escape(_GO_SPACE) + "]+").split
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# ${a:-${b:-${c…}}}: the scanner recurses once per level; stop long before Python's stack does.
_MAX_DEPTH = 64
# What the variable references of one Dockerfile may produce in all. BuildKit and a POSIX shell have
# no limit: ``ENV A=$A$A`` doubles A at every line (30 lines: a gigabyte), ``ENV A=${A}x…`` grows
# the text quadratically (every ENV's history entry repeats A). Real Dockerfiles expand to kilobytes.
EXPANSION_LIMIT = 16 << 20


class ShellError(MasonError):
    """A word could not be expanded. ``word`` is the input as given."""

    def __init__(self, message: str, word: str = "", loc: SourceLoc | None = None):
        super().__init__(message, loc)
        self.word = word


class ExpansionBudget:
    """How many more characters variable references may produce (one per Dockerfile lowering,
    check run or outline): every ``$…`` value is charged as it is substituted, at every nesting
    level, so no expansion grows past the budget before it is refused."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int = EXPANSION_LIMIT):
        self.limit = limit
        self.left = limit

    def charge(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise ShellError(
                f"variable expansion produces more than {self.limit >> 20} MiB of text in this "
                "Dockerfile (mason's limit); a variable that refers to itself, as in ENV A=$A$A, "
                "grows at every line")


class Expansion(NamedTuple):
    """Everything one scan of a word produces."""

    result: str  # the word with quotes removed and variables expanded
    words: list[str]  # the same, split on unquoted whitespace (quoted empties dropped)
    used: set[str]  # names looked up and found in the environment
    unmatched: set[str]  # names looked up and not set


class ShellLex:
    """Expands words the way BuildKit's Dockerfile frontend does.

    ``escape`` is the Dockerfile's escape character. The flags mirror BuildKit's lexer options
    (used for heredocs and similar): ``raw_quotes`` keeps quote characters in the output,
    ``raw_escapes`` keeps escape characters, ``skip_process_quotes`` treats quotes as ordinary
    characters, ``skip_unset_env`` leaves references to unset names as written. ``budget``
    (an :class:`ExpansionBudget`) bounds what its expansions produce in all.
    A ``ShellLex`` holds no per-word state: one instance can be shared.
    """

    __slots__ = ("escape", "raw_quotes", "raw_escapes", "skip_process_quotes", "skip_unset_env",
                 "budget", "_plain")

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_process_quotes: bool = False, skip_unset_env: bool = False,
                 budget: ExpansionBudget | None = None):
        if len(escape) != 1:
            raise ValueError(f"escape must be one character, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env
        self.budget = budget  # charged when a call names none
        specials = "$" + escape + ("" if skip_process_quotes else "'\"")
        # A word with none of these characters expands to itself.
        self._plain = re.compile("[^" + re.escape(specials) + "]*").fullmatch

    def expand(self, word: str, env: Mapping[str, str], loc: SourceLoc | None = None,
               budget: ExpansionBudget | None = None, *, want_words: bool = True) -> Expansion:
        """Scan ``word`` once: the expanded word, its split words (``[]`` without
        ``want_words``), and the names looked up. Substituted values are charged to ``budget``."""
        if self._plain(word):
            return Expansion(word, [w for w in _SPLIT(word) if w] if want_words else [], set(), set())
        scan = _Scan(self, word, env, budget if budget is not None else self.budget)
        try:
            result, words = scan.until(None, self.raw_escapes, want_words=want_words)
        except ShellError as e:
            e.word = word
            if loc is not None:
                e.loc = loc
            raise
        return Expansion(result, words or [], scan.used, scan.unmatched)

    def process_word(self, word: str, env: Mapping[str, str], loc: SourceLoc | None = None,
                     budget: ExpansionBudget | None = None) -> str:
        """The word expanded as one string, quotes removed (ENV values, WORKDIR, USER …)."""
        if self._plain(word):
            return word
        return self.expand(word, env, loc, budget, want_words=False).result

    def process_words(self, word: str, env: Mapping[str, str], loc: SourceLoc | None = None,
                      budget: ExpansionBudget | None = None) -> list[str]:
        """The word expanded and split on unquoted whitespace (COPY sources, EXPOSE …)."""
        return self.expand(word, env, loc, budget).words

    def process_word_with_matches(self, word: str, env: Mapping[str, str], loc: SourceLoc | None = None,
                                  budget: ExpansionBudget | None = None) -> tuple[str, set[str], set[str]]:
        """``(result, used, unmatched)``: the expanded word and the names found / not set."""
        r = self.expand(word, env, loc, budget, want_words=False)
        return r.result, r.used, r.unmatched


class _Words:
    """Word splitting as BuildKit's lexer does it: whitespace that comes from the source text
    outside quotes, or from an unquoted expansion, ends a non-empty word; everything else
    (quoted text, escaped characters) is appended as is. Quoted empties make no word."""

    __slots__ = ("done", "cur")

    def __init__(self) -> None:
        self.done: list[str] = []
        self.cur: list[str] = []

    def add(self, text: str) -> None:
        parts = _SPLIT(text)
        self.cur.append(parts[0])
        for part in parts[1:]:
            self._flush()
            self.cur.append(part)

    def _flush(self) -> None:
        w = "".join(self.cur)
        if w:
            self.done.append(w)
        self.cur = []

    def finish(self) -> list[str]:
        self._flush()
        return self.done


class _Scan:
    """The state of one expansion: the text, a cursor, the environment and what was looked up."""

    __slots__ = ("lex", "s", "n", "pos", "env", "used", "unmatched", "depth", "budget")

    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str],
                 budget: ExpansionBudget | None = None):
        self.lex = lex
        self.budget = budget
        self.s = text
        self.n = len(text)
        self.pos = 0
        self.env = env
        self.used: set[str] = set()
        self.unmatched: set[str] = set()
        self.depth = 0

    def until(self, stop: str | None, raw_escapes: bool,
              want_words: bool = False) -> tuple[str, list[str] | None]:
        """Scan to ``stop`` (consumed) or, with ``stop=None``, to the end of the text."""
        lex, s, n = self.lex, self.s, self.n
        esc = lex.escape
        quotes = not lex.skip_process_quotes
        plain = _plain_run(esc, stop or "", quotes)
        out: list[str] = []
        words = _Words() if want_words else None
        while self.pos < n:
            m = plain(s, self.pos)
            if m.end() > self.pos:
                run = m.group()
                out.append(run)
                if words is not None:
                    words.add(run)
                self.pos = m.end()
                if self.pos >= n:
                    break
            ch = s[self.pos]
            if ch == stop:
                self.pos += 1
                return "".join(out), None
            if ch == "$":
                value = self.dollar()
                out.append(value)
                if words is not None:
                    words.add(value)
            elif quotes and ch == "'":
                value = self.single_quote()
                out.append(value)
                if words is not None:
                    words.cur.append(value)
            elif quotes and ch == '"':
                value = self.double_quote(raw_escapes)
                out.append(value)
                if words is not None:
                    words.cur.append(value)
            else:  # the escape character
                self.pos += 1
                if raw_escapes:
                    out.append(ch)
                    if words is not None:
                        words.cur.append(ch)
                if self.pos >= n:  # a trailing escape is dropped
                    break
                nxt = s[self.pos]
                self.pos += 1
                out.append(nxt)
                if words is not None:
                    words.cur.append(nxt)
        if stop is not None:
            raise ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), (words.finish() if words is not None else None)

    def single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside.
        start = self.pos + 1
        end = self.s.find("'", start)
        if end < 0:
            raise ShellError("unexpected end of statement while looking for matching single-quote")
        self.pos = end + 1
        body = self.s[start:end]
        return f"'{body}'" if self.lex.raw_quotes else body

    def double_quote(self, raw_escapes: bool) -> str:
        # Literal except $ expansions; the escape character escapes only " $ and itself.
        s, n, esc = self.s, self.n, self.lex.escape
        plain = _plain_run(esc, '"', False)
        out: list[str] = ['"'] if self.lex.raw_quotes else []
        self.pos += 1
        while True:
            self.pos = _append_run(plain, s, self.pos, out)
            if self.pos >= n:
                raise ShellError(
                    "unexpected end of statement while looking for matching double-quote")
            ch = s[self.pos]
            if ch == '"':
                self.pos += 1
                if self.lex.raw_quotes:
                    out.append('"')
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            # the escape character
            self.pos += 1
            if raw_escapes:
                out.append(ch)
            if self.pos >= n:
                continue  # reported as the missing closing quote
            if s[self.pos] in ('"', "$", esc):
                ch = s[self.pos]
                self.pos += 1
            out.append(ch)

    def name(self) -> str:
        # A run of letters, digits and _; or all digits (positional); or one special parameter.
        s, n, i = self.s, self.n, self.pos
        if i >= n:
            return ""
        c = s[i]
        if c.isdecimal():
            j = i + 1
            while j < n and s[j].isdecimal():
                j += 1
        elif c in _SPECIAL_PARAMS:
            j = i + 1
        else:
            j = i
            while j < n and (s[j].isalpha() or s[j].isdecimal() or s[j] == "_"):
                j += 1
        self.pos = j
        return s[i:j]

    def lookup(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
        else:
            self.used.add(name)
        return value

    def dollar(self) -> str:
        value = self._dollar()
        if self.budget is not None:
            self.budget.charge(len(value))
        return value

    def _dollar(self) -> str:
        s, n = self.s, self.n
        self.pos += 1
        if self.pos >= n or s[self.pos] != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.lex.skip_unset_env else ""
            return value
        self.pos += 1
        if self.pos >= n:
            raise ShellError("syntax error: missing '}'")
        if s[self.pos] in "{}:":
            raise ShellError("syntax error: bad substitution")
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ShellError("syntax error: substitutions nested too deeply")
        try:
            return self.braced(self.name())
        finally:
            self.depth -= 1

    def braced(self, name: str) -> str:
        s, n = self.s, self.n
        if self.pos >= n:
            raise ShellError("syntax error: missing '}'")
        ch = s[self.pos]
        self.pos += 1
        if ch == "}":
            value = self.lookup(name)
            if value is None:
                return "${" + name + "}" if self.lex.skip_unset_env else ""
            return value
        if ch == "/":
            return self.replace(name)
        modifier = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            if self.pos >= n:
                raise ShellError("syntax error: missing '}'")
            ch = s[self.pos]
            self.pos += 1
            modifier += ch
            if ch in "#%":
                raise ShellError(f"unsupported modifier ({modifier}) in substitution")
        elif ch not in "+-?#%":
            raise ShellError(f"unsupported modifier ({modifier}) in substitution")
        word = self.nested("}", ch in "#%", "syntax error: missing '}'")
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            return "${" + name + modifier + word + "}"
        empty = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value  # type: ignore[return-value]
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if value is None:
                raise ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if empty:
                raise ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in "#%":
            # One #/% trims the shortest match, two the longest.
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            return _trim(word, value or "", greedy, suffix=ch == "%")
        raise ShellError(f"unsupported modifier ({modifier}) in substitution")

    def replace(self, name: str) -> str:
        replace_all = self.pos < self.n and self.s[self.pos] == "/"
        if replace_all:
            self.pos += 1
        pattern = self.nested("/", True, "syntax error: missing '/' in ${}")
        replacement = self.nested("}", True, "syntax error: missing '}'")
        value = self.lookup(name)
        if value is None:
            if self.lex.skip_unset_env:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            value = ""
        regex = _glob_regex(pattern, True, False)
        if replace_all:
            return _replace_all(regex, value, replacement,
                                self.budget.charge if self.budget is not None else None)
        m = regex.search(value)
        if m is None:
            return value
        return value[:m.start()] + replacement + value[m.end():]

    def nested(self, stop: str, raw_escapes: bool, at_end: str) -> str:
        # BuildKit reports any failure that leaves the scanner at the end as the missing delimiter.
        try:
            return self.until(stop, raw_escapes)[0]
        except ShellError:
            if self.pos >= self.n:
                raise ShellError(at_end) from None
            raise


@lru_cache(maxsize=None)
def _plain_run(esc: str, stop: str, quotes: bool):
    """A matcher for the longest run of characters with no meaning in the current context."""
    specials = "$" + esc + stop + ("'\"" if quotes else "")
    return re.compile("[^" + re.escape(specials) + "]*").match


def _append_run(plain, s: str, pos: int, out: list[str]) -> int:
    m = plain(s, pos)
    if m.end() > pos:
        out.append(m.group())
    return m.end()


@lru_cache(maxsize=512)
def _glob_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Compile a ${…} glob: ``*`` any string (shortest unless greedy), ``?`` one character,
    ``\\`` escapes ``*`` ``?`` ``\\``; a ``\\`` before ``}`` or ``/`` only protected it from the lexer.
    Like BuildKit's (Go regexp) translation, wildcards do not match a newline."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != star:  # ** means the same as *, without the backtracking
                out.append(star)
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i < n and pattern[i] in "}/":
                continue
            if i >= n or pattern[i] not in "*?\\":
                bad = pattern[i] if i < n else ""
                raise ShellError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{bad}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(c))
    return re.compile("".join(out))


def _reverse_pattern(pattern: str) -> str:
    """Reverse a glob, keeping each ``\\x`` pair in order (``a\\*c`` → ``c\\*a``)."""
    pieces: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "\\" and i + 1 < n:
            pieces.append(pattern[i:i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def _trim(pattern: str, value: str, greedy: bool, suffix: bool) -> str:
    if suffix:
        # Regular expressions find the leftmost match, so trim a suffix as a prefix of the
        # reversed value (this is how BuildKit does it, and what makes % shortest-first).
        return _trim(_reverse_pattern(pattern), value[::-1], greedy, False)[::-1]
    m = _glob_regex(pattern, greedy, True).match(value)
    return value[m.end():] if m else value


def _replace_all(regex: re.Pattern[str], value: str, template: str,
                 charge: Callable[[int], None] | None = None) -> str:
    """Go's ``ReplaceAllString``: non-overlapping matches left to right, an empty match right
    after a previous match is not replaced, the template is expanded per match. ``charge`` gets
    each replacement's size as it is made (a long template times many matches is a product)."""
    out: list[str] = []
    last = 0  # end of the previous match
    pos = 0  # where to search next
    n = len(value)
    while pos <= n:
        m = regex.search(value, pos)
        if m is None:
            break
        start, end = m.span()
        out.append(value[last:start])
        if end > last or start == 0:
            piece = _go_expand(template, m.group())
            if charge is not None:
                charge(len(piece))
            out.append(piece)
        last = end
        pos = end if end > pos else pos + 1
    out.append(value[last:])
    return "".join(out)


def _go_expand(template: str, match: str) -> str:
    """Go's ``Regexp.Expand`` for a regexp with no groups: ``$0``/``${0}`` is the match, ``$$`` a
    dollar, any other ``$name`` or ``${name}`` is empty, a ``$`` starting no name stays."""
    if "$" not in template:
        return template
    out: list[str] = []
    i, n = 0, len(template)
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        k = i + 1 if brace else i
        start = k
        while k < n and (template[k].isalpha() or template[k].isdecimal() or template[k] == "_"):
            k += 1
        name = template[start:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            out.append("$")  # not a reference: the $ is kept and scanning resumes after it
            continue
        i = k + 1 if brace else k
        if name == "0":
            out.append(match)
