"""mason.ir.golang: the one home of Go's string quoting (strconv.Quote / %q), JSON text,
path.Clean and filepath.Match.
The full strconv.Quote case table is tests/frontends/dockerfile/test_syntax.py::test_go_quote
(it reaches this implementation through the syntax layer)."""

from __future__ import annotations

import pytest

from mason.backends.dump import dot
from mason.frontends.dockerfile import lower_util, syntax, syntax_dump
from mason.ir import golang


def test_every_layer_quotes_with_the_one_implementation() -> None:
    for mod in (lower_util, syntax, syntax_dump, dot):
        assert mod.go_quote is golang.go_quote, mod.__name__
    assert lower_util.go_quote_rune is golang.go_quote_rune


def test_quote_edges() -> None:
    q = golang.go_quote
    assert q("\ud800") == '"\\ufffd"'  # a lone surrogate is no rune: Go prints U+FFFD's escape
    assert q(b"\xed\xa0\x80".decode("utf-8", "surrogateescape")) == '"\\xed\\xa0\\x80"'
    assert q("tab\there") == '"tab\\there"' and q("") == '""'
    assert golang.go_quote_rune(0) == "'\\x00'" and golang.go_quote_rune(ord("'")) == "'\\''"
    assert golang.go_quote_rune(0xD800) == "'\\ufffd'" and golang.go_quote_rune(-1) == "'\\ufffd'"
    assert golang.go_quote_rune(ord('"')) == "'\"'"  # a double quote needs no escape in a rune


# Go's answers, printed by a Go program (path.Clean; filepath.Match over NAMES: whether Go
# returned ErrBadPattern, and the names it matched) — Go 1.19 here; the functions are unchanged
# in the Go 1.27 BuildKit v0.32.2 is built with.
CLEAN = [("", "."), ("/", "/"), ("//", "/"), ("///a//b/", "/a/b"), ("a/../..", ".."), ("/../a", "/a"),
         ("./", "."), ("a/./b/.", "a/b"), ("..//x/..", ".."), ("//..//", "/"), ("abc", "abc"),
         ("a//b", "a/b"), ("/a/b/../../..", "/"), ("../../x/./y/..", "../../x"),
         ("./.a/..b/...", ".a/..b/..."), ("a/b/c/../../d", "a/d")]

NAMES = ["a", "abc", "a/b", "bx", "b", "!", "*", "]", "-", "x", "y", "/", "\\", "z", "ac", "m.go", "abc.go",
         "[", "^", "é", "ñ", "", "aXbYc"]
MATCH = [
    ("a*", False, {"a", "abc", "ac", "abc.go", "aXbYc"}),
    ("*", False, {"a", "abc", "bx", "b", "!", "*", "]", "-", "x", "y", "\\", "z", "ac", "m.go", "abc.go",
        "[", "^", "é", "ñ", "", "aXbYc"}),
    ("?", False, {"a", "b", "!", "*", "]", "-", "x", "y", "\\", "z", "[", "^", "é", "ñ"}),
    ("[a-c]x", False, {"bx"}),
    ("[^a]", False, {"b", "!", "*", "]", "-", "x", "y", "/", "\\", "z", "[", "^", "é", "ñ"}),
    ("[!a]", False, {"a", "!"}),
    ("\\*", False, {"*"}),
    ("[", True, set()),
    ("a\\", True, set()),
    ("[]a]", True, set()),
    ("[a-]", True, set()),
    ("[-a]", True, set()),
    ("[\\]]", False, {"]"}),
    ("[\\-]", False, {"-"}),
    ("[x-a]", False, set()),
    ("[^x-a]", False, {"a", "b", "!", "*", "]", "-", "x", "y", "/", "\\", "z", "[", "^", "é", "ñ"}),
    ("[^]", True, set()),
    ("[]", True, set()),
    ("a[", True, set()),
    ("*.go", False, {"m.go", "abc.go"}),
    ("[a-c-e]", True, set()),
    ("[\\\\]", False, {"\\"}),
    ("a?c", False, {"abc"}),
    ("**", False,{"a", "abc", "bx", "b", "!", "*", "]", "-", "x", "y", "\\", "z", "ac", "m.go", "abc.go",
        "[", "^", "é", "ñ", "", "aXbYc"}),
    ("[[]", False, {"["}),
    ("[^^]", False, {"a", "b", "!", "*", "]", "-", "x", "y", "/", "\\", "z", "[", "é", "ñ"}),
    ("[a\\-z]", False, {"a", "-", "z"}),
    ("\\", True, set()),
    ("ab[c", True, set()),
    ("x]", False, set()),
    ("[é-ü]", False, {"é", "ñ"}),
    ("*[", True, set()),
    ("a*b*c", False, {"abc", "aXbYc"}),
    ("[^/]", False, {"a", "b", "!", "*", "]", "-", "x", "y", "\\", "z", "[", "^", "é", "ñ"}),
]


@pytest.mark.parametrize(("path", "want"), CLEAN)
def test_path_clean_is_gos(path: str, want: str) -> None:
    assert golang.path_clean(path) == want


@pytest.mark.parametrize(("pattern", "bad", "matched"), MATCH)
def test_match_is_gos_filepath_match(pattern: str, bad: bool, matched: set[str]) -> None:
    rx = golang.match_regex(pattern)
    assert (rx is None) == bad
    assert {n for n in NAMES if rx is not None and rx.fullmatch(n)} == matched


def test_has_wildcard() -> None:
    assert golang.has_wildcard("a*") and golang.has_wildcard("[ab]") and golang.has_wildcard("x?")
    assert not golang.has_wildcard("a\\*b") and not golang.has_wildcard("plain/path")
    assert golang.has_wildcard("a\\\\*")  # an escaped backslash, then a star


def test_go_json_escapes_as_go_1_22_and_later() -> None:
    """Go 1.22+ (BuildKit v0.32.2: Go 1.27) writes \\b and \\f short; the other controls as
    \\u00XX; <, >, &, U+2028/9 escaped; invalid UTF-8 as \\ufffd. buildctl's own output for a
    Definition carrying these is compared in tests/backends/dump/test_dumpjson.py."""
    j = golang.go_json
    assert j({"s": "a<b>&c\u2028\u2029"}) == '{"s":"a\\u003cb\\u003e\\u0026c\\u2028\\u2029"}'
    assert j(["\b\f\n\t\r\x01\x1f\x7f\"\\"]) == '["\\b\\f\\n\\t\\r\\u0001\\u001f\x7f\\"\\\\"]'
    assert j(b"a\xffb".decode("utf-8", "surrogateescape")) == '"a\\ufffdb"'
    assert j({"n": None, "t": True, "i": -1, "l": [], "é": "é"}) == '{"n":null,"t":true,"i":-1,"l":[],"é":"é"}'


def test_every_layer_uses_the_one_go_helpers() -> None:
    from mason.backends.dump import dumpjson
    from mason.backends.solver import contenthash, fileop, fileop_match
    from mason.frontends.dockerfile import lower_copy

    assert dumpjson.go_json is golang.go_json and lower_util.go_json is golang.go_json
    assert lower_util.clean is golang.path_clean
    for mod in (fileop, fileop_match, contenthash):
        assert mod.match_regex is golang.match_regex and mod.has_wildcard is golang.has_wildcard
    assert lower_copy.has_wildcard is golang.has_wildcard
