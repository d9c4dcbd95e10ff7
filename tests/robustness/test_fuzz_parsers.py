"""Hypothesis on every small parser of user input: image references, ``--output`` specs and
``-t`` names, ``--secret``/``--ssh``, pass pipelines, ``.dockerignore``, ``--platform``,
``--build-arg``, prune's sizes and durations. Each returns a value or raises
:class:`MasonError` (located inside its input when it has a location) — nothing else."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mason.ir.errors import MasonError

FUZZ = settings(max_examples=150, deadline=None)


def fragments(*tokens: str) -> st.SearchStrategy[str]:
    """Strings built from meaningful tokens and arbitrary text."""
    return st.lists(st.one_of(st.sampled_from(tokens), st.text(max_size=6)), max_size=10).map("".join)


REF = fragments("docker.io/", "library/", "busybox", "localhost", ":5000", "/", ":", "@", "sha256:", "a" * 64,
                "0" * 64, "UPPER", "-", "_", "__", ".", "latest", "[::1]", "\u00e9", " ", "\x00")


@FUZZ
@given(REF)
@example("docker.io/docker.io/busybox")  # a path that starts like a domain: shown in full
def test_reference(text):
    from mason.ir.reference import familiar, normalize, parse_reference

    try:
        ref = parse_reference(text)
    except MasonError as e:
        assert e.loc is None and e.message
        return
    # normalizing is idempotent and the familiar form reads back as the same reference
    assert normalize(str(ref)) == str(ref)
    assert normalize(familiar(str(ref))) == str(ref)
    assert str(ref).isascii()


def test_reference_tag_is_ascii_only():
    from mason.ir.reference import parse_reference

    for bad in ("app:v\u00e9", "app:\u0663", "app:\uff21"):
        with pytest.raises(MasonError, match="invalid tag"):
            parse_reference(bad)


OUTPUT = fragments("type=", "image", "registry", "oci", "docker", "local", "tar", ",", "=", "dest=", "name=",
                   "push=", "true", "false", "tar=", "registry.insecure=", "unpack=", '"', "-", "out", "app",
                   "\n", "\x00", " ")


@FUZZ
@given(st.lists(OUTPUT, max_size=3), st.lists(REF, max_size=2))
def test_output_specs(specs, tags):
    from mason.backends.exporters.outputs import check_outputs, parse_outputs

    try:
        outs = parse_outputs(specs, tags)
    except MasonError as e:
        assert e.loc is None and e.message
        return
    for o in outs:
        assert o.type in ("docker", "image", "local", "oci", "registry", "tar")
        assert o.dest is None or "\x00" not in o.dest
    stdout = [o for o in outs if o.dest == "-"]
    if len(stdout) > 1:
        with pytest.raises(MasonError, match="stdout"):
            check_outputs(outs, probe_registries=False)


SECRET = fragments("id=", "src=", "source=", "env=", "type=", "file", "env", ",", "=", "tok", "/nonexistent", " ")


@FUZZ
@given(SECRET)
def test_secret_spec(text):
    from mason.backends.solver.secrets import parse_secret

    try:
        spec = parse_secret(text)
    except MasonError as e:
        assert e.message.startswith("--secret")
        return
    assert spec.id and (spec.src is not None or spec.env is not None)


@FUZZ
@given(fragments("default", "=", ",", "/", "/nonexistent", "a b", "id"))
def test_ssh_spec(text):
    from mason.backends.solver.secrets import parse_ssh

    try:
        sid, paths = parse_ssh(text)
    except MasonError as e:
        assert e.message.startswith("--ssh")
        return
    assert sid and paths and all(os.path.exists(os.path.expanduser(p)) for p in paths)


def test_secret_file_over_the_limit_is_refused_without_reading_it(tmp_path):
    from mason.backends.solver.secrets import Secrets, parse_secret

    with pytest.raises(MasonError, match="too big"):
        Secrets([parse_secret("id=z,src=/dev/zero")])
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    with pytest.raises(MasonError, match="too big"):
        Secrets([parse_secret(f"id=b,src={big}")])


PIPELINE = fragments("verify", "prune", "dedupe", "merge", "hoist-config", "{", "}", ",", "=", "targets=",
                     "true", '"', "\\", " ", "nosuch", "\n")


@FUZZ
@given(PIPELINE)
def test_pipeline(text):
    from mason.passes.manager import parse_pipeline

    try:
        parse_pipeline(text)
    except MasonError as e:
        if e.loc is not None:
            assert e.loc.line >= 1 and 1 <= e.loc.col <= len(text) + 1, (e.loc, text)
            e.format()


IGNORE = fragments("*", "**", "**/", "?", "[", "]", "^", "-", "\\", "!", "/", "..", ".", "#", "\n", "\r\n", " ",
                   "a", "b", "\t", "\ufeff", "\x00")


@FUZZ
@given(IGNORE, st.lists(fragments("a", "b", "/", ".", "..", " ", "*"), max_size=5))
def test_dockerignore(text, paths):
    from mason.ir.patterns import PatternMatcher, filter_paths, parse_dockerignore

    try:
        pats = parse_dockerignore(text, ".dockerignore")
    except MasonError as e:
        lines = text.removeprefix("\ufeff").split("\n")
        assert e.loc is not None and 1 <= e.loc.line <= len(lines)
        line = lines[e.loc.line - 1].removesuffix("\r")
        assert 1 <= e.loc.col <= len(line) + 1, (e.loc, line)
        return
    m = PatternMatcher(pats)
    for p in paths:
        m.match(p)
        m.can_skip_dir(p)
    filter_paths(paths, exclude=pats)


@FUZZ
@given(fragments("linux", "windows", "amd64", "arm64", "arm", "v7", "v8", "/", "", " ", "\x00", "darwin"))
def test_platform(text):
    from mason.ir.resolver import PlatformSpec

    try:
        PlatformSpec.parse(text)
    except MasonError as e:
        assert e.loc is None and e.message


@FUZZ
@given(st.lists(fragments("=", "A", "B", "x", " ", "\x00"), max_size=4))
def test_build_args(items):
    from mason.driver import parse_build_args

    try:
        out = parse_build_args(items, environ={"A": "1"})
    except MasonError as e:
        assert "--build-arg" in e.message
        return
    assert all(k for k in out)


@FUZZ
@given(fragments("1", "0", ".", "5", "-", "kB", "MB", "GiB", "b", "e9", "inf", "nan", " "),
       fragments("1", "0", ".", "h", "m", "s", "ms", "d", "w", "-", "until=", " ", "inf"))
def test_prune_size_and_duration(size, filt):
    from mason.backends.solver.gc import parse_filters, parse_size

    try:
        n = parse_size(size)
        assert isinstance(n, int) and n >= 0
    except MasonError:
        pass
    try:
        parse_filters([filt])
    except MasonError:
        pass
