"""``mason build --call outline|targets|check [--format json]``: BuildKit's subrequests as
``docker buildx build --call`` prints them (result.txt tables; result.json for tools)."""

from __future__ import annotations

import base64
import json

import pytest

from mason.cli.call import tabulate
from mason.cli.main import main
from mason.frontends.base import BaseFrontend, FrontendRequest, answers

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
# BASE the base image
ARG BASE=golang:${GO_VERSION}
ARG UNUSED=x
# build compiles the binary
FROM $BASE AS build
# VERSION the version stamped in
ARG VERSION=dev
ARG NOTUSED
RUN --mount=type=secret,id=token,required=true --mount=type=ssh echo $VERSION
FROM build AS test
RUN --mount=type=secret,target=/run/secrets/npmrc true
# release is what ships
FROM --platform=linux/arm64 alpine AS release
COPY --from=build /out /
FROM scratch
COPY --from=release / /
"""


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    return tmp_path


def call(ctx, capsys, *args):
    rc = main(["build", *args, str(ctx)])
    return rc, capsys.readouterr()


def test_targets_text(ctx, capsys):
    rc, out = call(ctx, capsys, "--call", "targets")
    assert rc == 0
    assert out.out == ("TARGET    DESCRIPTION\n"
                       "build     compiles the binary\n"
                       "test      \n"
                       "release   is what ships\n"
                       "(default) \n")


def test_targets_json(ctx, capsys):
    rc, out = call(ctx, capsys, "--call=targets", "--format", "json")
    assert rc == 0
    doc = json.loads(out.out)
    assert [t.get("name") for t in doc["targets"]] == ["build", "test", "release", None]
    assert doc["targets"][0] == {"name": "build", "description": "compiles the binary", "base": "$BASE",
                                 "location": {"ranges": [{"start": {"line": 7}, "end": {"line": 7}}]}}
    assert doc["targets"][2]["platform"] == "linux/arm64"
    assert doc["targets"][3]["default"] is True and "default" not in doc["targets"][2]
    assert base64.b64decode(doc["sources"][0]).decode() == DOCKERFILE


def test_outline_text_of_the_default_target(ctx, capsys):
    rc, out = call(ctx, capsys, "--call", "outline", "--build-arg", "VERSION=3")
    assert rc == 0
    # the last stage is unnamed with no description: no TARGET header, as BuildKit's printer
    assert out.out == ("BUILD ARG    VALUE         DESCRIPTION\n"
                       "GO_VERSION   1.22          \n"
                       "BASE         golang:1.22   the base image\n"
                       "VERSION      3             the version stamped in\n"
                       "NOTUSED                    \n"
                       "\n"
                       "SECRET   REQUIRED\n"
                       "token    true\n"
                       "\n"
                       "SSH       REQUIRED\n"
                       "default   \n"
                       "\n")


def test_outline_of_a_target(ctx, capsys):
    rc, out = call(ctx, capsys, "--call", "outline", "--target", "release")
    assert rc == 0
    assert out.out.startswith("TARGET:      release\nDESCRIPTION: is what ships\n\nBUILD ARG")
    rc, out = call(ctx, capsys, "--call", "outline", "--target", "test", "--format", "json")
    doc = json.loads(out.out)
    assert doc["name"] == "test"
    assert [(a["name"], a.get("value")) for a in doc["args"]] == [("GO_VERSION", "1.22"), ("BASE", "golang:1.22"),
                                                             ("VERSION", "dev"), ("NOTUSED", None)]
    assert doc["args"][1]["description"] == "the base image" and "description" not in doc["args"][0]
    assert doc["secrets"] == [
        {"name": "token", "required": True, "location": {"ranges": [{"start": {"line": 11}, "end": {"line": 11}}]}},
        {"name": "npmrc", "location": {"ranges": [{"start": {"line": 13}, "end": {"line": 13}}]}}]
    assert doc["ssh"][0]["name"] == "default"
    # a global nothing in the target refers to is left out; a needed stage's ARG is listed
    # though nothing uses it (as buildkitd does; tests/integration/test_call_buildkit.py)
    assert "UNUSED" not in [a["name"] for a in doc["args"]]
    assert doc["args"][3] == {"name": "NOTUSED", "location": {"ranges": [{"start": {"line": 10}, "end": {"line": 10}}]}}


def test_outline_unknown_target_is_one_line(ctx, capsys):
    rc, out = call(ctx, capsys, "--call", "outline", "--target", "nope")
    assert rc == 1
    assert out.err.startswith("error: target stage 'nope' could not be found (stages: build, test, release, 3)")


def test_check_json_and_error(tmp_path, capsys):
    (tmp_path / "Dockerfile").write_text("FROM scratch AS Base\nMAINTAINER me\nCOPY x /x\n")
    rc, out = call(tmp_path, capsys, "--call", "check", "--format", "json")
    assert rc == 0
    doc = json.loads(out.out)
    assert [(w["ruleName"], w["location"]["ranges"][0]["start"]["line"]) for w in doc["warnings"]] == [
        ("StageNameCasing", 1), ("MaintainerDeprecated", 2)]
    assert doc["warnings"][0]["detail"] == "Stage name 'Base' should be lowercase"
    assert doc["warnings"][0]["description"] == "Stage names should be lowercase"
    assert doc["sources"][0]["fileName"].endswith("Dockerfile") and doc["sources"][0]["language"] == "Dockerfile"
    (tmp_path / "Dockerfile").write_text("# check=error=true\nFROM scratch AS Base\nCOPY x /x\n")
    rc, out = call(tmp_path, capsys, "--check", "--format", "json")
    assert rc == 1 and json.loads(out.out)["warnings"][0]["ruleName"] == "StageNameCasing"
    assert "error: lint violation found for rules: StageNameCasing" in out.err


def test_tabulate_is_gos_tabwriter():
    assert tabulate([["a", "bb", "c"], ["ccc", "", "d"]], 3) == "a     bb   c\nccc        d\n"
    assert tabulate([["TARGET:", "x"], ["DESCRIPTION:", "y"]], 1) == "TARGET:      x\nDESCRIPTION: y\n"


class _Quiet(BaseFrontend):
    name = "quiet"

    def targets(self, request: FrontendRequest):
        raise AssertionError("not called")


def test_answers_follows_what_a_frontend_overrides():
    fe = _Quiet()
    assert answers(fe, "targets") and not answers(fe, "outline") and not answers(fe, "lint")
    with pytest.raises(ValueError):
        answers(fe, "build")


MOCKERFILE = """\
#syntax=r2d4/mocker
apiVersion: v1alpha1
images:
- name: deps
  from: debian:bookworm
  package:
    install: [curl]
