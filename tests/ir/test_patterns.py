""".dockerignore / exclude-pattern semantics (moby patternmatcher): parsing, matching,
can_skip_dir, the <Dockerfile>.dockerignore precedence and include/exclude filtering."""

from __future__ import annotations

import pytest

from mason.ir.errors import MasonError
from mason.ir.patterns import (
    MatchResult,
    Pattern,
    PatternMatcher,
    clean_path,
    filter_paths,
    find_dockerignore,
    parse_dockerignore,
    parse_pattern,
    parse_patterns,
)


def excluded(patterns: list[str], path: str) -> bool:
    return PatternMatcher(patterns).match(path).excluded


# -- parsing --------------------------------------------------------------------------------------

def test_parse_keeps_lines_and_raw_text() -> None:
    text = "# comment\n\n  node_modules  \n!keep.txt\n/abs/\r\n \n#another\n./a/../b//c/\n"
    got = parse_dockerignore(text, "ctx/.dockerignore")
    assert got == [
        Pattern("node_modules", False, 3, "  node_modules  "),
        Pattern("keep.txt", True, 4, "!keep.txt"),
        Pattern("abs", False, 5, "/abs/"),
        Pattern("b/c", False, 8, "./a/../b//c/"),
    ]
    assert [str(p) for p in got] == ["node_modules", "!keep.txt", "abs", "b/c"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("foo", "foo"),
        ("/foo", "foo"),
        ("foo/", "foo"),
        ("//foo//", "foo"),
        ("./foo", "foo"),
        ("foo/./bar", "foo/bar"),
        ("foo/../bar", "bar"),
        ("/../foo", "foo"),
        ("../foo", "../foo"),  # stays, and matches nothing inside the context
        ("\tfoo \u00a0", "foo"),
        ("! foo", "!foo"),
        ("!/foo/", "!foo"),
        ("!!foo", "!!foo"),  # an exception for a file named !foo
        ("**/", "**"),
        ("a\\*b", "a\\*b"),
    ],
)
def test_parse_normalizes(line: str, expected: str) -> None:
    (p,) = parse_dockerignore(line)
    assert str(p) == expected


@pytest.mark.parametrize("line", ["", "   ", ".", "/", "./", "a/..", "/..", "# x", "#"])
def test_parse_ignores(line: str) -> None:
    assert parse_dockerignore(line) == []


def test_comment_only_in_first_column() -> None:
    (p,) = parse_dockerignore(" #notacomment")
    assert p.text == "#notacomment"
    assert excluded([p], "#notacomment")


def test_bom_and_crlf() -> None:
    got = parse_dockerignore("\ufeff# c\r\nfoo\r\n")
    assert [(p.text, p.line) for p in got] == [("foo", 2)]


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("ok\nfoo[ab\n", 2, 4, "bad pattern \"foo[ab\": unterminated character class '['"),
        ("  x/[", 1, 5, "bad pattern \"x/[\": unterminated character class '['"),
        ("a[]b", 1, 3, "bad pattern \"a[]b\": unexpected ']' in character class"),
        ("a[-z]", 1, 3, "bad pattern \"a[-z]\": unexpected '-' in character class"),
        ("[z-a]", 1, 1, "bad pattern \"[z-a]\": bad range z-a in character class"),
        ("x\n\n!foo\\", 3, 5, "bad pattern \"!foo\\\": trailing backslash"),
        ("!", 1, 1, 'illegal exclusion pattern: "!"'),
        ("  !  ", 1, 3, 'illegal exclusion pattern: "!"'),
    ],
)
def test_parse_errors_are_located(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(MasonError) as info:
        parse_dockerignore(text, "Dockerfile.dockerignore")
    e = info.value
    assert (e.loc.file, e.loc.line, e.loc.col) == ("Dockerfile.dockerignore", line, col)
    assert e.message == message
    assert e.source_line == text.split("\n")[line - 1]


def test_parse_error_format() -> None:
    with pytest.raises(MasonError) as info:
        parse_dockerignore("ok\nsrc/[ab\n")
    assert str(info.value) == (
        ".dockerignore:2:5: error: bad pattern \"src/[ab\": unterminated character class '['\n"
        "    src/[ab\n"
        "        ^")


def test_parse_patterns_for_llb_attrs() -> None:
    assert [str(p) for p in parse_patterns(["a/", "", "!b", ".", "/c"])] == ["a", "!b", "c"]
    assert parse_pattern(" . ") is None


# -- matching -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # plain names and parents: a pattern excludes what is under a matched directory
        ("foo", "foo", True),
        ("foo", "foo/bar/baz", True),
        ("foo", "a/foo", False),
        ("foo", "foobar", False),
        ("foo/bar", "foo/bar/x", True),
        ("foo/bar", "foo", False),
        # * and ? stay inside one element
        ("*.log", "x.log", True),
        ("*.log", "d/x.log", False),
        ("*/*.log", "d/x.log", True),
        ("*", "anything/at/all", True),
        ("f?o", "foo", True),
        ("f?o", "f/o", False),
        ("fo*", "fo", True),
        # ** : leading, middle, trailing; zero or more directories
        ("**/foo", "foo", True),
        ("**/foo", "a/b/foo", True),
        ("**/foo", "a/b/foo/c", True),
        ("**/foo", "a/xfoo", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/b/c/zz", False),
        ("a/**", "a/b", True),
        ("a/**", "a/b/c", True),
        ("a/**", "a", False),
        ("**", "x/y", True),
        ("**/*.go", "main.go", True),
        ("**/*.go", "cmd/x/main.go", True),
        ("**/*.go", "cmd/x/main.gox", False),
        ("a**b", "ab", True),  # moby: ** inside an element still means "(any dirs/)?"
        ("a**b", "a/x/b", True),
        ("a**b", "axb", False),
        ("**.log", "deep/dir/x.log", True),  # moby's suffix match: ** + literal text
        ("**foo", "dir/xfoo", True),
        ("**/*/x", "a/b/x", True),
        # character classes
        ("[abc].txt", "b.txt", True),
        ("[abc].txt", "d.txt", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "bx", False),
        ("[!a]x", "!x", True),  # like Go's filepath.Match, ! is not negation
        ("[!a]x", "bx", False),
        ("[\\]]", "]", True),
        ("[\\-]", "-", True),
        ("[*]", "*", True),
        ("[*]", "x", False),
        ("x]", "x]", True),
        # escapes
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("\\[x\\]", "[x]", True),
        ("a\\b", "ab", True),
        # regex metacharacters are literal
        ("a.b", "axb", False),
        ("a.b", "a.b", True),
        ("a+(b)|{c}$^", "a+(b)|{c}$^", True),
        ("*^", "x^", True),
        # whatever the spelling of the path
        ("foo/bar", "./foo//bar/", True),
        ("foo", "/foo", True),
    ],
)
def test_match(pattern: str, path: str, expected: bool) -> None:
    assert excluded([pattern], path) is expected


