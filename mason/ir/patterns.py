"""Docker path patterns: ``.dockerignore``, ``COPY --exclude`` and LLB include/exclude patterns.

Shared by the frontends (which read ``.dockerignore`` and write the patterns into LLB attrs such as
``local.excludepatterns``) and the solver (which applies them to ``local://`` sources and copies).
The semantics are those of moby's patternmatcher as BuildKit uses it:

* a pattern is Go ``filepath.Match`` syntax (``*`` and ``?`` within one path element, ``[...]``
  classes with ranges and ``^`` negation, ``\\`` escapes) plus ``**``, any number of whole
  directories including none (``**/`` is one token; ``**`` at the end matches everything below);
  like moby, a pattern that starts with ``**`` and is literal after it (``**.log``, ``**/tmp``)
  matches every path ending in that text, or equal to it without its leading ``/``;
* patterns are trimmed and cleaned like Go's ``filepath.Clean``; a leading ``/`` is dropped;
  empty patterns and ``.`` are ignored; ``!`` makes an exception that re-includes;
* a path matches a pattern if the path itself or one of its parent directories does, and the
  last pattern that matches decides. So ``dir`` then ``!dir/keep`` excludes everything under
  ``dir`` except ``dir/keep``.

Matching compiles every pattern once into a single regular expression (later patterns first), so
one path costs one regex call whatever the number of patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mason.ir.errors import MasonError, SourceLoc
from mason.ir.golang import path_clean

__all__ = [
    "MatchResult", "Pattern", "PatternMatcher", "clean_path", "filter_paths", "find_dockerignore",
    "parse_dockerignore", "parse_pattern", "parse_patterns",
]

# Go's strings.TrimSpace set (unicode.IsSpace); Python's str.strip() would also trim U+001C..1F.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


clean_path = path_clean  # Go's filepath.Clean for "/"-separated paths (= path.Clean)


_NEEDS_CLEAN = re.compile(r"(?:^|/)\.\.?(?:/|$)|//|^/|/$").search


def _relpath(path: str) -> str:
    """A context-relative path as the matcher wants it (``./a//b/`` → ``a/b``; root → ``.``)."""
    if path and not _NEEDS_CLEAN(path):
        return path
    cleaned = clean_path(path)
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    return cleaned


@dataclass(frozen=True, slots=True)
class Pattern:
    """One cleaned pattern. ``text`` is without the ``!``; ``negated`` marks an exception
    (a ``!`` line, which re-includes). ``line``/``raw`` say where it came from, if from a file.
    ``str(pattern)`` is the form BuildKit puts in LLB attrs (``!`` prefix for exceptions)."""

    text: str
    negated: bool = False
    line: int | None = None
    raw: str | None = None

    def __str__(self) -> str:
        return "!" + self.text if self.negated else self.text


class MatchResult(NamedTuple):
    """Whether a path is excluded, and the line and pattern (as written) that decided it."""

    excluded: bool
    line: int | None = None
    pattern: str | None = None


class _PatternSyntax(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_pattern(text: str, *, loc: SourceLoc | None = None,
                  raw: str | None = None) -> Pattern | None:
    """Normalize one pattern string as Docker does; ``None`` if it is ignored (blank, ``.``)."""
    text = text.strip(_GO_SPACE)
    negated = text.startswith("!")
    if negated:
        text = text[1:].strip(_GO_SPACE)
        if not text:
            if loc is not None and raw is not None:
                loc = SourceLoc(loc.file, loc.line, raw.find("!") + 1)
            raise MasonError('illegal exclusion pattern: "!"', loc, raw)
    text = clean_path(text)
    if len(text) > 1 and text[0] == "/":
        text = text[1:]
    if text in (".", "/"):
        return None
    try:
        _compile(text)
    except _PatternSyntax as e:
        if loc is not None and raw is not None:
            at = raw.find(text)
            col = (at + e.offset if at >= 0 else len(raw) - len(raw.lstrip(_GO_SPACE))) + 1
            loc = SourceLoc(loc.file, loc.line, col)
        raise MasonError(f"bad pattern \"{Pattern(text, negated)}\": {e.message}", loc,
                         raw) from None
    return Pattern(text, negated, loc.line if loc else None, raw)


def parse_patterns(patterns: Iterable[str]) -> list[Pattern]:
    """Normalize pattern strings (LLB attrs, ``COPY --exclude``), dropping ignored ones."""
    out = []
    for p in patterns:
        parsed = parse_pattern(p)
        if parsed is not None:
            out.append(parsed)
    return out


def parse_dockerignore(text: str, filename: str = ".dockerignore") -> list[Pattern]:
    """The patterns of a ``.dockerignore`` file, each with its line number and text.

    A line starting with ``#`` is a comment (only in the first column: `` #x`` is a pattern)."""
    out = []
    if text.startswith("\ufeff"):
        text = text[1:]
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#") or not line.strip(_GO_SPACE):
            continue
        parsed = parse_pattern(line, loc=SourceLoc(filename, lineno, 1), raw=line)
        if parsed is not None:
            out.append(parsed)
    return out


def find_dockerignore(context_dir: str | Path,
                      dockerfile_path: str | Path | None = None) -> tuple[Path | None, str | None]:
    """The ignore file that applies, and its text: ``<Dockerfile-name>.dockerignore`` beside the
    Dockerfile wins over ``.dockerignore`` at the root of the context. ``dockerfile_path`` defaults
    to ``<context>/Dockerfile``; ``"-"`` (stdin) has no file of its own."""
    context = Path(context_dir)
    dockerfile = context / "Dockerfile" if dockerfile_path is None else dockerfile_path
    candidates = [context / ".dockerignore"]
    if str(dockerfile) != "-":
        dockerfile = Path(dockerfile)
        candidates.insert(0, dockerfile.with_name(dockerfile.name + ".dockerignore"))
    for candidate in candidates:
        if candidate.is_file():
            try:
                return candidate, candidate.read_text(encoding="utf-8", errors="surrogateescape")
            except OSError as e:
                raise MasonError(f"cannot read {candidate}: {e.strerror or e}") from None
    return None, None


# -- compiling ----------------------------------------------------------------------------------
#
# A pattern becomes a list of regex pieces. Each piece is (regex, kind) where kind says how a
# *prefix* of a match can end inside the piece: "" (it cannot: one character), "any" (any text
# is a prefix: ``*``, ``.*``), or "dir" (``(?:.*/)?``: any text). can_skip_dir uses the prefixes.

_STAR = ("[^/]*", "any")
_DSTAR_DIR = ("(?:.*/)?", "dir")
_DSTAR_END = (".*", "any")


def _compile(text: str) -> list[list[tuple[str, str]]]:
    """Translate a cleaned pattern into alternatives of regex pieces (moby's translation)."""
    if text.startswith("**") and not any(c in text[2:] for c in "*?[]\\"):
        # moby's suffix match: "**" then literal text matches any path ending in that text,
        # or equal to it without its leading separator.
        suffix = text[2:]
        alts = [[_DSTAR_END] + [(re.escape(c), "") for c in suffix]]
        if suffix.startswith("/"):
            alts.append([(re.escape(c), "") for c in suffix[1:]])
        return alts
    pieces: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    pieces.append(_DSTAR_END)
                elif not pieces or pieces[-1] is not _DSTAR_DIR:  # **/**/ is one **/
                    pieces.append(_DSTAR_DIR)
            else:
                pieces.append(_STAR)
        elif c == "?":
            pieces.append(("[^/]", ""))
        elif c == "\\":
            if i >= n:
                raise _PatternSyntax("trailing backslash", i - 1)
            pieces.append((re.escape(text[i]), ""))
            i += 1
        elif c == "[":
            cls, i = _char_class(text, i)
            pieces.append((cls, ""))
        else:
            pieces.append((re.escape(c), ""))
    return [pieces]


def _char_class(text: str, i: int) -> tuple[str, int]:
    """Parse a filepath.Match class whose ``[`` is at ``i - 1``; return its regex and the end."""
    start = i - 1
    n = len(text)
    out = ["["]
    if i < n and text[i] == "^":
        out.append("^")
        i += 1
    count = 0
    while True:
        if i < n and text[i] == "]" and count:
            return "".join(out) + "]", i + 1
        lo, i = _class_char(text, i, start)
        if i < n and text[i] == "-":
            hi, i = _class_char(text, i + 1, start)
            if hi < lo:
                raise _PatternSyntax(f"bad range {lo}-{hi} in character class", start)
            out.append(re.escape(lo) + "-" + re.escape(hi))
        else:
            out.append(re.escape(lo))
        count += 1


def _class_char(text: str, i: int, start: int) -> tuple[str, int]:
    n = len(text)
    if i >= n:
        raise _PatternSyntax("unterminated character class '['", start)
    c = text[i]
    if c in "-]":
        raise _PatternSyntax(f"unexpected {c!r} in character class", i)
    if c == "\\":
        i += 1
        if i >= n:
            raise _PatternSyntax("unterminated character class '['", start)
        c = text[i]
    if i + 1 >= n:
        raise _PatternSyntax("unterminated character class '['", start)
    return c, i + 1


def _full_regex(alts: list[list[tuple[str, str]]]) -> str:
    parts = ["".join(piece for piece, _ in alt) for alt in alts]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _prefix_regex(alts: list[list[tuple[str, str]]]) -> str:
    """A regex matching every prefix of a string the pattern matches (and, for ``**``, more:
    it is only used to rule matches out)."""
    out = []
    for alt in alts:
        acc = ""
        for piece, kind in reversed(alt):
            acc = "(?:" + piece + acc + ("|.*" if kind == "dir" else "") + ")?"
        out.append(acc)
    return "(?:" + "|".join(out) + ")"


class PatternMatcher:
    """Decides which context-relative paths a list of patterns excludes.

    ``patterns`` are :class:`Pattern` values or strings (normalized with :func:`parse_pattern`).
    """

    __slots__ = ("patterns", "_fullmatch", "_results", "_regexes", "_prefix", "_has_exceptions")

    def __init__(self, patterns: Iterable[Pattern | str] = ()):
        items: list[Pattern] = []
        for p in patterns:
            parsed = parse_pattern(p) if isinstance(p, str) else p
            if parsed is not None:
                items.append(parsed)
        self.patterns: tuple[Pattern, ...] = tuple(items)
        self._regexes = [_full_regex(_compile(p.text)) for p in items]
        self._has_exceptions = any(p.negated for p in items)
        # Later patterns first, so the first alternative that matches is the one that decides;
        # an empty group closes each alternative and names it (lastindex). "(?:/.*)?" lets a
        # pattern match through a parent directory of the path.
        alternatives = [self._regexes[k] + "(?:/.*)?()" for k in reversed(range(len(items)))]
        self._fullmatch = (re.compile("(?s)(?:" + "|".join(alternatives) + ")").fullmatch
                           if items else None)
        self._results = [MatchResult(not p.negated, p.line, p.raw.strip(_GO_SPACE)
                                     if p.raw is not None else str(p))
                         for p in reversed(items)]
        self._prefix: dict[int, re.Pattern[str]] = {}

    @property
    def has_exceptions(self) -> bool:
        """Whether any pattern is a ``!`` exception."""
        return self._has_exceptions

    def _decider(self, rel: str) -> int:
        """Index (into ``patterns``) of the pattern that decides ``rel``, or -1."""
        if self._fullmatch is None or rel == ".":
            return -1
        m = self._fullmatch(rel)
        if m is None:
            return -1
        return len(self.patterns) - m.lastindex  # type: ignore[operator]

    def match(self, relpath: str) -> MatchResult:
        """Whether ``relpath`` (relative to the context root, ``/``-separated) is excluded, and
        which pattern decided. The root itself is never excluded."""
        if self._fullmatch is None:
            return _NO_MATCH
        rel = _relpath(relpath)
        if rel == ".":
            return _NO_MATCH
        m = self._fullmatch(rel)
        if m is None:
            return _NO_MATCH
        return self._results[m.lastindex - 1]  # type: ignore[operator]

    def excluded(self, relpath: str) -> bool:
        return self.match(relpath).excluded

    def can_skip_dir(self, reldir: str) -> bool:
        """Whether a walk can skip directory ``reldir`` without looking inside: it is excluded
        and no later ``!`` exception can match anything beneath it. (Conservative: ``False``
        when an exception might re-include something.)"""
        rel = _relpath(reldir)
        k = self._decider(rel)
        if k < 0 or self.patterns[k].negated:
            return False
        if not self._has_exceptions:
            return True
        below = rel + "/"
        for j in range(k + 1, len(self.patterns)):
            if self.patterns[j].negated and self._prefix_of(j)(below):
                return False
        return True

    def _prefix_of(self, j: int):
        regex = self._prefix.get(j)
        if regex is None:
            regex = self._prefix[j] = re.compile(
                "(?s)" + _prefix_regex(_compile(self.patterns[j].text)))
        return regex.fullmatch

    def __repr__(self) -> str:
        return f"PatternMatcher({[str(p) for p in self.patterns]!r})"


_NO_MATCH = MatchResult(False, None, None)


def filter_paths(paths: Iterable[str], include: Iterable[Pattern | str] = (),
                 exclude: Iterable[Pattern | str] = ()) -> list[str]:
    """The paths a copy with include/exclude patterns keeps (``local.includepattern``,
    ``local.excludepatterns``, ``COPY --exclude``), in input order.

    A path is kept if it (or a parent) matches an include pattern — every path when there are
    none — and the exclude patterns do not exclude it. A directory in ``paths`` is also kept when
    something kept lies beneath it, since the copy has to create it (as fsutil's walk does)."""
    inc = PatternMatcher(include)
    exc = PatternMatcher(exclude)
    everything = not inc.patterns
    paths = list(paths)
    rels = [_relpath(p) for p in paths]
    kept = set()
    for rel in rels:
        if rel != "." and (everything or inc.excluded(rel)) and not exc.excluded(rel):
            kept.add(rel)
    parents = set()
    for rel in kept:
        i = rel.rfind("/")
        while i > 0:
            parent = rel[:i]
            if parent in parents:
                break
            parents.add(parent)
            i = parent.rfind("/")
    return [p for p, rel in zip(paths, rels, strict=False) if rel in kept or rel in parents]
