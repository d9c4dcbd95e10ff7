"""The driver's frontend choice (mason.resolution.choose): every path and their precedence —
--frontend, BUILDKIT_SYNTAX, each first-line directive form, the file name — and the one error
for a name that is neither a frontend nor an image."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mason.ir.errors import MasonError
from mason.resolution import choose

DF = "FROM scratch\n"
MOCK = "apiVersion: v1alpha1\nimages: []\n"


def pick(text: str, path: str = "Dockerfile", **kw):
    c = choose(path, text, path, **kw)
    return (c.frontend.name if c.frontend is not None else None), c.image, c.how


@pytest.mark.parametrize("first", [
    "# syntax=docker/dockerfile:1",
    "#syntax=docker/dockerfile:1.7-labs",
    "# syntax = docker/dockerfile:1-labs",
    "// syntax=docker.io/docker/dockerfile:1",
    "#!/usr/bin/env mason\n# syntax=docker/dockerfile@sha256:" + "a" * 64,
    "# syntax=dockerfile.v0",
    "# syntax=dockerfile",
])
def test_directive_forms_name_the_builtin(first: str) -> None:
    assert pick(first + "\n" + DF) == ("dockerfile", None, "# syntax")


def test_json_file_syntax_key() -> None:
    # BuildKit reads the JSON form from a file that is one JSON object (a JSON-based language)
    assert pick('{"syntax": "docker/dockerfile:1", "x": 1}\n') == ("dockerfile", None, "# syntax")
    assert pick('{"syntax": "acme/lang:2", "steps": []}', "build.json") == (None, "acme/lang:2", "# syntax")


@pytest.mark.parametrize("first, image", [
    ("# syntax=example.com/fe:1", "example.com/fe:1"),
    ("#syntax=example.com/fe:1", "example.com/fe:1"),
    ("// syntax=localhost:5000/my/fe", "localhost:5000/my/fe"),
    ("#!/bin/sh\n#syntax=acme/lang@sha256:" + "b" * 64, "acme/lang@sha256:" + "b" * 64),
])
def test_directive_forms_name_an_image(first: str, image: str) -> None:
    assert pick(first + "\n" + DF) == (None, image, "# syntax")


def test_directive_location_is_kept() -> None:
    c = choose("d/Dockerfile", "#!/bin/x\n# syntax=acme/lang:1\n" + DF, "d/Dockerfile")
    assert c.loc is not None and (c.loc.file, c.loc.line) == ("d/Dockerfile", 2)


def test_directive_not_on_top_is_not_one() -> None:
    assert pick(DF + "# syntax=acme/lang:1\n") == ("dockerfile", None, "file name")


def test_mockerfile_syntaxes_and_file_name() -> None:
    assert pick("# syntax=r2d4/mocker\n" + MOCK, "x.yaml")[0] == "mockerfile"
    assert pick("#syntax=mason/mockerfile\n" + MOCK, "x.yaml")[0] == "mockerfile"
    assert pick(MOCK, "Mockerfile.yaml") == ("mockerfile", None, "file name")
    assert pick(DF, "Dockerfile") == ("dockerfile", None, "file name")


def test_buildkit_syntax_arg_beats_the_directive() -> None:
    text = "# syntax=docker/dockerfile:1\n" + DF
    assert pick(text, build_args={"BUILDKIT_SYNTAX": "acme/lang:3"}) == (None, "acme/lang:3", "BUILDKIT_SYNTAX")
    assert pick("# syntax=acme/lang:3\n" + DF, build_args={"BUILDKIT_SYNTAX": "docker/dockerfile:1-labs"}) == \
        ("dockerfile", None, "BUILDKIT_SYNTAX")
    # an empty value is no choice
    assert pick(text, build_args={"BUILDKIT_SYNTAX": " "}) == ("dockerfile", None, "# syntax")


def test_buildkit_syntax_arg_beats_the_file_name() -> None:
    assert pick(MOCK, "Mockerfile.yaml", build_args={"BUILDKIT_SYNTAX": "dockerfile"})[0] == "dockerfile"


def test_frontend_option_beats_everything() -> None:
    text = "# syntax=acme/lang:1\n" + DF
    args = {"BUILDKIT_SYNTAX": "acme/other:1"}
    assert pick(text, frontend="dockerfile", build_args=args) == ("dockerfile", None, "--frontend")
    assert pick(text, frontend="dockerfile.v0") == ("dockerfile", None, "--frontend")
    assert pick(MOCK, "Dockerfile", frontend="mockerfile")[0] == "mockerfile"
    assert pick(DF, frontend="example.com/fe:9") == (None, "example.com/fe:9", "--frontend")
    # an image reference a built-in handles is the built-in
    assert pick(DF, frontend="docker/dockerfile:1") == ("dockerfile", None, "--frontend")


@pytest.mark.parametrize("gw", ["gateway", "gateway.v0"])
def test_frontend_gateway_forces_the_image(gw: str) -> None:
    text = "# syntax=docker/dockerfile:1.7-labs\n" + DF
    assert pick(text, frontend=gw) == (None, "docker/dockerfile:1.7-labs", "--frontend")
    assert pick(DF, frontend=gw, build_args={"BUILDKIT_SYNTAX": "docker/dockerfile:1"}) == \
        (None, "docker/dockerfile:1", "--frontend")
    with pytest.raises(MasonError, match="needs a frontend image: a # syntax= line or the build arg BUILDKIT_SYNTAX"):
        choose("Dockerfile", DF, frontend=gw)


def _assert_lists(e: MasonError) -> None:
    from mason.frontends import registry

    assert f"frontends: {', '.join(i.name for i in registry.available())}" in e.message
    assert "dockerfile" in e.message and "mockerfile" in e.message
    assert "no frontend of that name and no image reference" in e.message


def test_unknown_directive_name_is_located_and_lists() -> None:
    text = "# escape=`\n# syntax=nosuchlang\n" + DF
    with pytest.raises(MasonError) as info:
        choose("Dockerfile", text, "Dockerfile")
    e = info.value
    _assert_lists(e)
    assert "'nosuchlang'" in e.message
    assert e.loc is not None and (e.loc.file, e.loc.line) == ("Dockerfile", 2)
    assert e.source_line == "# syntax=nosuchlang"


@pytest.mark.parametrize("kw", [{"frontend": "nosuchlang"}, {"build_args": {"BUILDKIT_SYNTAX": "nosuchlang"}},
                                {"frontend": "Bad Ref:x/"}])
def test_unknown_names_list_what_is_available(kw) -> None:
    with pytest.raises(MasonError) as info:
        choose("Dockerfile", DF, **kw)
    _assert_lists(info.value)


def test_cli_unknown_frontend_is_one_line(tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("# syntax=nosuchlang\nFROM scratch\nCOPY a /a\n")
    p = subprocess.run([sys.executable, "-m", "mason", "lower", str(tmp_path), "-S", "--no-resolve"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert "Dockerfile:1:1: error: unknown frontend # syntax='nosuchlang'" in p.stderr
    p = subprocess.run([sys.executable, "-m", "mason", "lower", str(tmp_path), "-S", "--no-resolve",
                        "--frontend", "dockerfile"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "local://context" in p.stdout


def test_named_context_replaces_the_syntax_image() -> None:
    named = {"docker/dockerfile:1": "docker-image://example.com/my/dockerfile:9"}
    assert pick("# syntax=docker/dockerfile:1\n" + DF, named_contexts=named) == \
        (None, "example.com/my/dockerfile:9", "# syntax and --build-context")
    # keyed as BuildKit looks names up (docker.io/… and :latest dropped)
    assert pick("#syntax=docker.io/acme/lang:latest\n" + DF, named_contexts={"acme/lang": "docker-image://x/y:2"}) \
        == (None, "x/y:2", "# syntax and --build-context")
    assert pick(DF, build_args={"BUILDKIT_SYNTAX": "docker/dockerfile:1"}, named_contexts=named)[1] == \
        "example.com/my/dockerfile:9"
    assert pick("# syntax=docker/dockerfile:1\n" + DF, frontend="gateway", named_contexts=named)[1] == \
        "example.com/my/dockerfile:9"
    # --frontend NAME beats the replacement; a context of another name changes nothing
    assert pick("# syntax=docker/dockerfile:1\n" + DF, frontend="dockerfile", named_contexts=named)[0] == "dockerfile"
    assert pick("# syntax=docker/dockerfile:1\n" + DF, named_contexts={"alpine": "docker-image://a"})[0] == \
        "dockerfile"
    with pytest.raises(MasonError, match="only a docker-image:// context can replace the frontend image"):
        choose("Dockerfile", "# syntax=docker/dockerfile:1\n" + DF,
               named_contexts={"docker/dockerfile:1": "local:docker/dockerfile:1"})
