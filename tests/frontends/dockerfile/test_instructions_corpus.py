"""Every corpus Dockerfile goes through both layers (syntax → instructions); the ones that are
semantic errors fail with their specific, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mason.frontends.dockerfile.instructions import (
    Arg,
    BindMount,
    CacheMount,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    Healthcheck,
    Label,
    Onbuild,
    Run,
    ShellForm,
    Stopsignal,
    TmpfsMount,
    User,
    Volume,
    Workdir,
    parse_instruction,
    parse_instructions,
)
from mason.frontends.dockerfile.syntax import parse_dockerfile
from mason.ir.errors import MasonErrors

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
PARSER = CORPUS / "dockerfile-parser" / "testfiles"
LLB = CORPUS / "buildkit-llb"

PARSER_CASES = sorted(p.parent.name for p in PARSER.glob("*/Dockerfile"))
LLB_CASES = sorted(p.name for p in LLB.glob("*.Dockerfile"))

_BEFORE_FROM = "CMD before the first FROM: only ARG may come before FROM"

# Corpus files that are fine for BuildKit's parser but semantic errors for its instructions
# layer (the parser cases test the parser alone): (line, column, message) of every error.
SEMANTIC_ERRORS = {
    "flags": [
        (3, 6, "unknown flag --user for COPY"),
        (4, 6, "unknown flag --doit for COPY"),
        (5, 6, "unknown flag --user for COPY"),
        (5, 16, "unknown flag --doit for COPY"),
        (6, 6, "unknown flag --doit for COPY"),
        (8, 5, "unknown flag --doit: CMD takes no flags"),
        (9, 5, "unknown flag --doit: CMD takes no flags"),
        (10, 5, "unknown flag --doit: CMD takes no flags"),
    ],
    "health": [
        (4, 1, "HEALTHCHECK requires at least one argument (CMD … or NONE)"),
        (7, 13, "missing command after HEALTHCHECK CMD"),
        (10, 13, "unknown type 'CONNECT' in HEALTHCHECK (try CMD or NONE)"),
    ],
    "json": [(line, 1, _BEFORE_FROM) for line in range(1, 9)],
    **{name: [(1, 1, _BEFORE_FROM)] for name in (
        "jeztah-invalid-json-json-inside-string", "jeztah-invalid-json-json-inside-string-double",
        "jeztah-invalid-json-single-quotes", "jeztah-invalid-json-unterminated-bracket",
        "jeztah-invalid-json-unterminated-string")},
}


def both_layers(path: Path):
    text = path.read_text(encoding="utf-8")
    return parse_instructions(parse_dockerfile(text, "Dockerfile"), text)


def test_corpus_is_there():
    assert len(PARSER_CASES) >= 30 and len(LLB_CASES) == 5


@pytest.mark.parametrize("case", PARSER_CASES)
def test_parser_corpus_through_both_layers(case):
    path = PARSER / case / "Dockerfile"
    if case in SEMANTIC_ERRORS:
        with pytest.raises(MasonErrors) as e:
            both_layers(path)
        got = [(x.loc.line, x.loc.col, x.message) for x in e.value.errors]
        assert got == SEMANTIC_ERRORS[case]
        assert all(x.loc.file == "Dockerfile" and x.source_line is not None
                   for x in e.value.errors)
    else:
        df = both_layers(path)
        assert df.stages
        assert len(df.instructions) == len(parse_dockerfile(path.read_text("utf-8")).nodes)


@pytest.mark.parametrize("case", sorted(c for c in SEMANTIC_ERRORS if c.startswith(("json",
                                                                                   "jeztah"))))
def test_stageless_corpus_instructions_are_fine_one_by_one(case):
    text = (PARSER / case / "Dockerfile").read_text("utf-8")
    for node in parse_dockerfile(text).nodes:
        assert isinstance(parse_instruction(node, text), Cmd)


def test_parser_corpus_values():
    df = both_layers(PARSER / "lk4d4-the-edge-case-generator" / "Dockerfile")
    insts = df.stages[0].instructions
    onbuilds = [i for i in insts if isinstance(i, Onbuild)]
    assert [o.expression for o in onbuilds] == [
        'RUN ["echo", "test"]', "RUN echo test", "COPY . /"]
    assert onbuilds[0].trigger == Run(ExecForm(("echo", "test")))
    assert onbuilds[2].trigger == Copy((".",), "/")
    envs = [i for i in insts if isinstance(i, Env)]
    assert envs[0].pairs == (("SCUBA", "1 DUBA 3"),)
    assert [i.ports for i in insts if isinstance(i, Expose)] == [("3000",), ("9000", "5000",
                                                                             "6000")]
    assert [i.user for i in insts if isinstance(i, User)] == ["docker", "docker:root"]
    args = both_layers(PARSER / "args" / "Dockerfile")
    assert [a.args for a in args.meta_args] == [(("foo", None), ("bar", "baz"))]
    assert args.stages[0].instructions == (Arg((("abc", '"123 456"'), ("def", None))),)


def test_llb_argenv():
    df = both_layers(LLB / "argenv.Dockerfile")
    assert df.meta_args == (Arg((("BASE", "127.0.0.1:5000/library/busybox"),)),)
    (stage,) = df.stages
    assert stage.base == "${BASE}" and stage.name is None
    assert [type(i) for i in stage.instructions] == [Arg, Arg, Env, Env, Workdir, Run, User, Run]
    assert stage.instructions[2].pairs == (("APP_HOME", "/opt/app"),
                                           ("APP_VERSION", "${VERSION}"))
    assert stage.instructions[3].pairs == (("GREETING", '"hello world"'),)
    assert stage.instructions[5].command == ShellForm('echo "$GREETING $APP_VERSION" > '
                                                      "version.txt")


def test_llb_cachemount():
    df = both_layers(LLB / "cachemount.Dockerfile")
    deps, main = df.stages
    assert deps.name == "deps"
    r1, r2, r3 = main.instructions
    assert r1.mounts == (CacheMount("/root/.cache", "pkgcache", sharing="locked"),)
    assert r2.mounts == (BindMount("/mnt/deps", "/deps", "deps"), TmpfsMount("/scratch"))
    assert r3.network == "none" and r3.mounts[0].effective_id == "/var/cache/app"
    assert r1.loc.line == 5 and r1.loc.end_line == 6


def test_llb_metadata():
    (stage,) = both_layers(LLB / "metadata.Dockerfile").stages
    label, expose, env, vol, sig, health, copy, entry, cmd = stage.instructions
    assert label == Label((("org.opencontainers.image.title", '"mason-ref"'),
                           ("maintainer", '"anchor@example.invalid"')))
    assert expose.ports == ("8080", "9090/udp") and env.pairs == (("PORT", "8080"),)
    assert vol == Volume(("/data",)) and sig == Stopsignal("SIGTERM")
    assert health == Healthcheck(ShellForm("true"), 30 * 10**9, 3 * 10**9)
    assert copy == Copy(("hello.txt",), "/usr/local/bin/hello", chmod="755")
    assert entry == Entrypoint(ExecForm(("/bin/sh", "-c")))
    assert cmd == Cmd(ExecForm(("echo running on $PORT",)))


def test_llb_multistage_and_simple():
    df = both_layers(LLB / "multistage.Dockerfile")
    assert [s.name for s in df.stages] == ["builder-a", "builder-b", None]
    c1, c2, _ = df.stages[2].instructions
    assert (c1.from_, c1.sources, c1.dest) == ("builder-a", ("/out/a.txt",), "/final/")
    assert (c2.from_, c2.sources) == ("builder-b", ("/src/b.txt", "/src/b.sum"))
    (simple,) = both_layers(LLB / "simple.Dockerfile").stages
    assert simple.instructions[-1] == Cmd(ExecForm(("cat", "/app/both")))
