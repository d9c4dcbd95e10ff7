"""The lark side of the syntax layer: the grammar builds without conflicts, items parse to the
trees the grammar describes, replaying an item's shape gives what a whole-file lark parse gives,
and both agree with the hand-written reference parser (nodes, spans, comments, warnings,
errors and their locations) on the corpus and on generated text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lark import Token

from mason.frontends.dockerfile import syntax
from mason.frontends.dockerfile.syntax import dump, parse_dockerfile
from mason.frontends.dockerfile.syntax_lexer import Item, Reader
from mason.ir.errors import MasonError
from tests.frontends.dockerfile import handwritten_parser as syntax_handwritten

from .test_syntax_props import CORPUS_TEXTS, SETTINGS, dockerish, mutated_corpus


def _deep(node):
    return None if node is None else (node, node.loc, node.comments, _deep(node.onbuild))


def outcome(parse, text: str, **kw):
    """Everything a parse yields, locations included (which ``==`` on nodes leaves out)."""
    try:
        r = parse(text, "Dockerfile", **kw)
    except MasonError as e:
        return ("error", e.message, e.loc, e.source_line)
    return ("ok", [_deep(n) for n in r.nodes], r.loc, r.warnings, [(d, d.loc) for d in r.directives], r.escape)


def check_same(text: str) -> None:
    replayed = outcome(parse_dockerfile, text)
    assert outcome(parse_dockerfile, text, replay=False) == replayed
    assert outcome(syntax_handwritten.parse_dockerfile, text) == replayed


# -- the grammar ---------------------------------------------------------------------------------


def test_grammar_is_conflict_free():
    parser = syntax._parser()  # strict mode: a shift/reduce conflict would raise here
    assert parser.options.strict and parser.options.propagate_positions


def _item_tree(text: str):
    reader = Reader(text, "Dockerfile")
    reader.read_header()
    [fields] = list(reader.items())
    return syntax._parser().parse(syntax._lark_tokens(Item(*fields), 0), start="item")


def test_item_tree_follows_the_grammar():
    tree = _item_tree("# why\nONBUILD COPY --chown=a -- <<EOF /x\nbody\nEOF\n")
    assert tree.data == "item"
    comments, onbuild = tree.children
    assert [t.type for t in comments.children] == ["COMMENT"]
    assert onbuild.data == "onbuild"
    keyword, flags, copy = onbuild.children
    assert keyword.type == "ONBUILD" and flags.children == []
    assert copy.data == "copy"
    assert [c.data if hasattr(c, "data") else c.type for c in copy.children] == [
        "COPY", "flags", "WORD", "WORD", "heredoc"]
    assert [t.type for t in copy.children[1].children] == ["FLAG", "DASHDASH"]
    # positions: physical line/column; start_pos/end_pos count tokens
    assert (copy.meta.line, copy.meta.column) == (2, 9)
    assert (copy.meta.start_pos, copy.meta.end_pos) == (2, 8)
    assert copy.children[4].children[0].value.content == "body\n"


@pytest.mark.parametrize(
    "line, rule, kinds",
    [
        ('RUN ["a", "b"]', "run", ["RUN", "flags", "exec_form"]),
        ("RUN a b", "run", ["RUN", "flags", "shell_form"]),
        ("ENV a=1 b=2", "pairs", ["ENV", "flags", "pair", "pair"]),
        ("LABEL a b c", "pairs", ["LABEL", "flags", "legacy_pair"]),
        ("HEALTHCHECK --retries=3 CMD [\"x\"]", "healthcheck", ["HEALTHCHECK", "flags", "WORD", "exec_form"]),
        ("FROM a AS b", "words", ["FROM", "flags", "WORD", "WORD", "WORD"]),
        ("USER app", "text", ["USER", "flags", "TEXT"]),
        ("FOO bar", "other", ["OTHER", "flags", "IGNORED"]),
    ],
)
def test_argument_forms(line, rule, kinds):
    tree = _item_tree(line + "\n")
    node = tree.children[1]
    assert node.data == rule
    assert [c.data if hasattr(c, "data") else c.type for c in node.children] == kinds


def test_lark_rejects_what_no_rule_accepts():
    from lark.exceptions import UnexpectedToken

    parser = syntax._parser()
    with pytest.raises(UnexpectedToken):  # ENV's legacy pair without its value
        parser.parse([Token("ENV", "env"), Token("KEY", "a"), Token("_NL", "")], start="item")
    with pytest.raises(UnexpectedToken):  # an item is one instruction
        parser.parse([Token("RUN", "run"), Token("RUN", "run"), Token("_NL", "")], start="item")


# -- replay ----------------------------------------------------------------------------------------


def test_shapes_are_learned_once_per_type_sequence():
    syntax._SHAPES.clear()
    parse_dockerfile("FROM a\nRUN x\nRUN y\nRUN --m=1 z\n")
    assert len(syntax._SHAPES) == 3  # FROM WORD; RUN TEXT; RUN FLAG TEXT
    key = ("RUN", "TEXT")
    shape = syntax._SHAPES[key]
    parse_dockerfile("RUN other\n")
    assert syntax._SHAPES[key] is shape


def test_shape_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(syntax, "_MAX_SHAPES", 2)
    syntax._SHAPES.clear()
    text = "FROM a\nRUN x\nEXPOSE 1 2\nARG a b c\n"
    assert dump(parse_dockerfile(text)) == dump(parse_dockerfile(text, replay=False))
    assert len(syntax._SHAPES) <= 2


def test_error_across_items_in_a_whole_file_parse():
    # whole-file: lark notices the missing value only at the next item's first token
    for replay in (True, False):
        with pytest.raises(MasonError) as info:
            parse_dockerfile("FROM x\nENV PA\\\nTH\nRUN y\n", "df", replay=replay)
        assert info.value.message == "ENV must have two arguments"
        assert (info.value.loc.line, info.value.loc.col, info.value.loc.end_line) == (3, 3, 3)


# -- agreement ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(CORPUS_TEXTS)))
def test_corpus_agrees(index):
    check_same(CORPUS_TEXTS[index])


@pytest.mark.parametrize(
    "text",
    [
        "ONBUILD\nFROM a\n",
        "FROM a\nONBUILD ONBUILD \\\n  RUN x <<EOF\nbody\nEOF\n",
        "# a\n#\n# b\nFROM a\n# trailing\n",
        "# escape=`\nFROM a `\n  b\nRUN [\"a\", `\n 1]\n",
        "FROM a\nCOPY -- --x /y\nCOPY --\n",
        "FROM a\nENV a=1 b c=2\n",
        "FROM a\nLABEL k\n",
        "# only comments\n\n",
        "FROM a\nRUN " + "x" * 70000 + "\n",
    ],
)
def test_examples_agree(text):
    check_same(text)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_agrees(text):
    check_same(text)


@SETTINGS
@given(dockerish)
def test_dockerfile_like_text_agrees(text):
    check_same(text)


@SETTINGS
@given(mutated_corpus())
def test_mutated_corpus_agrees(text):
    check_same(text)