def test_root_is_never_excluded() -> None:
    pm = PatternMatcher(["*", "**"])
    assert pm.match(".") == MatchResult(False, None, None)
    assert pm.match("") == MatchResult(False, None, None)
    assert not pm.can_skip_dir(".")


def test_exceptions_and_last_match_wins() -> None:
    pm = PatternMatcher(parse_dockerignore(
        "dir\n!dir/keep.txt\n*.md\n!README.md\nREADME.md\nbuild/\n!build/out\nbuild/out/tmp\n"))
    assert pm.match("dir/other") == MatchResult(True, 1, "dir")
    assert pm.match("dir/keep.txt") == MatchResult(False, 2, "!dir/keep.txt")
    assert pm.match("dir/keep.txt/inner") == MatchResult(False, 2, "!dir/keep.txt")
    assert pm.match("dir") == MatchResult(True, 1, "dir")
    assert pm.match("x.md") == MatchResult(True, 3, "*.md")
    assert pm.match("README.md") == MatchResult(True, 5, "README.md")  # re-excluded later
    assert pm.match("build/out/a") == MatchResult(False, 7, "!build/out")
    assert pm.match("build/out/tmp/a") == MatchResult(True, 8, "build/out/tmp")
    assert pm.match("src/main.c") == MatchResult(False, None, None)


def test_exception_before_exclusion_has_no_effect() -> None:
    assert excluded(["!keep", "*"], "keep")
    assert not excluded(["*", "!keep"], "keep")


def test_exception_with_wildcards_under_excluded_dir() -> None:
    pm = PatternMatcher(["**/node_modules", "!**/node_modules/keep.js"])
    assert pm.match("a/node_modules/x.js").excluded
    assert not pm.match("a/node_modules/keep.js").excluded
    assert not pm.can_skip_dir("a/node_modules")


def test_strings_and_patterns_mix() -> None:
    pm = PatternMatcher(["a", Pattern("a/b", negated=True)])
    assert pm.match("a/b") == MatchResult(False, None, "!a/b")
    assert pm.has_exceptions
    assert repr(pm) == "PatternMatcher(['a', '!a/b'])"


def test_no_patterns() -> None:
    pm = PatternMatcher()
    assert pm.match("x") == MatchResult(False, None, None)
    assert not pm.can_skip_dir("x")
    assert not pm.has_exceptions


