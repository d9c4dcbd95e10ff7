"""Word-level helpers of the Dockerfile syntax layer, each mirroring one of BuildKit's parser
functions exactly (its quirks included), since the node tree must split arguments the way
BuildKit's parser does: command/flag splitting, quote-aware word splitting for ENV/LABEL/ARG,
whitespace splitting, and exec-form (JSON array) detection.

Go works on UTF-8 bytes where Python works on code points. Where a BuildKit function looks at
single bytes (flag extraction, HEALTHCHECK's type word) the byte behaviour is reproduced on the
"byte domain" string (UTF-8 bytes decoded as Latin-1). Undecodable input bytes travel as
``surrogateescape`` surrogates.
"""

from __future__ import annotations

import json
import re

# unicode.IsSpace: Python's isspace() without the ASCII separators U+001C..U+001F.
GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
            "\u2028\u2029\u202f\u205f\u3000")
_GO_SPACE_SET = frozenset(GO_SPACE)
_BYTE_SPACE = frozenset("\t\n\v\f\r \x85\xa0")  # unicode.IsSpace(rune(b)) for a single byte b

RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace
_GO_WORD = re.compile("[^" + GO_SPACE + "]+")
_SURROGATE = re.compile("[\udc80-\udcff]")


def go_trim_space(s: str) -> str:
    return s.strip(GO_SPACE)


def go_lower(s: str) -> str:
    """``strings.ToLower``: rune by rune (U+0130 maps to a plain ``i``, as in Go)."""
    if s.isascii():
        return s.lower()
    return "".join("i" if c == "\u0130" else c.lower() for c in s)


def to_bytes_domain(s: str) -> str:
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def from_bytes_domain(s: str) -> str:
    return s.encode("latin-1").decode("utf-8", "surrogateescape")


def runes_from_invalid(s: str) -> str:
    """Undecodable bytes become U+FFFD, as Go's rune-wise string building does."""
    return _SURROGATE.sub("\ufffd", s) if not s.isascii() else s


_CMD_WORD = re.compile(r"([^\t\v\f\r ]*)[\t\v\f\r ]+")


def split_command(line: str) -> tuple[str, list[str], str, int, bool]:
    """BuildKit's ``splitCommand``: (instruction name, raw flags, trimmed arguments, offset of
    the arguments in ``line``, whether ``--`` ended the flags). The name is returned as
    written; callers lower-case it."""
    stripped = line.strip(GO_SPACE)
    lead = 0 if stripped[:1] == line[:1] else len(line) - len(line.lstrip(GO_SPACE))
    m = _CMD_WORD.match(stripped)
    if m is None:
        return stripped, [], "", len(line), False
    cmd = m.group(1)
    after_off = m.end()
    if stripped[after_off:after_off + 2] != "--":
        # no flags (the common case): the arguments are the rest, trimmed
        args = stripped[after_off:].lstrip(GO_SPACE)
        return cmd, [], args, lead + len(stripped) - len(args), False
    after = stripped[after_off:]
    rest, flags, dashdash = extract_builder_flags(after)
    args = go_trim_space(rest)
    if not args:
        return cmd, flags, "", len(line), dashdash
    # ``rest`` is a suffix of ``after`` (in code points, see extract_builder_flags)
    off = lead + after_off + len(after) - len(rest) + (len(rest) - len(rest.lstrip(GO_SPACE)))
    return cmd, flags, args, min(off, len(line)), dashdash


def extract_builder_flags(line: str) -> tuple[str, list[str], bool]:
    """BuildKit's ``extractBuilderFlags``: the rest of the line, the leading ``--name[=value]``
    words (quotes and backslashes processed), and whether a ``--`` word ended them."""
    i = 0
    n = len(line)
    while i < n and line[i] in "\t\n\v\f\r ":  # a byte scan: no multi-byte rune is a space here
        i += 1
    if not line.startswith("--", i):
        return line[i:], [], False
    if line.isascii():
        fast = _extract_flags_simple(line, i)
        return fast if fast is not None else _extract_flags(line)
    # Go walks this byte by byte: emulate it on the bytes, then map the rest back.
    rest, flags, dashdash = _extract_flags(to_bytes_domain(line))
    return from_bytes_domain(rest), flags, dashdash


_SIMPLE_FLAG = re.compile(r"--[^\t\n\v\f\r '\"\\]*")
_ASCII_SPACE = frozenset("\t\n\v\f\r ")


def _extract_flags_simple(line: str, pos: int) -> tuple[str, list[str], bool] | None:
    """The same for ASCII flag words without quotes or backslashes; None for anything else."""
    words: list[str] = []
    n = len(line)
    match = _SIMPLE_FLAG.match
    while True:
        m = match(line, pos)
        end = m.end()
        if end < n and line[end] not in _ASCII_SPACE:
            return None
        w = m.group()
        if w == "--":
            return line[end:], words, True
        words.append(w)
        pos = end
        while pos < n and line[pos] in _ASCII_SPACE:
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], words, False


def _extract_flags(line: str) -> tuple[str, list[str], bool]:
    words: list[str] = []
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    phase = IN_SPACES
    word: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == IN_SPACES:
            if pos == n:
                break
            if ch in _BYTE_SPACE:
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words, False
            phase = IN_WORD
        if pos == n:  # IN_WORD or IN_QUOTE at the end
            w = "".join(word)
            if w == "--":
                return "", words, True
            if blank_ok or w:
                words.append(w)
            break
        if phase == IN_WORD:
            if ch in _BYTE_SPACE:
                phase = IN_SPACES
                w = "".join(word)
                if w == "--":
                    return line[pos:], words, True
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch == "'" or ch == '"':
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # IN_QUOTE
        if ch == quote:
            phase = IN_WORD
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = IN_WORD
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words, False


