"""mason.ir.golang: the one home of Go's string quoting (strconv.Quote / %q) and JSON text.
The full strconv.Quote case table is tests/frontends/dockerfile/test_syntax.py::test_go_quote
(it reaches this implementation through the syntax layer)."""

from __future__ import annotations

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