# -- can_skip_dir ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("patterns", "directory", "expected"),
    [
        (["build"], "build", True),
        (["build"], "build/sub", True),
        (["build"], "src", False),
        (["build", "!build/keep"], "build", False),
        (["build", "!build/keep"], "build/other", True),
        (["build", "!other/keep"], "build", True),
        (["build", "!*.md"], "build", True),  # *.md only matches at the top
        (["build", "!**/*.md"], "build", False),
        (["build", "!**.md"], "build", False),
        (["build", "!b*/x"], "build", False),
        (["build", "!b?ild/x"], "build", False),
        (["build", "![ab]uild/x"], "build", False),
        (["build", "![^b]uild/x"], "build", True),
        (["!build/keep", "build"], "build", True),  # the exception comes first: no effect
        (["**/node_modules", "!node_modules/keep"], "a/node_modules", True),
        (["**/node_modules", "!node_modules/keep"], "node_modules", False),
        (["*", "!a/**/z"], "a", False),
        (["*", "!a/**/z"], "b", True),
        (["*", "!a/**"], "a", False),
        (["a", "!a"], "a", False),  # not excluded at all
    ],
)
def test_can_skip_dir(patterns: list[str], directory: str, expected: bool) -> None:
    assert PatternMatcher(patterns).can_skip_dir(directory) is expected


# -- the ignore file ------------------------------------------------------------------------------

def test_find_dockerignore_precedence(tmp_path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    assert find_dockerignore(ctx) == (None, None)
    assert find_dockerignore(ctx, ctx / "Dockerfile") == (None, None)

    (ctx / ".dockerignore").write_text("root\n")
    assert find_dockerignore(ctx) == (ctx / ".dockerignore", "root\n")

    (ctx / "Dockerfile.dockerignore").write_text("specific\n")
    assert find_dockerignore(ctx) == (ctx / "Dockerfile.dockerignore", "specific\n")
    assert find_dockerignore(str(ctx), str(ctx / "Dockerfile")) == (
        ctx / "Dockerfile.dockerignore", "specific\n")

    # the name follows the Dockerfile's, and the file sits beside it (even outside the context)
    other = tmp_path / "dockerfiles"
    other.mkdir()
    (other / "app.Dockerfile.dockerignore").write_text("app\n")
    assert find_dockerignore(ctx, other / "app.Dockerfile") == (
        other / "app.Dockerfile.dockerignore", "app\n")
    assert find_dockerignore(ctx, other / "web.Dockerfile") == (ctx / ".dockerignore", "root\n")
    assert find_dockerignore(ctx, "-") == (ctx / ".dockerignore", "root\n")

    # a directory of that name is not an ignore file
    (ctx / ".dockerignore").unlink()
    (ctx / "Dockerfile.dockerignore").unlink()
    (ctx / ".dockerignore").mkdir()
    assert find_dockerignore(ctx) == (None, None)


def test_find_dockerignore_then_parse(tmp_path) -> None:
    (tmp_path / "Dockerfile.dockerignore").write_text("*.tmp\n!keep.tmp\n")
    path, text = find_dockerignore(tmp_path)
    pm = PatternMatcher(parse_dockerignore(text, path.name))
    assert pm.match("a.tmp") == MatchResult(True, 1, "*.tmp")
    assert pm.match("keep.tmp") == MatchResult(False, 2, "!keep.tmp")


# -- include / exclude filtering ------------------------------------------------------------------

TREE = ["a", "a/b", "a/b/c.txt", "a/b/d.log", "a/e.txt", "f.txt", "g", "g/h.log"]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ([], [], TREE),
        ([], ["*.txt"], ["a", "a/b", "a/b/c.txt", "a/b/d.log", "a/e.txt", "g", "g/h.log"]),
        ([], ["**/*.log"], ["a", "a/b", "a/b/c.txt", "a/e.txt", "f.txt", "g"]),
        (["a/b"], [], ["a", "a/b", "a/b/c.txt", "a/b/d.log"]),
        (["**/*.txt"], [], ["a", "a/b", "a/b/c.txt", "a/e.txt", "f.txt"]),
        (["a"], ["a/b"], ["a", "a/e.txt"]),
        ([], ["a", "!a/b/c.txt"], ["a", "a/b", "a/b/c.txt", "f.txt", "g", "g/h.log"]),
        (["nothing"], [], []),
    ],
)
def test_filter_paths(include: list[str], exclude: list[str], expected: list[str]) -> None:
    assert filter_paths(TREE, include, exclude) == expected


def test_filter_paths_keeps_the_callers_spelling() -> None:
    assert filter_paths(["./a/", "b"], exclude=["b"]) == ["./a/"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "."), (".", "."), ("a//b/", "a/b"), ("/../a", "/a"), ("a/../../b", "../b"),
     ("//a", "/a"), ("./.", "."), ("a/./b/..", "a")],
)
def test_clean_path(path: str, expected: str) -> None:
    assert clean_path(path) == expected