def _quoted_words(esc: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Regexes for parseWords on well-formed input: every quote closed, no escape at the end.
    Possessive quantifiers: plain runs are taken in one step and nothing backtracks."""
    e = re.escape(esc)
    sp = "[" + GO_SPACE + "]"
    word = (f"(?:[^{GO_SPACE}'\"{e}]++|{e}[\\s\\S]|\"(?:[^\"{e}]++|{e}[\\s\\S])*+\"|'[^']*+')++")
    return re.compile(f"{sp}*+(?:{word}(?:{sp}++|\\Z))*+\\Z"), re.compile(word)


_QUOTED_WORDS = {"\\": _quoted_words("\\"), "`": _quoted_words("`")}


def parse_words(rest: str, esc: str) -> list[str]:
    """BuildKit's ``parseWords``: split on whitespace, keeping quotes and escapes in the words
    (used by ENV, LABEL and ARG)."""
    if "'" not in rest and '"' not in rest and esc not in rest:
        words = _GO_WORD.findall(rest)
    else:
        full, word = _QUOTED_WORDS[esc]
        if not full.match(rest):
            return parse_words_slow(rest, esc)
        words = word.findall(rest)
    return words if rest.isascii() else [runes_from_invalid(w) for w in words]


def parse_words_slow(rest: str, esc: str) -> list[str]:
    """``parseWords`` as BuildKit's state machine, for any input."""
    words: list[str] = []
    IN_SPACES, IN_WORD, IN_QUOTE = 0, 1, 2
    phase = IN_SPACES
    word: list[str] = []
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    while True:
        if pos == n:
            if phase != IN_SPACES and (blank_ok or word):
                words.append("".join(word))
            break
        ch = rest[pos]
        if phase == IN_SPACES:
            if ch in _GO_SPACE_SET:
                pos += 1
                continue
            phase = IN_WORD
        if phase == IN_WORD:
            if ch in _GO_SPACE_SET:
                phase = IN_SPACES
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch == "'" or ch == '"':
                quote = ch
                blank_ok = True
                phase = IN_QUOTE
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # IN_QUOTE
        if ch == quote:
            phase = IN_WORD
        if ch == esc and quote != "'":
            if pos + 1 == n:
                phase = IN_WORD
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return [runes_from_invalid(w) for w in words]


def split_whitespace(rest: str) -> list[str]:
    """BuildKit's ``parseStringsWhitespaceDelimited`` (FROM, EXPOSE, shell-form COPY/ADD/VOLUME)."""
    if not rest:
        return []
    return RE_WHITESPACE.split(rest)


class NotStringArray(Exception):
    """An exec-form JSON array holding something other than strings (a syntax error)."""


class _NotGoJSON(Exception):
    pass


def _reject_constant(name: str) -> None:
    raise _NotGoJSON(name)  # NaN / Infinity are not JSON for Go


def _ignore_number(s: str) -> int:
    return 0  # never a string; avoid Python's big-int limits


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_ignore_number,
                            parse_float=_ignore_number)


def parse_json_array(rest: str) -> list[str] | None:
    """BuildKit's ``parseJSON``: the strings of a JSON array, ``None`` when ``rest`` is not a
    JSON array (the caller then treats it as shell form), :class:`NotStringArray` when it is
    one but holds something else."""
    rest = rest.lstrip(GO_SPACE)
    if not rest.startswith("["):
        return None
    try:
        value = _decoder.decode(rest)
    except (ValueError, _NotGoJSON):
        return None
    except RecursionError:  # deeper than Python's stack; Go accepts up to 10000 levels
        raise NotStringArray() from None
    if not isinstance(value, list):
        return None
    for v in value:
        if not isinstance(v, str):
            raise NotStringArray()
    # Go decodes lone surrogates and invalid bytes to U+FFFD
    if rest.isascii():
        return value
    return [runes_from_invalid(_fix_surrogates(v)) for v in value]


_ANY_SURROGATE = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")


def _fix_surrogates(s: str) -> str:
    if s.isascii():
        return s
    # json gives "\ud83d\ude00" as one code point already; only lone halves remain.
    return _ANY_SURROGATE.sub(lambda m: "\ufffd" if not 0xDC80 <= ord(m.group()) <= 0xDCFF else m.group(), s)


def split_health(rest: str) -> tuple[str, str]:
    """BuildKit's ``parseHealthConfig`` split: the type word (``CMD``/``NONE``…) and the rest.
    Go scans bytes here, so a non-ASCII space byte (0x85, 0xA0) inside a character counts."""
    if rest.isascii():
        return _split_health(rest)
    typ, tail = _split_health(to_bytes_domain(rest))
    return from_bytes_domain(typ), from_bytes_domain(tail)


def _split_health(b: str) -> tuple[str, str]:
    sep = 0
    n = len(b)
    while sep < n and b[sep] not in _BYTE_SPACE:
        sep += 1
    nxt = sep
    while nxt < n and b[nxt] in _BYTE_SPACE:
        nxt += 1
    return b[:sep], b[nxt:]
