"""Syntax layer: BuildKit's parser conformance cases, located errors, directives, heredocs and
the ``mason parse`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from mason.cli.main import main
from mason.frontends.dockerfile.syntax import detect_directive, dump, go_quote, parse_dockerfile
from mason.ir.errors import MasonError

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpus" / "dockerfile-parser"
POSITIVE = sorted(p.name for p in (CORPUS / "testfiles").iterdir()) if CORPUS.is_dir() else []
NEGATIVE = sorted(p.name for p in (CORPUS / "testfiles-negative").iterdir()) if CORPUS.is_dir() else []


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "surrogateescape")


def error_of(text: str, filename: str = "Dockerfile") -> MasonError:
    with pytest.raises(MasonError) as info:
        parse_dockerfile(text, filename)
    return info.value


# -- conformance -------------------------------------------------------------------------------


def test_corpus_is_complete():
    assert len(POSITIVE) == 33 and len(NEGATIVE) == 4


@pytest.mark.parametrize("case", POSITIVE)
def test_corpus_dump(case):
    path = CORPUS / "testfiles" / case / "Dockerfile"
    expected = (CORPUS / "testfiles" / case / "result").read_text()
    assert dump(parse_dockerfile(read(path), str(path))) == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_corpus_negative(case):
    path = CORPUS / "testfiles-negative" / case / "Dockerfile"
    text = read(path)
    err = error_of(text, str(path))
    assert err.loc is not None and err.loc.file == str(path)
    lines = text.split("\n")
    assert 1 <= err.loc.line <= max(len(lines), 1)
    assert 1 <= err.loc.col <= len(lines[err.loc.line - 1]) + 1


NEGATIVE_MESSAGES = {
    "empty_dockerfile": "file with no instructions",
    "only_comments": "file with no instructions",
    "env_no_value": "ENV must have two arguments",
    "shykes-nested-json": "arrays must be comprised of strings only",
}


@pytest.mark.parametrize("case", NEGATIVE)
def test_corpus_negative_cli(case, capsys):
    path = CORPUS / "testfiles-negative" / case / "Dockerfile"
    for argv in (["parse", str(path)], ["parse", "--dump", str(path)]):
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert NEGATIVE_MESSAGES[case] in captured.err
        assert captured.err.startswith(f"{path}:")
        assert captured.out == ""


def test_line_numbers():
    path = CORPUS / "testfile-line" / "Dockerfile"
    result = parse_dockerfile(read(path), str(path))
    assert (result.loc.line, result.loc.end_line) == (5, 31)
    assert [(n.loc.line, n.loc.end_line) for n in result.nodes] == [(5, 5), (11, 12), (17, 31)]
    assert [n.name for n in result.nodes] == ["from", "env", "run"]


def test_negative_locations():
    base = CORPUS / "testfiles-negative"
    err = error_of(read(base / "env_no_value" / "Dockerfile"))
    assert (err.loc.line, err.loc.col) == (3, 9)
    err = error_of(read(base / "shykes-nested-json" / "Dockerfile"))
    assert (err.loc.line, err.loc.col) == (1, 15)  # the nested array
    err = error_of(read(base / "empty_dockerfile" / "Dockerfile"))
    assert (err.loc.line, err.loc.col) == (1, 1)


# -- located errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, col, message",
    [
        ("FROM x\nRUN cat <<EOF\nhello\n", 2, 9, 'unterminated heredoc "EOF"'),
        ("FROM x\nCOPY <<a <<-b /\nA\na\n\tb-not\n", 2, 10, 'unterminated heredoc "b"'),
        ("# escape=x\nFROM a\n", 1, 10, "invalid escape token 'x' does not match ` or \\"),
        ("#escape = `\n# ESCAPE=\\\nFROM a\n", 2, 3, "only one escape parser directive can be used"),
        ("# syntax=a\n# check=skip=all\n# syntax=b\nFROM x\n", 3, 3, "only one syntax parser directive can be used"),
        ("FROM x\nENV PATH\n", 2, 9, "ENV must have two arguments"),
        ("FROM x\nLABEL   a\n", 2, 10, "LABEL must have two arguments"),
        ("FROM x\nENV a=1 b c=2\n", 2, 9, "Syntax error - can't find = in \"b\". Must be of the form: name=value"),
        ("FROM x\nRUN [\"a\", \\\n   1]\n", 3, 4, "arrays must be comprised of strings only"),
        ("FROM x\nONBUILD CMD [\"a\", null]\n", 2, 19, "arrays must be comprised of strings only"),
        ("FROM x\nHEALTHCHECK CMD [{}]\n", 2, 18, "arrays must be comprised of strings only"),
        ("  \n\n# only a comment\n", 3, 1, "file with no instructions"),
        ("", 1, 1, "file with no instructions"),
    ],
)
def test_located_errors(text, line, col, message):
    err = error_of(text, "df")
    assert (err.loc.file, err.loc.line, err.loc.col) == ("df", line, col)
    assert message in err.message
    shown = err.format()
    assert shown.startswith(f"df:{line}:{col}: error: ")
    assert shown.endswith(" " * (col - 1) + "^")  # the caret under the column


def test_error_source_line_is_the_physical_line():
    err = error_of("FROM x\r\nENV\fa\r\n")  # \f must not split lines like str.splitlines does
    assert err.loc.line == 2 and err.source_line == "ENV\fa"


def test_line_too_long():
    err = error_of("FROM x\nRUN " + "a" * 70000 + "\n")
    assert "dockerfile line greater than max allowed size of 65535" in err.message
    assert err.loc.line == 2


# -- directives --------------------------------------------------------------------------------


def test_directives_and_bom():
    r = parse_dockerfile("\ufeff# syntax = docker/dockerfile:1.7\n#  ESCAPE=`\n# check=skip=all;error=true\nFROM a `\n  b\n")
    assert [(d.name, d.value, d.loc.line) for d in r.directives] == [
        ("syntax", "docker/dockerfile:1.7", 1), ("escape", "`", 2), ("check", "skip=all;error=true", 3)]
    assert r.escape == "`"
    assert dump(r) == '(from "a" "b")\n'


def test_directive_after_comment_or_blank_line_is_a_comment():
    r = parse_dockerfile("# hello\n# escape=`\nFROM a \\\n b\n")
    assert r.directives == () and r.escape == "\\"
    r = parse_dockerfile("\n# escape=`\nFROM a\n")
    assert r.directives == () and r.escape == "\\"
    r = parse_dockerfile("FROM a\n# escape=`\n")
    assert r.directives == ()
    r = parse_dockerfile("# unknown=1\n# escape=`\nFROM a\n")
    assert r.directives == ()


def test_detect_directive_forms():
    assert detect_directive("# syntax=x/y:1\nFROM a", "syntax").value == "x/y:1"
    assert detect_directive("#!/usr/bin/env buildctl\n# syntax=x\nFROM a", "syntax").value == "x"
    assert detect_directive("// syntax = x\nFROM a", "syntax") is None
    assert detect_directive("// syntax = x\nFROM a", "syntax", any_format=True).value == "x"
    assert detect_directive('{"syntax": "x/y"}', "syntax", any_format=True).value == "x/y"
    assert detect_directive("\ufeff# check=skip=all\nFROM a", "check").value == "skip=all"
    assert detect_directive("FROM a\n# syntax=x", "syntax") is None


# -- instruction forms ---------------------------------------------------------------------------


def dumped(text: str) -> str:
    return dump(parse_dockerfile(text))


def test_accepted_like_buildkit():
    text = (
        "RUN before from\n"
        "FROM --platform=$X --unknown a AS b\n"
        "HEALTHCHECK CONNECT TCP 7000\n"
        "FOO bar baz\n"
        "copy --chown=a:b -- --x /y\n"
        "RUN --mount=type=cache,target=/x --network=none [\"a\"]\n"
        "ENV a b c\n"
        "LABEL \"a b\"=\"c d\" e=f\n"
        "ARG x y=1 \"z\"\n"
        "STOPSIGNAL\n"
        "CMD\n"
        "ONBUILD\n"
        "ONBUILD ONBUILD RUN x\n"
    )
    assert dumped(text) == (
        '(run "before from")\n'
        '(from ["--platform=$X" "--unknown"] "a" "AS" "b")\n'
        '(healthcheck "CONNECT" "TCP 7000")\n'
        '(foo "")\n'
        '(copy ["--chown=a:b"] "--x" "/y")\n'
        '(run ["--mount=type=cache,target=/x" "--network=none"] "a")\n'
        '(env "a" "b c" "")\n'
        '(label "\\"a b\\"" "\\"c d\\"" "=" "e" "f" "=")\n'
        '(arg "x" "y=1" "\\"z\\"")\n'
        "(stopsignal)\n(cmd)\n(onbuild)\n"
        '(onbuild (onbuild (run "x")))\n'
    )


def test_node_fields():
    r = parse_dockerfile("# the base\nFROM a\n\n# build it\n#\n# really\nrun  --x=1 [\"make\",  \"all\"] \n")
    run = r.nodes[1]
    assert run.name == "run" and run.json and run.args == ("make", "all") and run.flags == ("--x=1",)
    assert run.original == 'run  --x=1 ["make",  "all"] '
    assert (run.loc.line, run.loc.col, run.loc.end_line) == (7, 1, 7)
    assert r.nodes[0].comments == ("the base",)
    assert run.comments == ("really",)  # an empty comment line resets the list


def test_flag_words_are_unquoted():
    r = parse_dockerfile('COPY --chown="a b" --x=\'c\' --y a\\ b /d\n')
    assert r.nodes[0].flags == ("--chown=a b", "--x=c", "--y")
    assert r.nodes[0].args == ("a\\", "b", "/d")


def test_continuation_and_warning():
    r = parse_dockerfile("FROM a\nRUN x \\\n\n  # comment \\\n   \n y\n")
    assert r.nodes[1].args == ("x  y",)
    assert (r.nodes[1].loc.line, r.nodes[1].loc.end_line) == (2, 6)
    [(msg, loc)] = r.warnings
    assert msg == "Empty continuation line found in: RUN x  y" and loc.line == 6


def test_crlf():
    r = parse_dockerfile("FROM a\r\nRUN a \\\r\n  b\r\nCOPY <<EOF /x\r\nhi\r\nEOF\r\n")
    assert dump(r) == '(from "a")\n(run "a   b")\n(copy "<<EOF" "/x")\n'
    assert r.nodes[2].heredocs[0].content == "hi\r\n"


# -- heredocs ------------------------------------------------------------------------------------


def test_heredocs():
    text = (
        "FROM a\n"
        "RUN <<EOF bash\n"
        "echo $HOME\n"
        "EOF\n"
        "COPY <<-'ONE' 3<<\"TWO\" /dest/\n"
        "\tfirst\n"
        "\tONE\n"
        "second\n"
        "TWO\n"
        "RUN [\"<<EOF\"]\n"
        "ONBUILD ADD <<X /x\n"
        "x\n"
        "X\n"
        "RUN <<E'O'F cat\n"
        "EOF\n"
        "RUN echo \"<<EOF\" && cat <<EOF\n"
        "EOF\n"
    )
    r = parse_dockerfile(text)
    run, copy, js, onbuild, quoted, mixed = r.nodes[1:]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo $HOME\n"
    assert run.heredocs[0].expand and not run.heredocs[0].chomp
    one, two = copy.heredocs
    assert (one.name, one.content, one.chomp, one.expand) == ("ONE", "\tfirst\n", True, False)
    assert (two.name, two.content, two.expand, two.fd) == ("TWO", "second\n", False, 3)
    assert js.heredocs == () and js.json
    assert onbuild.heredocs[0].content == "x\n" and onbuild.onbuild.heredocs == onbuild.heredocs
    assert (onbuild.loc.line, onbuild.loc.end_line) == (11, 13)
    assert onbuild.onbuild.loc.col == 9
    assert quoted.heredocs[0].name == "EOF" and not quoted.heredocs[0].expand
    assert [h.name for h in mixed.heredocs] == ["EOF"]  # a quoted "<<EOF" is not a heredoc
    assert dump(r).splitlines()[1] == '(run "<<EOF bash")'


def test_heredoc_not_detected_when_line_does_not_lex():
    r = parse_dockerfile("FROM a\nRUN cat <<EOF 'unterminated\nFROM b\n")
    assert r.nodes[1].heredocs == () and len(r.nodes) == 3


def test_heredoc_only_on_run_copy_add():
    r = parse_dockerfile("FROM a\nCMD cat <<EOF\nFROM b\n")
    assert len(r.nodes) == 3


# -- Go quoting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, quoted",
    [
        ("", '""'),
        ("plain text", '"plain text"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
        ("♥ ☃ é 한국어", '"♥ ☃ é 한국어"'),
        ("\u00a0\u2028\ufeff", '"\\u00a0\\u2028\\ufeff"'),
        ("\U0001F600\U000E0001", '"\U0001F600\\U000e0001"'),
        ("\x80\x9f", '"\\u0080\\u009f"'),
        (b"a\xff\xc3".decode("utf-8", "surrogateescape"), '"a\\xff\\xc3"'),
    ],
)
def test_go_quote(value, quoted):
    assert go_quote(value) == quoted


def test_non_utf8_bytes_dump_like_go(tmp_path, capsys):
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM a\nRUN echo \xff\nLABEL k=\xfe\n")
    assert main(["parse", "--dump", str(path)]) == 0
    # RUN keeps the raw byte; parseWords (LABEL) turns it into U+FFFD, as Go does
    assert capsys.readouterr().out == '(from "a")\n(run "echo \\xff")\n(label "k" "\ufffd" "=")\n'


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_dump_matches_result(capsys):
    case = CORPUS / "testfiles" / "env"
    assert main(["parse", "--dump", str(case / "Dockerfile")]) == 0
    assert capsys.readouterr().out == (case / "result").read_text()


def test_cli_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope" / "Dockerfile"
    assert main(["parse", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot read {missing}: No such file or directory"


def test_cli_parse_runs_and_warns(tmp_path, capsys):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM a\nRUN x \\\n\n y\n")
    assert main(["parse", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:4:1: warning: Empty continuation line found in: RUN x  y" in captured.err
