"""Build checks: every rule fires on a Dockerfile that breaks it (with BuildKit's message, at the
offending token) and stays quiet on one that follows it; the ``# check=`` directive and the
``BUILDKIT_DOCKERFILE_CHECK`` build arg; never a crash."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.frontends.dockerfile.checks import RULE_NAMES, RULES, is_secret_name, lint, parse_check_config
from mason.frontends.dockerfile.syntax import parse_dockerfile
from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec

AMD64 = PlatformSpec("linux", "amd64")
ARM64 = PlatformSpec("linux", "arm64")

CONFIGS = {
    "alpine": {"os": "linux", "architecture": "amd64", "config": {"Env": ["PATH=/bin", "HOME_DIR=/h"]}},
    "armonly": {"os": "linux", "architecture": "arm64", "config": {}},
}


def image_config(ref: str, platform: PlatformSpec):
    return CONFIGS.get(ref.split(":")[0])


def run(text: str, **kw):
    text = textwrap.dedent(text).lstrip("\n")
    kw.setdefault("image_config", image_config)
    kw.setdefault("target_platform", AMD64)
    kw.setdefault("build_platform", AMD64)
    return lint(parse_dockerfile(text, "Dockerfile"), text, **kw)


def fired(report, rule: str):
    return [w for w in report.warnings if w.rule == rule]


# (rule, Dockerfile that breaks it, the message, its line:col, Dockerfile that follows it, lint kwargs)
CASES = [
    ("StageNameCasing", "FROM alpine AS BuilderBase\n", "Stage name 'BuilderBase' should be lowercase",
     (1, 16), "FROM alpine AS builder-base\n", {}),
    ("FromAsCasing", "FROM debian:latest as builder\n", "'as' and 'FROM' keywords' casing do not match",
     (1, 20), "from debian:latest as deb-builder\nFROM alpine AS b2\n", {}),
    ("NoEmptyContinuation", "FROM alpine\nEXPOSE \\\n\n80\n",
     "Empty continuation line", None, "FROM alpine\nEXPOSE \\\n# Port\n80\n", {}),
    ("ConsistentInstructionCasing", "FROM alpine\nRUN echo hello > /greeting.txt\nEntRYpOiNT [\"cat\"]\n",
     "Command 'EntRYpOiNT' should match the case of the command majority (uppercase)", (3, 1),
     "from alpine\nrun echo hello\nentrypoint [\"cat\"]\n", {}),
    ("DuplicateStageName", "FROM debian:latest AS builder\nFROM golang:latest AS Builder\n",
     'Duplicate stage name "builder", stage names should be unique', (2, 23),
     "FROM debian:latest AS deb-builder\nFROM golang:latest AS go-builder\n", {}),
    ("ReservedStageName", "FROM alpine AS scratch\n",
     'Stage name should not use the same name as reserved stage "scratch"', (1, 16),
     "FROM alpine AS builder\n", {}),
    ("JSONArgsRecommended", "FROM alpine\nENTRYPOINT my-program start\n",
     "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
     (2, 1), "FROM alpine\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT echo hi\nCMD [\"a\"]\n", {}),
    ("MaintainerDeprecated", "FROM alpine\nMAINTAINER moby@example.com\n",
     "Maintainer instruction is deprecated in favor of using label", (2, 1),
     "FROM alpine\nLABEL org.opencontainers.image.authors=\"moby@example.com\"\n", {}),
    ("UndefinedArgInFrom", "FROM node:22${VARIANT} AS jsbuilder\n",
     "FROM argument 'VARIANT' is not declared", (1, 13),
     "ARG VARIANT=\"-alpine3.20\"\nFROM node:22${VARIANT} AS jsbuilder\n", {}),
    ("WorkdirRelativePath", "FROM alpine AS web\nWORKDIR usr/share/nginx/html\n",
     'Relative workdir "usr/share/nginx/html" can have unexpected results if the base image changes',
     (2, 9), "FROM alpine AS web\nWORKDIR /usr/share\nWORKDIR nginx/html\nFROM web\nWORKDIR x\n", {}),
    ("UndefinedVar", "FROM alpine AS base\nCOPY $foo .\n", "Usage of undefined variable '$foo'",
     (2, 6), "FROM alpine AS base\nARG foo\nCOPY $foo $HOME_DIR .\nENV A=$PATH\nRUN echo $nope\n", {}),
    ("MultipleInstructionsDisallowed", "FROM alpine\nCMD [\"a\"]\nCMD [\"b\"]\n",
     "Multiple CMD instructions should not be used in the same stage because only the last one "
     "will be used", (2, 1),
     "FROM alpine\nHEALTHCHECK CMD [\"curl\"]\nCMD [\"a\"]\nFROM alpine\nCMD [\"b\"]\n", {}),
    ("LegacyKeyValueFormat", "FROM alpine\nENV foo bar\n",
     "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format", (2, 1),
     "FROM alpine\nENV foo=bar\nARG a b\nLABEL x=y\n", {}),
    ("InvalidBaseImagePlatform", "FROM armonly\n",
     "Base image armonly was pulled with platform linux/arm64, expected linux/amd64 for current build",
     (1, 6), "FROM alpine\nFROM --platform=linux/arm64 armonly AS arm64\n", {}),
    ("RedundantTargetPlatform", "FROM --platform=$TARGETPLATFORM alpine AS builder\n",
     "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default "
     "behavior", (1, 17), "FROM --platform=$BUILDPLATFORM alpine AS builder\n", {}),
    ("SecretsUsedInArgOrEnv", "FROM scratch\nARG AWS_SECRET_ACCESS_KEY\n",
     "Do not use ARG or ENV instructions for sensitive data (ARG \"AWS_SECRET_ACCESS_KEY\")", (2, 5),
     "FROM scratch\nARG PUBLIC_KEY\nENV KEYBOARD=us MONKEY=1\n", {}),
    ("InvalidDefaultArgInFrom", "ARG TAG\nFROM busybox:${TAG}\n",
     "Default value for ARG busybox:${TAG} results in empty or invalid base image name", (2, 6),
     "ARG TAG=latest\nFROM busybox:${TAG}\nARG VARIANT\nFROM busybox:stable${VARIANT}\n"
     "ARG T2\nFROM alpine:${T2:-3.14}\n", {}),
    ("FromPlatformFlagConstDisallowed", "FROM --platform=linux/amd64 alpine AS base\n",
     "FROM --platform flag should not use constant value \"linux/amd64\"", (1, 17),
     "FROM --platform=linux/amd64 alpine AS build_amd64\nFROM --platform=${BUILDPLATFORM} alpine\n",
     {}),
    ("CopyIgnoredFile", "FROM scratch\nCOPY ./tmp/helloworld.txt /helloworld.txt\n",
     "Attempting to Copy file \"tmp/helloworld.txt\" that is excluded by .dockerignore", (2, 6),
     "FROM scratch\nCOPY ./forever/helloworld.txt /helloworld.txt\nCOPY . /\n"
     "COPY --from=alpine tmp/x /\n", {"excludes": ["tmp/*"]}),
    ("InvalidDefinitionDescription", "# check=experimental=InvalidDefinitionDescription\n\n"
     "# a non-descriptive comment\nFROM scratch AS base\n",
     "Comment for FROM should follow the format: `# base <description>`", (4, 1),
     "# check=experimental=InvalidDefinitionDescription\n\n# base is a stage for compiling source\n"
     "FROM scratch AS base\n# VERSION This is the version number.\nARG VERSION=1\n"
     "# a non-descriptive comment\n#\nARG OTHER=1\n# OTHER2\nARG OTHER2\n# X desc\nARG X Y\n", {}),
    ("ExposeProtoCasing", "FROM alpine\nEXPOSE 80/TcP\n",
     "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase", (2, 8),
     "FROM alpine\nEXPOSE 80/tcp 81\n", {}),
    ("ExposeInvalidFormat", "FROM alpine\nEXPOSE 127.0.0.1:80:80\n",
     "EXPOSE instruction should not define an IP address or host-port mapping, found "
     "'127.0.0.1:80:80'", (2, 8), "FROM alpine\nEXPOSE 80\n", {}),
]


def test_every_rule_has_a_case():
    assert sorted(c[0] for c in CASES) == sorted(RULE_NAMES)
    assert len(RULE_NAMES) == 22


@pytest.mark.parametrize("rule,bad,message,where,good,kw", CASES, ids=[c[0] for c in CASES])
def test_rule_fires(rule, bad, message, where, good, kw):
    ws = fired(run(bad, **kw), rule)
    assert [w.message for w in ws] == [message]
    w = ws[0]
    assert w.description == RULES[rule].description
    if where is not None:
        assert (w.loc.line, w.loc.col) == where
    assert w.source_line is not None and w.format().startswith(f"Dockerfile:{w.loc.line}:{w.loc.col}: ")


@pytest.mark.parametrize("rule,bad,message,where,good,kw", CASES, ids=[c[0] for c in CASES])
def test_rule_quiet(rule, bad, message, where, good, kw):
    assert fired(run(good, **kw), rule) == []


def test_caret_under_the_token():
    w = fired(run("FROM alpine AS BuilderBase\n"), "StageNameCasing")[0]
    lines = w.format().split("\n")
    assert lines[1] == "    FROM alpine AS BuilderBase"
    assert lines[2] == "    " + " " * 15 + "^" * len("BuilderBase")
    assert lines[3] == "    Stage names should be lowercase"


def test_undefined_var_suggests_and_uses_base_env():
    r = run("FROM alpine\nENV PATH=$PAHT:/app/bin\n")
    assert [w.message for w in fired(r, "UndefinedVar")] == [
        "Usage of undefined variable '$PAHT' (did you mean $PATH?)"]
    # a base image whose config cannot be had: no guessing
    assert fired(run("FROM unknown\nCOPY $foo .\n"), "UndefinedVar") == []
    # a parent stage's ENV is known, its ARGs are not
    r = run("FROM scratch AS a\nENV E=1\nARG A=1\nFROM a\nCOPY $E $A /\n")
    assert [w.message for w in fired(r, "UndefinedVar")] == ["Usage of undefined variable '$A' (did you mean $E?)"]


def test_undefined_arg_in_from_suggests_builtin():
    r = run("FROM --platform=$BUILDPLATFOM alpine\n")
    assert [w.message for w in fired(r, "UndefinedArgInFrom")] == [
        "FROM argument 'BUILDPLATFOM' is not declared (did you mean BUILDPLATFORM?)"]


def test_image_config_asked_only_for_needed_stages():
    asked = []

    def cfg(ref, platform):
        asked.append(ref)
        return CONFIGS.get(ref)

    text = "FROM alpine AS a\nFROM armonly AS b\nFROM scratch AS c\nCOPY --from=a / /\n"
    run(text, image_config=cfg, all_targets=False)
    assert asked == ["alpine"]
    asked.clear()
    run(text, image_config=cfg)
    assert sorted(asked) == ["alpine", "armonly"]


def test_secret_names():
    for name in ("password", "DB_PASSWORD", "api_key", "APIKEY", "GITHUB_TOKEN", "AUTH_URL",
                 "my_secret", "AWS_CREDENTIALS", "pword", "passwd_x", "CLOUDFLARE_ACCESS_KEY_ID"):
        assert is_secret_name(name), name
    for name in ("PUBLIC_KEY", "KEYBOARD", "MONKEY", "TOKENIZER", "AUTHOR", "PATH", "public_token"):
        assert not is_secret_name(name), name


# ------------------------------------------------------------------ the directive and the build arg

BREAKS_TWO = "{directive}FROM alpine AS Base\nCMD echo hi\n"


def test_skip_and_error_directive():
    r = run(BREAKS_TWO.format(directive=""))
    assert r.rules() == ["StageNameCasing", "JSONArgsRecommended"] and not r.failed
    r = run(BREAKS_TWO.format(directive="# check=skip=StageNameCasing\n"))
    assert r.rules() == ["JSONArgsRecommended"] and not r.failed
    r = run(BREAKS_TWO.format(directive="# check=skip=JSONArgsRecommended,StageNameCasing;error=true\n"))
    assert r.rules() == [] and not r.failed
    r = run(BREAKS_TWO.format(directive="# check=error=true\n"))
    assert r.failed
    assert run(BREAKS_TWO.format(directive="# check=skip=all\n")).rules() == []
    # names are case-sensitive: a wrong-case name skips nothing
    assert len(run(BREAKS_TWO.format(directive="# check=skip=stagenamecasing\n")).rules()) == 2


def test_build_arg_replaces_directive():
    text = BREAKS_TWO.format(directive="# check=error=true\n")
    r = run(text, build_args={"BUILDKIT_DOCKERFILE_CHECK": "skip=StageNameCasing"})
    assert r.rules() == ["JSONArgsRecommended"] and not r.failed
    r = run(BREAKS_TWO.format(directive=""), build_args={"BUILDKIT_DOCKERFILE_CHECK": "error=true"})
    assert r.failed


def test_experimental_enables_by_name_or_all():
    text = "{d}# nothing to do with it\nFROM scratch AS base\n"
    assert run(text.format(d="")).rules() == []
    assert run(text.format(d="# check=experimental=all\n\n")).rules() == ["InvalidDefinitionDescription"]


@pytest.mark.parametrize("value,message", [
    ("skip", "invalid # check directive value 'skip': expected key=value"),
    ("error=maybe", "invalid # check directive value: error='maybe' is not a boolean"),
    ("severity=high", "invalid # check directive option 'severity'"),
])
def test_bad_directive_is_located_error(value, message):
    text = f"# check={value}\nFROM scratch\n"
    with pytest.raises(MasonError) as e:
        run(text)
    assert e.value.message.startswith(message)
    assert e.value.loc is not None and e.value.loc.line == 1


def test_parse_check_config():
    c = parse_check_config(" skip = A, B ; error = TRUE ; experimental = C ")
    assert c.skip == {"A", "B"} and c.error and c.experimental == {"C"}
    assert not parse_check_config("").error


# ------------------------------------------------------------------ robustness

@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "FROM alpine AS Base", "from x as y", "ARG A", "ARG TOKEN=1", "ENV a b", "ENV $X=${Y:-z}",
    "COPY $a ${b c", "WORKDIR rel", "EXPOSE 1:2/TCP", "CMD x", "CMD [\"x\"]", "FROM ${A}",
    "FROM --platform=$A ${A}:${B", "MAINTAINER m", "RUN --mount=from=$x,target=/t x",
    "HEALTHCHECK NONE", "SHELL [\"sh\"]", "# comment", "", "ONBUILD Run x", "USER ${U:?nope}",
    "FROM scratch AS scratch", "COPY --from=0 a b", "ADD http://x/y /", "STOPSIGNAL $S",
]), max_size=12))
def test_lint_never_crashes(lines):
    text = "\n".join(lines) + "\n"
    try:
        result = parse_dockerfile(text, "Dockerfile")
    except MasonError:
        return
    report = lint(result, text, image_config=image_config, excludes=["*"])
    for w in report.warnings:
        assert w.rule in RULES and w.loc.line >= 1
        w.format()


# ------------------------------------------------------------------ what BuildKit v0.32.2 reports
# (each found by running the same Dockerfile through buildkitd's lint subrequest)

def test_workdir_and_expose_are_expanded_first():
    r = run("FROM scratch\nENV D=rel\nWORKDIR $D\nWORKDIR /abs\nWORKDIR $D\n")
    assert [(w.loc.line, w.message) for w in fired(r, "WorkdirRelativePath")] == [
        (3, 'Relative workdir "rel" can have unexpected results if the base image changes')]
    assert fired(run("FROM scratch\nARG X=/a\nWORKDIR $X/rel\nWORKDIR rel2\n"), "WorkdirRelativePath") == []
    r = run("FROM scratch\nENV P=\"80/TCP 1:2\"\nEXPOSE $P\n")
    assert sorted(w.message for w in r.warnings) == [
        "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
        "EXPOSE instruction should not define an IP address or host-port mapping, found '1:2'"]


def test_global_arg_secret_names_are_not_checked():
    assert fired(run("ARG TOKEN\nFROM scratch\n"), "SecretsUsedInArgOrEnv") == []


def test_ignored_copies_quiet_with_exceptions():
    text = "FROM scratch\nCOPY tmp/a /\nCOPY tmp/* /\n"
    assert len(fired(run(text, excludes=["tmp"]), "CopyIgnoredFile")) == 2
    assert fired(run(text, excludes=["tmp", "!tmp/b"]), "CopyIgnoredFile") == []


def test_description_comment_block_crosses_empty_lines():
    text = "# check=experimental=all\nFROM scratch\n# x\n\n\nARG Q\n"
    assert [w.message for w in run(text).warnings] == [
        "Comment for ARG should follow the format: `# Q <description>`"]


def test_label_keys_and_copy_excludes_are_not_expanded_by_the_check():
    r = run("FROM scratch\nLABEL \"$K\"=$V\nCOPY --exclude=$E a /\nADD --checksum=$C http://x/y /\n")
    assert [w.message for w in fired(r, "UndefinedVar")] == [
        "Usage of undefined variable '$V'", "Usage of undefined variable '$C'"]