- name: app
  parent: deps
"""


def test_call_asks_the_frontend_the_file_selects(tmp_path, capsys):
    """--call goes to the frontend mason.resolution chooses (file name, # syntax=, --frontend):
    the Mockerfile frontend answers targets with its images; outline it does not answer, which
    is one line naming it."""
    (tmp_path / "Mockerfile.yaml").write_text(MOCKERFILE)
    rc = main(["build", "--call", "targets", "-f", str(tmp_path / "Mockerfile.yaml"), str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out == "TARGET        DESCRIPTION\ndeps          \napp (default) \n"
    rc = main(["build", "--call", "outline", "-f", str(tmp_path / "Mockerfile.yaml"), str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 1
    assert out.err.strip() == "error: --call outline: the mockerfile frontend does not answer the 'outline' subrequest"
    # --frontend forces the Dockerfile frontend on the same file: it answers outline, and finds
    # no FROM in the YAML
    rc = main(["build", "--call", "outline", "--frontend", "dockerfile", "-f", str(tmp_path / "Mockerfile.yaml"),
               str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 1 and out.err.strip() == "error: the Dockerfile has no stage (no FROM)"


def test_call_takes_build_contexts(ctx, capsys):
    """``--call`` reads ``--build-context`` as a build does: a good one reaches the frontend's
    request (the answer is the same), a bad one is the build's one-line error (it used to be
    ignored)."""
    rc, out = call(ctx, capsys, "--call", "targets", "--build-context", "base=docker-image://alpine:3.19")
    assert rc == 0 and out.out.startswith("TARGET    DESCRIPTION\nbuild ")
    rc, out = call(ctx, capsys, "--call", "outline", "--build-context", "nothing-after-the-name")
    assert rc == 1
    assert out.err.strip() == ("error: --build-context nothing-after-the-name: expected NAME=VALUE (VALUE: a "
                               "directory, docker-image://REF, a URL or a git repository)")
