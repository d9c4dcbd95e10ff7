"""Instructions layer: every kind of mistake is reported with file, line, column and message,
and every mistake of a file is reported at once."""

from __future__ import annotations

import pytest

from mason.frontends.dockerfile.instructions import parse_instructions
from mason.frontends.dockerfile.nodes import Heredoc, Node, ParseResult
from mason.ir.errors import MasonErrors, SourceLoc
from tests.frontends.dockerfile.test_instructions_helpers import N, errors


def err1(item: N, *before: N | str) -> tuple[int, int, str]:
    """The single error of ``item`` placed on line 2, after ``FROM x``."""
    (e,) = errors("FROM x", *before, item)
    return e


CASES = {
    # unknown instruction (with a suggestion)
    "unknown-instruction": (N("RUNN echo", ("echo",)), (2, 1, "unknown instruction: RUNN (did you "
                                                             "mean RUN?)")),
    "unknown-instruction-far": (N("FOO bar", ("bar",)), (2, 1, "unknown instruction: FOO")),
    # flags
    "unknown-flag": (N("COPY --bogus a b", ("a", "b"), ("--bogus",)),
                     (2, 6, "unknown flag --bogus for COPY")),
    "unknown-flag-suggest": (N("COPY --chmode=7 a b", ("a", "b"), ("--chmode=7",)),
                             (2, 6, "unknown flag --chmode for COPY (did you mean --chmod?)")),
    "flag-on-flagless": (N("USER --x=1 me", ("me",), ("--x=1",)),
                         (2, 6, "unknown flag --x: USER takes no flags")),
    "from-on-run": (N("RUN --from=a x", ("x",), ("--from=a",)),
                    (2, 5, "--from is only valid on COPY and ADD, not on RUN")),
    "checksum-on-copy": (N("COPY --checksum=sha256:00 a b", ("a", "b"), ("--checksum=sha256:00",)),
                         (2, 6, "--checksum is only valid on ADD, not on COPY")),
    "keep-git-dir-on-copy": (N("COPY --keep-git-dir a b", ("a", "b"), ("--keep-git-dir",)),
                             (2, 6, "--keep-git-dir is only valid on ADD, not on COPY")),
    "unpack-on-copy": (N("COPY --unpack=true a b", ("a", "b"), ("--unpack=true",)),
                       (2, 6, "--unpack is only valid on ADD, not on COPY")),
    "mount-on-copy": (N("COPY --mount=type=cache a b", ("a", "b"), ("--mount=type=cache",)),
                      (2, 6, "--mount is only valid on RUN, not on COPY")),
    "duplicate-flag": (N("COPY --link --from=a --link a b", ("a", "b"),
                         ("--link", "--from=a", "--link")),
                       (2, 22, "duplicate flag specified: --link")),
    "duplicate-flag-other-value": (N("COPY --from=a --from=b x y", ("x", "y"),
                                     ("--from=a", "--from=b")),
                                   (2, 15, "duplicate flag specified: --from")),
    "flag-missing-value": (N("COPY --from a b", ("a", "b"), ("--from",)),
                           (2, 6, "missing a value on flag --from")),
    "mount-missing-value": (N("RUN --mount x", ("x",), ("--mount",)),
                            (2, 5, "missing a value on flag --mount")),
    "bool-flag-bad-value": (N("COPY --link=yes a b", ("a", "b"), ("--link=yes",)),
                            (2, 6, "expecting boolean value for flag --link, not: 'yes'")),
    "flag-without-dashes": (N("COPY -x a b", ("a", "b"), ("-x",)),
                            (2, 6, "COPY flag '-x' must start with '--'")),
    # argument counts
    "copy-one-arg": (N("COPY app", ("app",)),
                     (2, 6, "COPY requires at least two arguments: a source and a destination")),
    "add-no-args": (N("ADD", ()), (2, 1, "ADD requires at least two arguments, but got none")),
    "user-too-many": (N("USER a b", ("a", "b")), (2, 8, "USER requires exactly one argument")),
    "workdir-none": (N("WORKDIR", ()), (2, 1, "WORKDIR requires exactly one argument")),
    "stopsignal-two": (N("STOPSIGNAL TERM KILL", ("TERM", "KILL")),
                       (2, 17, "STOPSIGNAL requires exactly one argument")),
    "maintainer-none": (N("MAINTAINER", ()), (2, 1, "MAINTAINER requires exactly one argument")),
    "run-empty": (N("RUN", ()), (2, 1, "RUN requires at least one argument")),
    "run-empty-with-flag": (N("RUN --network=none", (), ("--network=none",)),
                            (2, 1, "RUN requires at least one argument")),
    "env-empty": (N("ENV", ()), (2, 1, "ENV requires at least one argument")),
    "label-empty": (N("LABEL", ()), (2, 1, "LABEL requires at least one argument")),
    "expose-empty": (N("EXPOSE", ()), (2, 1, "EXPOSE requires at least one argument")),
    "volume-empty": (N("VOLUME", ()), (2, 1, "VOLUME requires at least one argument")),
    "arg-empty": (N("ARG", ()), (2, 1, "ARG requires at least one argument")),
    "onbuild-empty": (N("ONBUILD", ()), (2, 1, "ONBUILD requires at least one argument")),
    "healthcheck-empty": (N("HEALTHCHECK", ()),
                          (2, 1, "HEALTHCHECK requires at least one argument (CMD … or NONE)")),
    "env-malformed": (N("ENV a b", ("a", "b")), (2, 1, "ENV: malformed key/value arguments")),
    # --mount
    "mount-bad-type": (N("RUN --mount=type=nfs,target=/x x", ("x",),
                         ("--mount=type=nfs,target=/x",)),
                       (2, 13, "unsupported mount type 'nfs'")),
    "mount-type-suggest": (N("RUN --mount=type=cahce,target=/x x", ("x",),
                             ("--mount=type=cahce,target=/x",)),
                           (2, 13, "unsupported mount type 'cahce' (did you mean cache?)")),
    "mount-unknown-key": (N("RUN --mount=target=/x,colour=red x", ("x",),
                            ("--mount=target=/x,colour=red",)),
                          (2, 23, "unexpected key 'colour' in --mount")),
    "mount-key-suggest": (N("RUN --mount=targt=/x x", ("x",), ("--mount=targt=/x",)),
                          (2, 13, "unexpected key 'targt' in --mount (did you mean target?)")),
    "mount-not-key-value": (N("RUN --mount=target=/x,oops x", ("x",), ("--mount=target=/x,oops",)),
                            (2, 23, "invalid --mount field 'oops': must be a key=value pair")),
    "mount-bad-sharing": (N("RUN --mount=type=cache,target=/x,sharing=bad x", ("x",),
                            ("--mount=type=cache,target=/x,sharing=bad",)),
                          (2, 34, "unsupported sharing value 'bad' (expected shared, private or "
                                  "locked)")),
    "mount-sharing-on-bind": (N("RUN --mount=target=/x,sharing=locked x", ("x",),
                                ("--mount=target=/x,sharing=locked",)),
                              (2, 23, "sharing is only valid for cache mounts, not bind")),
    "mount-bad-mode": (N("RUN --mount=type=secret,id=s,mode=999 x", ("x",),
                         ("--mount=type=secret,id=s,mode=999",)),
                       (2, 30, "invalid value '999' for --mount mode")),
    "mount-mode-on-bind": (N("RUN --mount=target=/x,mode=0700 x", ("x",),
                             ("--mount=target=/x,mode=0700",)),
                           (2, 23, "mode is not allowed for bind mounts")),
    "mount-bad-uid": (N("RUN --mount=type=cache,target=/x,uid=-1 x", ("x",),
                        ("--mount=type=cache,target=/x,uid=-1",)),
                      (2, 34, "invalid value '-1' for --mount uid")),
    "mount-bad-bool": (N("RUN --mount=target=/x,ro=maybe x", ("x",),
                         ("--mount=target=/x,ro=maybe",)),
                       (2, 23, "invalid value for --mount ro: 'maybe'")),
    "mount-required-on-cache": (N("RUN --mount=type=cache,target=/x,required x", ("x",),
                                  ("--mount=type=cache,target=/x,required",)),
                                (2, 5, "unexpected key 'required' for mount type 'cache'")),
    "mount-bad-size": (N("RUN --mount=type=tmpfs,target=/t,size=lots x", ("x",),
                         ("--mount=type=tmpfs,target=/t,size=lots",)),
                       (2, 34, "invalid value 'lots' for --mount size")),
    "mount-size-on-cache": (N("RUN --mount=type=cache,target=/t,size=1m x", ("x",),
                              ("--mount=type=cache,target=/t,size=1m",)),
                            (2, 34, "size is only valid for tmpfs mounts, not cache")),
    "mount-env-on-ssh": (N("RUN --mount=type=ssh,env=X x", ("x",), ("--mount=type=ssh,env=X",)),
                         (2, 22, "env is only valid for secret mounts, not ssh")),
    "mount-from-variable": (N("RUN --mount=from=$STAGE,target=/x x", ("x",),
                              ("--mount=from=$STAGE,target=/x",)),
                            (2, 13, "--mount from= doesn't support variable expansion, define an "
                                    "alias stage instead")),
    "mount-from-on-secret": (N("RUN --mount=type=secret,id=a,from=b x", ("x",),
                               ("--mount=type=secret,id=a,from=b",)),
                             (2, 30, "from is not allowed for secret mounts")),
    "mount-secret-id-and-source": (N("RUN --mount=type=secret,id=a,src=b x", ("x",),
                                     ("--mount=type=secret,id=a,src=b",)),
                                   (2, 5, "secret mount: both source and id can't be set")),
    "mount-secret-nothing": (N("RUN --mount=type=secret x", ("x",), ("--mount=type=secret",)),
                             (2, 5, "secret mount needs an id, a target or an env")),
    "mount-bad-quotes": (N('RUN --mount=type=bind,target="/x" x', ("x",),
                           ('--mount=type=bind,target="/x"',)),
                         (2, 5, "invalid --mount value 'type=bind,target=\"/x\"': bad quoting")),
    "mount-empty": (N("RUN --mount= x", ("x",), ("--mount=",)), (2, 5, "empty --mount value")),
    # RUN --network / --security
    "bad-network": (N("RUN --network=bridge x", ("x",), ("--network=bridge",)),
                    (2, 5, "unsupported --network value 'bridge' (expected default, none or "
                           "host)")),
    "bad-security": (N("RUN --security=privileged x", ("x",), ("--security=privileged",)),
                     (2, 5, "unsupported --security value 'privileged' (expected sandbox or "
                            "insecure)")),
    # --chmod
    "chmod-octal-too-big": (N("COPY --chmod=17777 a b", ("a", "b"), ("--chmod=17777",)),
                            (2, 6, "invalid --chmod value '17777': an octal mode must be "
                                   "0-7777")),
    "chmod-not-octal": (N("COPY --chmod=0798 a b", ("a", "b"), ("--chmod=0798",)),
                        (2, 6, "invalid --chmod value '0798': an octal mode must be 0-7777")),
    "chmod-bad-perm": (N("ADD --chmod=u+q a b", ("a", "b"), ("--chmod=u+q",)),
                       (2, 5, "invalid --chmod value 'u+q': unexpected 'q'")),
    "chmod-no-op": (N("COPY --chmod=ug a b", ("a", "b"), ("--chmod=ug",)),
                    (2, 6, "invalid --chmod value 'ug': expected octal digits or symbolic "
                           "clauses like u+x,g=r")),
    "chmod-empty-clause": (N("COPY --chmod=u+x,,g+r a b", ("a", "b"), ("--chmod=u+x,,g+r",)),
                           (2, 6, "invalid --chmod value 'u+x,,g+r': expected octal digits or "
                                  "symbolic clauses like u+x,g=r")),
    # SHELL, HEALTHCHECK
    "shell-not-json": (N("SHELL /bin/bash -c", ("/bin/bash -c",)),
                       (2, 7, 'SHELL requires the arguments to be in JSON form, like '
                              '["/bin/sh", "-c"]')),
    "shell-empty-json": (N("SHELL []", (), json=True), (2, 1, "SHELL requires at least one "
                                                              "argument")),
    "healthcheck-connect": (N("HEALTHCHECK CONNECT TCP 7000", ("CONNECT", "TCP 7000")),
                            (2, 13, "unknown type 'CONNECT' in HEALTHCHECK (try CMD or NONE)")),
    "healthcheck-cmd-missing": (N("HEALTHCHECK CMD", ("CMD",)),
                                (2, 13, "missing command after HEALTHCHECK CMD")),
    "healthcheck-none-args": (N("HEALTHCHECK NONE now", ("NONE", "now")),
                              (2, 18, "HEALTHCHECK NONE takes no arguments")),
    "healthcheck-none-flags": (N("HEALTHCHECK --interval=5s NONE", ("NONE",),
                                 ("--interval=5s",)),
                               (2, 13, "HEALTHCHECK NONE takes no flags")),
    "healthcheck-bad-duration": (N("HEALTHCHECK --interval=5 CMD true", ("CMD", "true"),
                                   ("--interval=5",)),
                                 (2, 13, "invalid duration '5' for --interval (like 30s, 1m30s, "
                                         "500ms)")),
    "healthcheck-bad-unit": (N("HEALTHCHECK --timeout=3sec CMD true", ("CMD", "true"),
                               ("--timeout=3sec",)),
                             (2, 13, "invalid duration '3sec' for --timeout (like 30s, 1m30s, "
                                     "500ms)")),
    "healthcheck-too-short": (N("HEALTHCHECK --start-period=10us CMD true", ("CMD", "true"),
                                ("--start-period=10us",)),
                              (2, 13, "--start-period cannot be less than 1ms")),
    "healthcheck-negative-duration": (N("HEALTHCHECK --start-interval=-1s CMD true",
                                        ("CMD", "true"), ("--start-interval=-1s",)),
                                      (2, 13, "--start-interval cannot be less than 1ms")),
    "healthcheck-negative-retries": (N("HEALTHCHECK --retries=-1 CMD true", ("CMD", "true"),
                                       ("--retries=-1",)),
                                     (2, 13, "--retries cannot be negative (-1)")),
    "healthcheck-bad-retries": (N("HEALTHCHECK --retries=three CMD true", ("CMD", "true"),
                                  ("--retries=three",)),
                                (2, 13, "invalid --retries value 'three': expected a whole "
                                        "number")),
    "healthcheck-spaced-retries": (N("HEALTHCHECK --retries=1_0 CMD true", ("CMD", "true"),
                                     ("--retries=1_0",)),
                                   (2, 13, "invalid --retries value '1_0': expected a whole "
                                           "number")),
    "healthcheck-huge-retries": (N("HEALTHCHECK --retries=99999999999 CMD true", ("CMD", "true"),
                                   ("--retries=99999999999",)),
                                 (2, 13, "invalid --retries value '99999999999': expected a "
                                         "whole number")),
    # EXPOSE, STOPSIGNAL, ENV, ARG, VOLUME
    "expose-bad-port": (N("EXPOSE 80 http", ("80", "http")),
                        (2, 11, "invalid EXPOSE port 'http': expected "
                                "PORT[-PORT][/tcp|udp|sctp]")),
    "expose-bad-proto": (N("EXPOSE 53/dns", ("53/dns",)),
                         (2, 8, "invalid EXPOSE port '53/dns': expected "
                                "PORT[-PORT][/tcp|udp|sctp]")),
    "expose-bad-range": (N("EXPOSE 90-80", ("90-80",)),
                         (2, 8, "invalid EXPOSE port '90-80': expected "
                                "PORT[-PORT][/tcp|udp|sctp]")),
    "expose-too-big": (N("EXPOSE 70000", ("70000",)),
                       (2, 8, "invalid EXPOSE port '70000': expected "
                              "PORT[-PORT][/tcp|udp|sctp]")),
    "stopsignal-bad": (N("STOPSIGNAL SIGFOO", ("SIGFOO",)),
                       (2, 12, "invalid STOPSIGNAL 'SIGFOO': expected a signal name or number")),
    "stopsignal-zero": (N("STOPSIGNAL 0", ("0",)),
                        (2, 12, "invalid STOPSIGNAL '0': expected a signal name or number")),
    "env-blank-name": (N("ENV =x", ("", "x", "=")), (2, 5, "ENV names can not be blank")),
    "label-blank-name": (N('LABEL a=1 =2', ("a", "1", "=", "", "2", "=")),
                         (2, 11, "LABEL names can not be blank")),
    "arg-blank-name": (N("ARG =x", ("=x",)), (2, 5, "ARG names can not be blank")),
    "arg-bad-name": (N("ARG ok 1abc=2", ("ok", "1abc=2")),
                     (2, 8, "invalid ARG name '1abc': use letters, digits, _, - and ., not "
                            "starting with a digit")),
    "arg-bad-name-symbol": (N("ARG a/b", ("a/b",)),
                            (2, 5, "invalid ARG name 'a/b': use letters, digits, _, - and ., "
                                   "not starting with a digit")),
    "volume-blank": (N('VOLUME ["/a", " "]', ("/a", " "), json=True),
                     (2, 1, "VOLUME specified can not be an empty string")),
    # ONBUILD
    "onbuild-onbuild": (N("ONBUILD ONBUILD RUN x", onbuild=N("ONBUILD RUN x", ("RUN x",))),
                        (2, 9, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")),
    "onbuild-from": (N("ONBUILD FROM alpine", onbuild=N("FROM alpine", ("alpine",))),
                     (2, 9, "FROM isn't allowed as an ONBUILD trigger")),
    "onbuild-maintainer": (N("ONBUILD MAINTAINER me", onbuild=N("MAINTAINER me", ("me",))),
                           (2, 9, "MAINTAINER isn't allowed as an ONBUILD trigger")),
    "onbuild-bad-trigger": (N("ONBUILD COPY --bogus a b", onbuild=N("COPY --bogus a b", ("a", "b"),
                                                                    ("--bogus",))),
                            (2, 14, "unknown flag --bogus for COPY")),
    "onbuild-unknown-trigger": (N("ONBUILD BUILD it", onbuild=N("BUILD it", ("it",))),
                                (2, 9, "unknown instruction: BUILD (did you mean "
                                        "ONBUILD?)")),
    "onbuild-flags": (N("ONBUILD --x RUN y", ("RUN", "y"), ("--x",)),
                      (2, 9, "unknown flag --x: ONBUILD takes no flags")),
    # FROM
    "from-bad-as": (N("FROM alpine AT base", ("alpine", "AT", "base")),
                    (2, 13, "FROM expects AS before the stage name, not 'AT'")),
    "from-as-no-name": (N("FROM alpine AS", ("alpine", "AS")),
                        (2, 13, "FROM ... AS needs a stage name")),
    "from-two-args": (N("FROM alpine latest", ("alpine", "latest")),
                      (2, 13, "FROM requires either one or three arguments (image [AS name])")),
    "from-no-args": (N("FROM", ()),
                     (2, 1, "FROM requires either one or three arguments (image [AS name])")),
    "from-bad-stage-name": (N("FROM alpine AS 1st", ("alpine", "AS", "1st")),
                            (2, 16, "invalid name for build stage: '1st', name can't start with "
                                    "a number or contain symbols")),
    "from-stage-name-symbol": (N("FROM alpine AS a/b", ("alpine", "AS", "a/b")),
                               (2, 16, "invalid name for build stage: 'a/b', name can't start "
                                       "with a number or contain symbols")),
    "from-stage-name-variable": (N("FROM alpine AS $N", ("alpine", "AS", "$N")),
                                 (2, 16, "invalid name for build stage: '$N', name can't start "
                                         "with a number or contain symbols")),
    "from-unknown-flag": (N("FROM --plat=x alpine", ("alpine",), ("--plat=x",)),
                          (2, 6, "unknown flag --plat for FROM (did you mean --platform?)")),
    "copy-heredoc-dest": (N("COPY a <<EOF", ("a", "<<EOF"), heredocs=(Heredoc("EOF", "x\n"),)),
                          (2, 8, "COPY destination cannot be a heredoc")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_error(name):
    item, expected = CASES[name]
    assert err1(item) == expected


def test_at_least_twenty_kinds_of_mistakes():
    assert len({msg.split("'")[0] for _, (_, _, msg) in CASES.values()}) >= 20


def test_instruction_before_first_from():
    assert errors(N("RUN x", ("x",)), N("ARG ok", ("ok",)), N("ENV a=b", ("a", "b", "=")),
                  "FROM x") == [
        (1, 1, "RUN before the first FROM: only ARG may come before FROM"),
        (3, 1, "ENV before the first FROM: only ARG may come before FROM"),
    ]


def test_no_from_at_all():
    assert errors(N("ARG a", ("a",))) == [
        (1, 1, "the Dockerfile has no FROM: there is no stage to build")]


def test_empty_node_list():
    with pytest.raises(MasonErrors) as e:
        parse_instructions(ParseResult((), loc=SourceLoc("x/Dockerfile", 1, 1)))
    assert str(e.value) == "x/Dockerfile:1:1: error: the Dockerfile has no FROM: there is no " \
        "stage to build"


def test_duplicate_stage_name_case_insensitive():
    assert errors(N("FROM a AS Build", ("a", "AS", "Build")), "FROM b",
                  N("FROM c as build", ("c", "as", "build"))) == [
        (3, 11, "duplicate stage name 'build' (first defined on line 1)")]


def test_every_error_of_a_file_is_reported():
    got = errors(N("FROM a AS 1x", ("a", "AS", "1x")),
                 N("COPY --bogus --link=maybe app", ("app",), ("--bogus", "--link=maybe")),
                 N("RUN --mount=type=secret --network=bad x", ("x",),
                   ("--mount=type=secret", "--network=bad")),
                 N("EXPOSE nope", ("nope",)),
                 N("HEALTHCHECK CONNECT x", ("CONNECT", "x")))
    assert got == [
        (1, 11, "invalid name for build stage: '1x', name can't start with a number or contain "
                "symbols"),
        (2, 6, "unknown flag --bogus for COPY"),
        (2, 14, "expecting boolean value for flag --link, not: 'maybe'"),
        (2, 27, "COPY requires at least two arguments: a source and a destination"),
        (3, 5, "secret mount needs an id, a target or an env"),
        (3, 25, "unsupported --network value 'bad' (expected default, none or host)"),
        (4, 8, "invalid EXPOSE port 'nope': expected PORT[-PORT][/tcp|udp|sctp]"),
        (5, 13, "unknown type 'CONNECT' in HEALTHCHECK (try CMD or NONE)"),
    ]


def test_errors_carry_the_source_line_and_format_with_a_caret():
    with pytest.raises(MasonErrors) as e:
        from tests.frontends.dockerfile.test_instructions_helpers import parse
        parse("FROM x", N("COPY app", ("app",)))
    assert e.value.format() == (
        "Dockerfile:2:6: error: COPY requires at least two arguments: a source and a destination\n"
        "    COPY app\n"
        "         ^")


def test_column_on_a_continuation_line():
    text = "FROM x\nRUN --network=none \\\n    --mount=type=cache,sharing=nope,target=/c \\\n" \
           "    make\n"
    run = Node("run", ("make",), ("--network=none", "--mount=type=cache,sharing=nope,target=/c"),
               original="RUN --network=none     --mount=type=cache,sharing=nope,target=/c     "
                        "make", loc=SourceLoc("Dockerfile", 2, 1, 4))
    nodes = (Node("from", ("x",), original="FROM x", loc=SourceLoc("Dockerfile", 1, 1, 1)), run)
    with pytest.raises(MasonErrors) as e:
        parse_instructions(ParseResult(nodes), text)
    (err,) = e.value.errors
    assert (err.loc.line, err.loc.col) == (3, 24)
    assert err.message.startswith("unsupported sharing value 'nope'")
    assert err.source_line == "    --mount=type=cache,sharing=nope,target=/c \\"
    # without the text, a multi-line instruction's errors point at its start
    with pytest.raises(MasonErrors) as e:
        parse_instructions(ParseResult(nodes))
    assert (e.value.loc.line, e.value.loc.col) == (2, 1)


def test_indented_instruction_columns():
    text = "FROM x\n   COPY app\n"
    nodes = (Node("from", ("x",), original="FROM x", loc=SourceLoc("Dockerfile", 1, 1, 1)),
             Node("copy", ("app",), original="   COPY app", loc=SourceLoc("Dockerfile", 2, 4, 2)))
    for t in (text, None):
        with pytest.raises(MasonErrors) as e:
            parse_instructions(ParseResult(nodes), t)
        assert (e.value.loc.line, e.value.loc.col) == (2, 9)



BAD_DOCKERFILE = """\
RUN echo too early
ARG 9lives=1
FROM alpine AS 1st
  COPY --chmod=999 app
RUN --network=host \\
    --mount=type=cache,target=/c,sharing=maybe \\
    make
ONBUILD FROM busybox
ONBUILD COPY --link=sure a b
HEALTHCHECK --interval=10 CMD true
EXPOSE 80/tcp 8080/http
SHELL /bin/bash -c
FROM scratch AS b
FROM scratch AS B
COPY a <<EOF
hi
EOF
STOPSIGNAL SIGNOPE
LABEL =x
"""


def test_text_through_both_layers_reports_every_mistake_in_order():
    from mason.frontends.dockerfile.syntax import parse_dockerfile
    with pytest.raises(MasonErrors) as e:
        parse_instructions(parse_dockerfile(BAD_DOCKERFILE, "app/Dockerfile"), BAD_DOCKERFILE)
    got = [(x.loc.file, x.loc.line, x.loc.col, x.message) for x in e.value.errors]
    assert got == [("app/Dockerfile", *x) for x in [
        (1, 1, "RUN before the first FROM: only ARG may come before FROM"),
        (2, 5, "invalid ARG name '9lives': use letters, digits, _, - and ., not starting "
               "with a digit"),
        (3, 16, "invalid name for build stage: '1st', name can't start with a number or "
                "contain symbols"),
        (4, 8, "invalid --chmod value '999': an octal mode must be 0-7777"),
        (4, 20, "COPY requires at least two arguments: a source and a destination"),
        (6, 34, "unsupported sharing value 'maybe' (expected shared, private or locked)"),
        (8, 9, "FROM isn't allowed as an ONBUILD trigger"),
        (9, 14, "expecting boolean value for flag --link, not: 'sure'"),
        (10, 13, "invalid duration '10' for --interval (like 30s, 1m30s, 500ms)"),
        (11, 15, "invalid EXPOSE port '8080/http': expected PORT[-PORT][/tcp|udp|sctp]"),
        (12, 7, 'SHELL requires the arguments to be in JSON form, like ["/bin/sh", "-c"]'),
        (14, 17, "duplicate stage name 'b' (first defined on line 13)"),
        (15, 8, "COPY destination cannot be a heredoc"),
        (18, 12, "invalid STOPSIGNAL 'SIGNOPE': expected a signal name or number"),
        (19, 7, "LABEL names can not be blank"),
    ]]
    text = e.value.format()
    assert "app/Dockerfile:6:34: error: unsupported sharing value 'maybe'" in text
    assert "        --mount=type=cache,target=/c,sharing=maybe \\\n" \
           "                                     ^" in text
