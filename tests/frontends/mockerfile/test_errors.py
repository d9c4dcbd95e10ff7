"""Every mistake in a Mockerfile is ``FILE:LINE:COL: error: …`` with the line and a caret;
unknown keys name the nearest valid one; Hypothesis never gets a traceback out of the reader."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.frontends.base import FrontendRequest
from mason.frontends.mockerfile import MockerfileFrontend, read_mockerfile
from mason.frontends.mockerfile.model import IMAGE_KEYS
from mason.ir.errors import MasonError

HEAD = "apiVersion: v1alpha1\nimages:\n"


def error_of(text: str) -> MasonError:
    with pytest.raises(MasonError) as info:
        MockerfileFrontend().lower(FrontendRequest(text, "Mockerfile.yaml"))
    return info.value


@pytest.mark.parametrize("body,where,message", [
    ("- name: a\n  form: busybox\n", "4:3", "unknown key 'form' in an image (did you mean 'from'?)"),
    ("- name: a\n  from: busybox\n  stepz: [ls]\n", "5:3", "unknown key 'stepz' in an image (did you mean 'steps'?)"),
    ("- name: a\n  from: busybox\n  package:\n    instal: [x]\n", "6:5",
     "unknown key 'instal' in 'package' (did you mean 'install'?)"),
    ("- name: a\n  from: busybox\n  external:\n  - src: http://x/y\n    dest: /y\n", "7:5",
     "unknown key 'dest' in an 'external' entry (did you mean 'dst'?)"),
    ("- name: a\n  from: busybox\n  input:\n    mounts: {}\n", "6:5", "unknown key 'mounts' in 'input' (did you mean 'mount'?)"),
    ("- name: a\n  from: busybox\n  external:\n  - src: ftp://x/y\n    dst: /y\n", "6:10",
     "'src' must be an http:// or https:// URL, not 'ftp://x/y'"),
    ("- name: a\n  from: busybox\n  external:\n  - src: http://x/y\n    dst: /y\n    sha256: abc\n", "8:13",
     "'sha256' must be 64 hexadecimal digits, not 'abc'"),
    ("- name: a\n  parent: b\n- name: b\n  from: busybox\n", "3:9", "parent 'b' of image 'a' must be defined before it"),
    ("- name: a\n  parent: zz\n", "3:9", "parent 'zz' of image 'a' is not an image of this file"),
    ("- name: a\n", "3:9", "image 'a' needs 'from' (a base image) or 'parent' (another image)"),
    ("- name: a\n  from: busybox\n- name: a\n  from: busybox\n", "5:9", "duplicate image name 'a'"),
    ("- name: a\n  from: busybox\n  steps: {x: 1}\n", "5:10", "'steps' in an image must be a list, not a mapping"),
    ("- name: a\n  from: busybox\n  output: [nocolon]\n", "5:12", "an output is SRC:DST, not 'nocolon'"),
    ("- name: a\n  from: busybox\n  package:\n    install: ['bad name']\n", "6:15",
     "invalid package 'bad name': expected NAME or NAME=VERSION"),
    ("- name: a\n  from: busybox\n  from: alpine\n", "5:3", "duplicate key 'from'"),
    ("- name: a\n  from: [busybox\n", "4:17", "invalid YAML"),
])
def test_located_errors(body: str, where: str, message: str) -> None:
    e = error_of(HEAD + body)
    assert f"{e.loc.line}:{e.loc.col}" == where, e.format()
    assert message in e.message, e.format()
    text = e.format()
    assert text.startswith(f"Mockerfile.yaml:{where}: error: ")
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].strip() == "^"
    assert lines[1].strip() == (HEAD + body).splitlines()[e.loc.line - 1].strip()


def test_top_level_errors() -> None:
    assert "unsupported apiVersion" in error_of("apiVersion: v2\nimages: []\n").message
    e = error_of("apiVersion: v1alpha1\nimage: []\n")
    assert e.message.startswith("unknown key 'image' in the Mockerfile (did you mean 'images'?)")
    assert (e.loc.line, e.loc.col) == (2, 1)
    assert "empty" in error_of("").message
    assert "needs at least one image" in error_of("apiVersion: v1alpha1\nimages: []\n").message


def test_unknown_target_lists_images() -> None:
    text = HEAD + "- name: a\n  from: busybox\n"
    with pytest.raises(MasonError, match=r"target image 'zz' could not be found \(images: a\)"):
        MockerfileFrontend().lower(FrontendRequest(text, "M.yaml", target="zz"))


def test_selection_hooks() -> None:
    fe = MockerfileFrontend()
    assert fe.claims("ctx/Mockerfile.yaml", "") and fe.claims("x/mockerfile.yml", "")
    assert not fe.claims("Dockerfile", "") and not fe.claims("project.toml", "")
    for v in ("r2d4/mocker", "docker.io/r2d4/mocker:latest", "mason/mockerfile", "mockerfile"):
        assert fe.handles_syntax(v), v
    assert not fe.handles_syntax("docker/dockerfile:1")


def test_targets_subrequest() -> None:
    text = HEAD + "- name: a\n  from: busybox\n- name: b\n  parent: a\n"
    ts = MockerfileFrontend().targets(FrontendRequest(text, "M.yaml")).targets
    assert [(t.name, t.base, t.default) for t in ts] == [("a", "busybox", False), ("b", "a", True)]


def test_alias_bomb_and_recursion_are_errors() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    with pytest.raises(MasonError, match="too large"):
        read_mockerfile(bomb)
    with pytest.raises(MasonError, match="recursive"):
        read_mockerfile("a: &a [*a]\n")


_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                    st.sampled_from(["busybox", "/x", "a:b", "http://127.0.0.1/f.tar.gz", "0" * 64]))
_keys = st.sampled_from(list(IMAGE_KEYS) + ["mount", "repo", "gpg", "install", "src", "dst", "sha256",
                                             "apiVersion", "images", "zz"])
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _value, max_size=4))
def test_fuzz_structured_documents(doc: dict) -> None:
    doc.setdefault("apiVersion", "v1alpha1")
    text = yaml.safe_dump(doc)
    try:
        MockerfileFrontend().lower(FrontendRequest(text, "M.yaml"))
    except MasonError as e:
        assert e.format().startswith(("M.yaml:", "error:"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text(text: str) -> None:
    try:
        MockerfileFrontend().lower(FrontendRequest(HEAD + text, "M.yaml"))
    except MasonError as e:
        assert e.format()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["- name: a\n", "  from: busybox\n", "  parent: a\n", "  steps:\n", "  - ls\n",
                                 "  output: [a:/b]\n", "  input: {mount: {'.': /s}}\n", "  workdir: /w\n",
                                 "- name: b\n", "  external:\n", "  - src: http://h/x.tgz\n", "    dst: /x\n",
                                 "  package: {install: [hello]}\n", "\t", ": ", "&a ", "*a\n", "[", "{"]),
                max_size=14))
def test_fuzz_line_soup(parts: list[str]) -> None:
    try:
        MockerfileFrontend().lower(FrontendRequest(HEAD + "".join(parts), "M.yaml"))
    except MasonError as e:
        assert e.format()
