"""Property tests of the syntax layer: any input either parses or fails with a MasonError
located inside the input; the fast paths agree with BuildKit's state machines."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mason.frontends.dockerfile import syntax_words
from mason.frontends.dockerfile.syntax import dump, parse_dockerfile
from mason.ir.errors import MasonError

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpus" / "dockerfile-parser"
CORPUS_TEXTS = [
    p.read_bytes().decode("utf-8", "surrogateescape")
    for p in sorted(CORPUS.glob("testfiles*/*/Dockerfile")) + [CORPUS / "testfile-line" / "Dockerfile"]
] if CORPUS.is_dir() else ["FROM a\n"]

SETTINGS = settings(max_examples=int(__import__("os").environ.get("MASON_HYPOTHESIS_EXAMPLES", "200")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# pieces that exercise every branch: instructions, flags, quotes, escapes, JSON, heredocs,
# directives, comments, continuations, odd whitespace
PIECES = [
    "FROM", "RUN", "CMD", "ENV", "LABEL", "ARG", "COPY", "ADD", "ONBUILD", "HEALTHCHECK", "SHELL",
    "VOLUME", "EXPOSE", "WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER", "ENTRYPOINT", "foo",
    " ", "  ", "\t", "\n", "\r\n", "\\", "\\\n", "`", "`\n", "#", "# escape=`\n", "# syntax=x\n",
    "# check=skip=all\n", "# escape=x\n", "\ufeff", "--", "--a=b", "--x", "=", "a", "b=c", "'", '"',
    "[", "]", ",", '"s"', "1", "null", "{}", "<<EOF", "<<-EOF", "<<'EOF'", "3<<X", "EOF", "\tEOF",
    "X", "$", "${", "}", "${a:-b}", "\u00a0", "\u3000", "é", "\x0b", "\x0c", "\x85", "\udcff",
    "CMD", "NONE",
]
dockerish = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def check_outcome(text: str) -> None:
    try:
        result = parse_dockerfile(text, "Dockerfile")
    except MasonError as e:
        assert e.loc is not None, e
        assert e.loc.file == "Dockerfile"
        body = text[1:] if text.startswith("\ufeff") else text
        lines = body.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        assert 1 <= e.loc.line <= len(lines), (e.loc, len(lines))
        physical = lines[e.loc.line - 1].rstrip("\r")
        assert 1 <= e.loc.col <= len(physical) + 1, (e.loc, physical)
        assert e.message
        e.format()
        return
    assert result.nodes
    for node in result.nodes:
        assert node.loc is not None and node.loc.line <= node.loc.end_line
        assert node.name == node.name.lower() or not node.name.isascii()
    dump(result)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    check_outcome(text)


@SETTINGS
@given(dockerish)
def test_dockerfile_like_text(text):
    check_outcome(text)


@st.composite
def mutated_corpus(draw):
    text = draw(st.sampled_from(CORPUS_TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(PIECES) | st.text(max_size=3))
        if kind == "insert":
            text = text[:pos] + piece + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)):]
        else:
            text = text[:pos] + piece + text[pos + len(piece):]
    return text


@SETTINGS
@given(mutated_corpus())
def test_mutated_corpus(text):
    check_outcome(text)


word_text = st.lists(st.sampled_from(["a", "b", " ", "\t", "'", '"', "\\", "`", "=", "\u00a0", "é"]),
                     max_size=30).map("".join)


@SETTINGS
@given(word_text, st.sampled_from(["\\", "`"]))
def test_parse_words_fast_path_matches_state_machine(text, esc):
    assert syntax_words.parse_words(text, esc) == syntax_words.parse_words_slow(text, esc)


flag_text = st.lists(st.sampled_from(["--", "-", "a", "=", " ", "\t", "'", '"', "\\", "x y"]),
                     max_size=20).map("".join)


@SETTINGS
@given(flag_text)
def test_flag_fast_path_matches_state_machine(text):
    assert syntax_words.extract_builder_flags(text) == syntax_words._extract_flags(text.lstrip(" \t"))


line_text = st.lists(st.sampled_from(["RUN", "a", " ", "  ", "\t", "-", "--x", "\u3000", "\x1c", "\x85",
                                      "\u00a0", "é", "\v", "=", '"']), min_size=1, max_size=12).map("".join)


@SETTINGS
@given(line_text)
def test_simple_line_fast_path_matches_split_command(line):
    from mason.frontends.dockerfile.syntax_lexer import SIMPLE_LINE as _SIMPLE_LINE

    m = _SIMPLE_LINE.match(line)
    if m is not None:
        cmd, flags, rest, off, dashdash = syntax_words.split_command(line)
        assert (m.group(1), m.group(2), m.start(2)) == (cmd, rest, off) and flags == [] and not dashdash


flags_line = st.lists(st.sampled_from(["COPY", " ", "--a=1", "--b", "--", "-", "x", "'q'", "\\", "é", "\t"]),
                      min_size=1, max_size=10).map("".join)


@SETTINGS
@given(flags_line)
def test_flags_line_fast_path_matches_split_command(line):
    from mason.frontends.dockerfile.syntax_lexer import SIMPLE_FLAGS_LINE as _SIMPLE_FLAGS_LINE

    m = _SIMPLE_FLAGS_LINE.match(line)
    if m is not None:
        cmd, flags, rest, off, dashdash = syntax_words.split_command(line)
        assert (m.group(1), tuple(m.group(2)[:-1].split(" ")), m.group(3), m.start(3)) == (cmd, tuple(flags), rest, off) and not dashdash
