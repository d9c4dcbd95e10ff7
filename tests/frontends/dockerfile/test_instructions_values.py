"""Value parsers of the instructions layer: Go durations and bools, sizes, chmod, ports,
signals, CSV mount specs and their expansion."""

from __future__ import annotations

import pytest

from mason.frontends.dockerfile.instructions import (
    CacheMount,
    DeferredMount,
    SecretMount,
    TmpfsMount,
    check_chmod,
    check_signal,
    expand_mount,
    parse_duration,
    parse_mount,
    parse_port_spec,
    parse_size,
)
from mason.frontends.dockerfile.instructions_mounts import split_csv
from mason.frontends.dockerfile.instructions_values import parse_go_bool, parse_uint
from mason.ir.errors import MasonErrors, SourceLoc


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("-0", 0), ("+5s", 5 * 10**9), ("30s", 30 * 10**9), ("1m30s", 90 * 10**9),
    ("500ms", 500 * 10**6), ("1.5h", 5400 * 10**9), (".5s", 5 * 10**8), ("1.s", 10**9),
    ("2us", 2000), ("2\u00b5s", 2000), ("2\u03bcs", 2000), ("7ns", 7), ("1h1h", 7200 * 10**9),
    ("0.0000000001s", 0),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "s", ".s", "1x", "1 s", "5sec", "--1s", "1.2.3s",
                                  "9999999999h"])
def test_parse_duration_invalid(text):
    assert parse_duration(text) is None


def test_go_int():
    from mason.frontends.dockerfile.instructions_values import parse_go_int
    assert [parse_go_int(v, 32) for v in ("5", "+5", "-5", "2147483647", "2147483648", " 5",
                                          "1_0", "", "-", "٣")] == \
        [5, 5, -5, 2**31 - 1, None, None, None, None, None, None]


def test_go_bool_and_uint():
    assert [parse_go_bool(v) for v in ("1", "t", "TRUE", "True", "0", "F", "false", "yes")] == \
        [True, True, True, True, False, False, False, None]
    assert parse_uint("0755", 8) == 0o755 and parse_uint("8", 8) is None
    assert parse_uint("4294967295") == 2**32 - 1 and parse_uint("4294967296") is None
    assert parse_uint("") is None and parse_uint("+1") is None and parse_uint("٣") is None


@pytest.mark.parametrize("text,size", [("0", 0), ("1k", 1024), ("1K", 1024), ("1kb", 1024),
                                       ("1KiB", 1024), ("2m", 2 << 20), ("1 g", 1 << 30),
                                       ("1t", 1 << 40), ("1p", 1 << 50), ("0.5m", 1 << 19)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "-1", "1x", "1.2.3m", "1  m", "1mm"])
def test_parse_size_invalid(text):
    assert parse_size(text) is None


@pytest.mark.parametrize("mode", ["0", "7777", "0644", "u+x", "u=rwx,g=rx,o=", "a-w", "+t",
                                  "g=u", "o+X", "u+s,g-s", "=r", "$M", "${MODE:-0644}"])
def test_chmod_valid(mode):
    assert check_chmod(mode) is None


@pytest.mark.parametrize("mode", ["", "8", "10000", "u", "u+z", "x+u", "u+x,", ",u+x", "u+ux",
                                  "0x1ff", "rwx"])
def test_chmod_invalid(mode):
    assert check_chmod(mode)


@pytest.mark.parametrize("spec,parsed", [
    ("80", (80, 80, "tcp")), ("80/udp", (80, 80, "udp")), ("80/UDP", (80, 80, "udp")),
    ("1-3/sctp", (1, 3, "sctp")), ("0", (0, 0, "tcp")), ("65535", (65535, 65535, "tcp")),
    ("80/", (80, 80, "tcp")), ("127.0.0.1:8080:80/tcp", (80, 80, "tcp")),
])
def test_port_spec(spec, parsed):
    assert parse_port_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", "http", "65536", "80/quic", "3-1", "1-", "-1", "80:"])
def test_port_spec_invalid(spec):
    assert parse_port_spec(spec) is None


def test_signals():
    for ok in ("SIGKILL", "kill", "SigTerm", "15", "SIGRTMIN+15", "RTMAX", "SIGWINCH"):
        assert check_signal(ok), ok
    for bad in ("0", "SIGFOO", "", "SIG", "RTMIN+16", "sig term", " 9", "1_0", "+0"):
        assert not check_signal(bad), bad


@pytest.mark.parametrize("text,fields", [
    ("a,b", ["a", "b"]), ("", [""]), ('"a,b",c', ["a,b", "c"]), ('a,"b""c"', ["a", 'b"c']),
    ('"",x', ["", "x"]), ("a,", ["a", ""]),
])
def test_split_csv(text, fields):
    assert split_csv(text) == fields


@pytest.mark.parametrize("text", ['a"b', '"a', '"a"b', 'x,"y'])
def test_split_csv_invalid(text):
    assert split_csv(text) is None


def sub(env: dict[str, str]):
    """A stand-in expander: whole values named in ``env`` are replaced."""
    return lambda s: env.get(s, s)


def test_expand_mount_resolves_deferred_values_and_type():
    loc = SourceLoc("Dockerfile", 3, 5)
    env = {"$T": "tmpfs", "$S": "1g", "$D": "/t"}
    m = parse_mount("type=$T,target=$D,size=$S", [], loc=loc)
    assert isinstance(m, DeferredMount) and m.loc == loc
    got = expand_mount(m, lambda s: env.get(s, s))
    assert got == TmpfsMount("/t", 1 << 30)
    m = parse_mount("type=secret,id=$ID,required=$R,mode=$M", [])
    assert m == SecretMount("$ID", None, None, "$R", "$M")
    got = expand_mount(m, sub({"$ID": "tok", "$R": "true", "$M": "0440"}))
    assert got == SecretMount("tok", None, None, True, 0o440)


def test_expand_mount_errors_are_located():
    loc = SourceLoc("Dockerfile", 7, 5)
    m = parse_mount("type=cache,target=/c,sharing=$S,uid=$U", [], loc=loc)
    assert isinstance(m, CacheMount)
    with pytest.raises(MasonErrors) as e:
        expand_mount(m, sub({"$S": "weird", "$U": "x"}))
    assert [(x.loc, x.message) for x in e.value.errors] == [
        (loc, "unsupported sharing value 'weird' (expected shared, private or locked)"),
        (loc, "invalid value 'x' for --mount uid"),
    ]
    with pytest.raises(MasonErrors) as e:
        expand_mount(parse_mount("type=$T,target=/x", [], loc=loc), lambda s: "nfs")
    assert e.value.message == "unsupported mount type 'nfs'" and e.value.loc == loc


def test_expanded_literal_dollar_is_a_plain_value():
    m = parse_mount("type=cache,target=$D,mode=$M", [])
    got = expand_mount(m, sub({"$D": "/a$b", "$M": "0700"}))
    assert got == CacheMount("/a$b", mode=0o700)
    with pytest.raises(MasonErrors):
        expand_mount(m, sub({"$D": "/a", "$M": "$"}))
