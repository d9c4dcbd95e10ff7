"""Property tests: whatever nodes or text come in, the instructions layer gives a Dockerfile or
raises MasonError located inside the input — nothing else."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mason.frontends.dockerfile.instructions import (
    Dockerfile,
    expand_mount,
    parse_duration,
    parse_instructions,
    parse_mount,
)
from mason.frontends.dockerfile.nodes import Heredoc, Node, ParseResult
from mason.ir.errors import MasonError, MasonErrors, SourceLoc

NAMES = ["from", "run", "cmd", "entrypoint", "copy", "add", "arg", "env", "label", "expose",
         "user", "workdir", "volume", "stopsignal", "healthcheck", "shell", "onbuild",
         "maintainer", "bogus", "RUN"]
FLAG_NAMES = ["mount", "network", "security", "device", "from", "chown", "chmod", "link",
              "parents", "exclude", "checksum", "keep-git-dir", "unpack", "platform",
              "interval", "timeout", "start-period", "start-interval", "retries", "x", ""]
MOUNT_KEYS = ["type", "target", "dst", "source", "from", "id", "sharing", "mode", "uid", "gid",
              "size", "env", "required", "ro", "rw", "readonly", "bogus"]
MOUNT_VALUES = ["bind", "cache", "tmpfs", "secret", "ssh", "/x", "locked", "0755", "1",
                "64m", "true", "maybe", "$V", "", '"', "a,b"]

words = st.text(alphabet=string.ascii_letters + string.digits + " $=/-:.,\"'\\[]{}+<@#",
                max_size=12)
mount_specs = st.lists(
    st.one_of(st.tuples(st.sampled_from(MOUNT_KEYS), st.sampled_from(MOUNT_VALUES))
              .map(lambda kv: "=".join(kv)), words),
    max_size=5).map(",".join)
flags = st.one_of(
    st.tuples(st.sampled_from(FLAG_NAMES), st.sampled_from(["", "="]), words)
    .map(lambda t: "--" + "".join(t)),
    mount_specs.map(lambda s: "--mount=" + s),
    words,
)
heredocs = st.builds(Heredoc, st.sampled_from(["EOF", "END", "X"]), words)


@st.composite
def node_lists(draw):
    n = draw(st.integers(0, 8))
    nodes, lines = [], []
    for i in range(1, n + 1):
        name = draw(st.sampled_from(NAMES))
        args = tuple(draw(st.lists(words, max_size=5)))
        fl = tuple(draw(st.lists(flags, max_size=3)))
        onbuild = None
        if name == "onbuild" and draw(st.booleans()):
            inner = draw(st.sampled_from(NAMES))
            onbuild = Node(inner, tuple(draw(st.lists(words, max_size=3))),
                           tuple(draw(st.lists(flags, max_size=2))),
                           loc=draw(st.sampled_from([None, SourceLoc("Dockerfile", i, 9, i)])))
        original = " ".join((name.upper(),) + fl + args)
        nodes.append(Node(name, args, fl, tuple(draw(st.lists(heredocs, max_size=2))),
                          draw(st.booleans()), onbuild, original,
                          SourceLoc("Dockerfile", i, 1, i)))
        lines.append(original)
    return tuple(nodes), "\n".join(lines) + "\n"


def check_located(e: MasonError, n_lines: int) -> None:
    errs = e.errors if isinstance(e, MasonErrors) else [e]
    for err in errs:
        assert err.loc is not None and err.loc.file == "Dockerfile"
        assert 1 <= err.loc.line <= max(n_lines, 1)
        assert err.loc.col >= 1
        assert err.message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(node_lists(), st.booleans())
def test_arbitrary_nodes_give_a_dockerfile_or_located_errors(data, with_text):
    nodes, text = data
    try:
        df = parse_instructions(ParseResult(nodes), text if with_text else None)
    except MasonError as e:
        check_located(e, len(nodes))
        if with_text:
            e.format()
    else:
        assert isinstance(df, Dockerfile) and df.stages


@settings(max_examples=300)
@given(mount_specs)
def test_parse_mount_never_raises(spec):
    probs: list = []
    m = parse_mount(spec, probs, "--mount=" + spec)
    assert (m is None) == bool(probs)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["ns", "us", "ms", "s", "m",
                                                                   "h"])), min_size=1,
                max_size=4))
def test_parse_duration_matches_the_sum_of_its_parts(parts):
    unit = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    text = "".join(f"{n}{u}" for n, u in parts)
    expected = sum(n * unit[u] for n, u in parts)
    assume(expected < 2**63)
    assert parse_duration(text) == expected
    assert parse_duration("-" + text) == -expected


@settings(max_examples=100)
@given(st.sampled_from(["/a", "/b/c"]), st.sampled_from(["0700", "755", "1"]),
       st.sampled_from(["locked", "private", "shared"]))
def test_expand_mount_equals_parsing_the_expanded_spec(target, mode, sharing):
    env = {"T": target, "M": mode, "S": sharing}
    spec = "type=cache,target=$T,mode=${M},sharing=$S,id=x"

    def expand(s: str) -> str:
        for k, v in env.items():
            s = s.replace("${" + k + "}", v).replace("$" + k, v)
        return s

    raw = parse_mount(spec, [])
    direct = parse_mount(expand(spec), [])
    assert raw is not None and direct is not None
    assert expand_mount(raw, expand) == direct


KEYWORDS = ["FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ARG", "ENV", "LABEL", "EXPOSE",
            "USER", "WORKDIR", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD",
            "MAINTAINER", "FROM scratch AS", "HEALTHCHECK CMD", "ONBUILD RUN", "BOGUS", "#"]
line_words = st.one_of(words, flags, st.sampled_from(['["a", "b"]', "[]", "\\", "<<EOF", "AS",
                                                      "NONE", "CMD", "a=b", "=", "80/tcp"]))
lines = st.tuples(st.sampled_from(KEYWORDS), st.lists(line_words, max_size=4)).map(
    lambda t: " ".join((t[0],) + tuple(t[1])))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(lines, st.just("FROM x"), st.just("EOF"), words), max_size=8))
def test_arbitrary_text_through_both_layers(text_lines):
    from mason.frontends.dockerfile.syntax import parse_dockerfile
    text = "\n".join(text_lines) + "\n"
    try:
        df = parse_instructions(parse_dockerfile(text, "Dockerfile"), text)
    except MasonError as e:
        check_located(e, len(text_lines) + 1)
        e.format()
    else:
        assert isinstance(df, Dockerfile) and df.stages
