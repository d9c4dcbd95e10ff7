"""Shell-word expansion beyond the corpus: pattern modifiers, errors, lookups, escape=`,
lexer options, and a property test (any text expands or raises MasonError)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mason.frontends.dockerfile.shell import ShellError, ShellLex
from mason.ir.errors import MasonError, SourceLoc

ENV = {"a": "foo/bar/baz.tar.gz", "e": "", "s": "x  y", "star": "a*b?c", "PWD": "/home"}
lex = ShellLex()


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # prefix / suffix trimming: one #/% shortest, two longest
        ("${a#*/}", "bar/baz.tar.gz"),
        ("${a##*/}", "baz.tar.gz"),
        ("${a%.*}", "foo/bar/baz.tar"),
        ("${a%%.*}", "foo/bar/baz"),
        ("${a#foo}", "/bar/baz.tar.gz"),
        ("${a#bar}", "foo/bar/baz.tar.gz"),  # not a prefix: unchanged
        ("${a%gz}", "foo/bar/baz.tar."),
        ("${a#f?o/}", "bar/baz.tar.gz"),
        ("${a#}", "foo/bar/baz.tar.gz"),
        ("${a%%}", "foo/bar/baz.tar.gz"),
        ("${a#*}", "foo/bar/baz.tar.gz"),  # shortest match of * is empty
        ("${a##*}", ""),
        ("${unset#x}", ""),
        # escaped wildcards are literal; \} and \/ only protect the delimiter
        ("${star#a\\*}", "b?c"),
        ("${star%\\?c}", "a*b"),
        ("${star#a*\\?}", "c"),
        ("${a#foo\\/}", "bar/baz.tar.gz"),
        # replacement: first match, or all matches (// )
        ("${a/a/A}", "foo/bAr/baz.tar.gz"),
        ("${a//a/A}", "foo/bAr/bAz.tAr.gz"),
        ("${a/*/X}", "X"),  # greedy
        ("${a//\\//:}", "foo:bar:baz.tar.gz"),
        ("${a/nomatch/X}", "foo/bar/baz.tar.gz"),
        ("${a/b?r/$PWD}", "foo//home/baz.tar.gz"),  # replacement text is expanded first
        ("${a//o/}", "f/bar/baz.tar.gz"),
        ("${unset/x/y}", ""),
        # Go's ReplaceAllString expands $0 in the template (BuildKit passes \$0 through)
        ("${a//a/[\\$0]}", "foo/b[\\a]r/b[\\a]z.t[\\a]r.gz"),
        ("${e//*/X}", "X"),  # an empty match at 0 is replaced once
        ("${s//*/X}", "X"),  # and not again right after a match
        # -, +, ? with and without :
        ("${e-d}", ""),
        ("${e:-d}", "d"),
        ("${e+d}", "d"),
        ("${e:+d}", ""),
        ("${e?}", ""),
        ("${a:+'q  q'}", "q  q"),
        ("${unset:-\"q  $PWD\"}", "q  /home"),
    ],
)
def test_modifiers(word: str, expected: str) -> None:
    assert lex.process_word(word, ENV) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${unset:?must be set}", "unset: must be set"),
        ("${unset?}", "unset: is not allowed to be unset"),
        ("${e:?}", "e: is not allowed to be empty"),
        ("${e:?gone $PWD}", "e: gone /home"),
        ("${a:#x}", "unsupported modifier (:#) in substitution"),
        ("${a:%x}", "unsupported modifier (:%) in substitution"),
        ("${a:=x}", "unsupported modifier (:=) in substitution"),
        ("${a=x}", "unsupported modifier (=) in substitution"),
        ("${a.}", "unsupported modifier (.) in substitution"),
        ("${}", "syntax error: bad substitution"),
        ("${:-x}", "syntax error: bad substitution"),
        ("${a", "syntax error: missing '}'"),
        ("${a:-x", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${a/x", "syntax error: missing '/' in ${}"),
        ("${a/x/y", "syntax error: missing '}'"),
        ("${a#\\x}", "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
        ("'abc", "unexpected end of statement while looking for matching single-quote"),
        ('"abc', "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_errors(word: str, message: str) -> None:
    with pytest.raises(ShellError) as info:
        lex.process_word(word, ENV)
    assert info.value.message == message
    assert info.value.word == word
    assert info.value.loc is None


def test_error_carries_location() -> None:
    loc = SourceLoc("Dockerfile", 3, 9)
    with pytest.raises(MasonError) as info:
        lex.process_word("${x:?needed}", {}, loc=loc)
    assert info.value.loc == loc
    assert info.value.format() == "Dockerfile:3:9: error: x: needed"


def test_matches() -> None:
    env = {"A": "1", "E": ""}
    result, used, unmatched = lex.process_word_with_matches(
        "$A${E:-x}${B:-$C}'$D'\\$F$1", env)
    assert result == "1x$D$F"
    assert used == {"A", "E"}
    assert unmatched == {"B", "C", "1"}
    assert lex.process_word_with_matches("plain", env) == ("plain", set(), set())


def test_expand_gives_everything_at_once() -> None:
    r = lex.expand("a $s 'b  c'", ENV)
    assert r.result == "a x  y b  c"
    assert r.words == ["a", "x", "y", "b  c"]
    assert r.used == {"s"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("", []),
        ("   ", []),
        ("a\tb\nc", ["a", "b", "c"]),
        ('"" a ""', ["a"]),
        ("''", []),
        ("a\u00a0b", ["a", "b"]),  # Go's unicode.IsSpace
        ("a\x1cb", ["a\x1cb"]),  # not a space to Go, though str.isspace says so
        ("$s", ["x", "y"]),
        ('"$s"', ["x  y"]),
        ("${e}", []),
    ],
)
def test_word_splitting(word: str, expected: list[str]) -> None:
    assert lex.process_words(word, ENV) == expected


class TestBacktickEscape:
    lex = ShellLex("`")

    @pytest.mark.parametrize(
        ("word", "expected"),
        [
            ("he`$PWD", "he$PWD"),
            ("he\\$PWD", "he\\/home"),  # \ is an ordinary character
            ("C:\\Users\\me", "C:\\Users\\me"),
            ('"a`"b"', 'a"b'),
            ('"a``b"', "a`b"),
            ('"a`b"', "a`b"),  # only " $ ` are escaped inside double quotes
            ('"a\\"b', "a\\b"),
            ('"a', "error"),
            ("a``", "a`"),
            ("a`", "a"),
            ("'a`b'", "a`b"),
            ("${X:-`}}", "}"),
            # ${} patterns always escape with \; the backtick is kept and is literal there
            ("${PWD#`/}", "/home"),
            ("${PWD#\\/}", "home"),
        ],
    )
    def test_word(self, word: str, expected: str) -> None:
        env = {"PWD": "/home"}
        if expected == "error":
            with pytest.raises(MasonError):
                self.lex.process_word(word, env)
        else:
            assert self.lex.process_word(word, env) == expected

    def test_words(self) -> None:
        assert self.lex.process_words("a` b c\\ d", {}) == ["a b", "c\\", "d"]


def test_escape_must_be_one_character() -> None:
    with pytest.raises(ValueError):
        ShellLex("ab")


class TestOptions:
    def test_raw_quotes(self) -> None:
        raw = ShellLex(raw_quotes=True)
        assert raw.process_word("'a $b' \"c $PWD\"", {"PWD": "/h"}) == "'a $b' \"c /h\""

    def test_raw_escapes(self) -> None:
        raw = ShellLex(raw_escapes=True)
        assert raw.process_word("a\\$b\\ c", {"b": "x"}) == "a\\$b\\ c"

    def test_skip_process_quotes(self) -> None:
        skip = ShellLex(skip_process_quotes=True)
        assert skip.process_word("'$x' \"y", {"x": "1"}) == "'1' \"y"

    def test_skip_unset_env(self) -> None:
        keep = ShellLex(skip_unset_env=True)
        env = {"A": "1"}
        assert keep.process_word("$A $B ${C} ${D:-d} ${E/x/y}", env) == "1 $B ${C} ${D:-d} ${E/x/y}"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    word = "${a:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(MasonError, match="nested too deeply"):
        lex.process_word(word, {})
    assert lex.process_word("${a:-" * 50 + "x" + "}" * 50, {}) == "x"


SHELLY = st.text(alphabet=st.sampled_from(list("ab $\\'\"{}:-+?#%/*`!@0 \t")) | st.characters(),
                 max_size=40)


@settings(max_examples=1500, deadline=None)
@given(word=SHELLY, escape=st.sampled_from(["\\", "`"]))
def test_anything_expands_or_raises_mason_error(word: str, escape: str) -> None:
    env = {"a": "a*b/c", "b": "", "0": "zero"}
    lexer = ShellLex(escape)
    try:
        r = lexer.expand(word, env)
    except MasonError:
        return
    assert isinstance(r.result, str)
    assert all(w for w in r.words)
    assert r.used <= env.keys()
    assert not (r.unmatched & env.keys())
    # the cheap entry points agree with the full scan
    assert lexer.process_word(word, env) == r.result
    assert lexer.process_words(word, env) == r.words


@settings(max_examples=300, deadline=None)
@given(word=st.text(alphabet=st.characters(blacklist_characters="$\\'\""), max_size=40))
def test_words_without_specials_are_unchanged(word: str) -> None:
    assert lex.process_word(word, {}) == word
    assume(not any(ch in word for ch in "\x1c\x1d\x1e\x1f"))  # spaces to Python, not to Go
    assert lex.process_words(word, {}) == word.split()
