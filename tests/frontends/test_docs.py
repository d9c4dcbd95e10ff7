"""The positioned readers: YAML and TOML values with the line and column of every key; bad
input is a located error, never a traceback (Hypothesis)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.frontends.schema import Node, suggest
from mason.frontends.tomldoc import load_toml
from mason.frontends.yamldoc import load_yaml
from mason.ir.errors import MasonError

TOML = '''\
[_]
id = "x"
"quoted.key" = 1

[io.buildpacks]
builder = "b"
include = [
    "a",
]

[[io.buildpacks.group]]
id = "one"

[[io.buildpacks.group]]
id = "two"
  [io.buildpacks.group.script]
  api = "0.10"
  inline = """
not = "a key"
[not.a.table]
"""
  shell = "/bin/sh"

[[io.buildpacks.build.env]]
name = "N"
'''


def plain(n: Node):
    if isinstance(n.value, dict):
        return {k: plain(v) for k, v in n.value.items()}
    if isinstance(n.value, list):
        return [plain(v) for v in n.value]
    return n.value


def test_toml_positions() -> None:
    root = load_toml(TOML, "p.toml")
    assert plain(root) == tomllib.loads(TOML)
    bp = root.value["io"].value["buildpacks"]
    assert (bp.loc.line, bp.loc.col) == (5, 1)
    assert bp.value["builder"].loc.line == 6
    groups = bp.value["group"].value
    assert [g.loc.line for g in groups] == [11, 14]
    assert groups[1].value["id"].loc.line == 15
    script = groups[1].value["script"]
    assert (script.value["api"].loc.line, script.value["api"].loc.col) == (17, 3)
    assert script.value["shell"].loc.line == 22  # after the multi-line string, not inside it
    assert root.value["_"].value["quoted.key"].loc.line == 3
    assert bp.value["build"].value["env"].value[0].value["name"].loc.line == 25


def test_toml_syntax_error_is_located() -> None:
    with pytest.raises(MasonError) as e:
        load_toml('a = 1\nb = "x\n', "p.toml")
    assert e.value.loc is not None and e.value.loc.line == 2
    assert e.value.message.startswith("invalid TOML")


def test_yaml_positions_and_errors() -> None:
    root = load_yaml("a:\n  b: [1, two]\n  c: 1.0\n", "m.yaml")
    b = root.value["a"].value["b"]
    assert (b.loc.line, b.loc.col) == (2, 6)
    assert [x.loc.col for x in b.value] == [7, 10]
    assert root.value["a"].key_locs["c"].line == 3
    assert root.value["a"].value["c"].string("c") == "1.0"  # a bare version stays as written
    for bad in ("a: [\n", "a: b\n a: c\n", "\x00", "a: !!binary AAAA\n", "? [a]\n: b\n"):
        with pytest.raises(MasonError) as e:
            load_yaml(bad, "m.yaml")
        assert e.value.loc is not None


def test_suggest() -> None:
    assert suggest("form", ["from", "parent"]) == " (did you mean 'from'?)"
    assert suggest("FROM", ["from"]) == " (did you mean 'from'?)"
    assert suggest("zzz", ["from", "parent"]) == " (valid keys: from, parent)"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=150))
def test_fuzz_toml(text: str) -> None:
    try:
        root = load_toml(text, "p.toml")
    except MasonError as e:
        assert e.loc is not None
    else:
        assert plain(root) == tomllib.loads(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list('[]{}="\'.,\n #ab1-_:') + ['"""', "'''", "[[", "a = "]), max_size=40))
def test_fuzz_toml_punctuation(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        load_toml(text, "p.toml")
    except MasonError as e:
        assert e.loc is not None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=150))
def test_fuzz_yaml(text: str) -> None:
    try:
        load_yaml(text, "m.yaml")
    except MasonError as e:
        assert e.loc is not None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}:-,&*!?|>'\"\n #ab1\t%@`")), max_size=60))
def test_fuzz_yaml_punctuation(text: str) -> None:
    try:
        load_yaml(text, "m.yaml")
    except MasonError as e:
        assert e.loc is not None
