"""``mason build --call outline|targets`` print what buildkitd v0.32.2 answers to the same
subrequest (``buildctl build --frontend dockerfile.v0 --opt requestid=frontend.outline|targets``
prints the frontend's ``result.txt``), byte for byte, for Dockerfiles that exercise the outline's
rules: global ARGs reached through FROM (and through another global's default), ARGs declared in
needed stages used or not, a global declared again (its place and description kept), a later
declaration replacing an earlier one, --build-arg values, secrets and SSH of RUN mounts, stages
needed through COPY --from and RUN --mount=from, descriptions from comments, --target.

The checks (``--call check``) are compared rule by rule elsewhere (tests/frontends/dockerfile/
test_checks.py); mason prints them in its own located format on purpose.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

CASES = {
    "globals": ("""\
# G the global g
ARG G=1
ARG GUNUSED=3
ARG A={base}
ARG B=$A
# a the first stage
FROM $B AS a
# AX described here
ARG AX=1
ARG G
ARG H=$G
RUN --mount=type=secret,id=tok,required=true --mount=type=ssh true
FROM scratch AS b
# X x-in-b
ARG X=2
COPY --from=a / /
ARG Y
ARG Z
""", ["target=b", "build-arg:Z=zz"]),
    "replace": ("""\
ARG GLOB=g
ARG P=linux/amd64
FROM --platform=$P {base} AS a
# X x-in-a
ARG X=$GLOB
ARG Y=1
RUN --mount=type=ssh,id=k,required true
FROM {base} AS b
RUN --mount=from=a,target=/x --mount=type=secret,target=/run/secrets/npmrc true
# X x-in-b
ARG X=2
# G the global, declared again last
ARG G=7
ARG Y
""", []),
    "default-target": ("""\
ARG V=1
FROM {base} AS base
ARG HTTP_PROXY=http://proxy
# app builds the app
FROM base AS app
ARG VERSION=$V
ENV VV=$VERSION
FROM {base} AS other
ARG NOT_NEEDED
FROM app
""", []),
}


def _mason(build_env, ctx, call, opts):
    args = ["build", "--call", call]
    for o in opts:
        if o.startswith("target="):
            args += ["--target", o.split("=", 1)[1]]
        elif o.startswith("build-arg:"):
            args += ["--build-arg", o.split(":", 1)[1]]
    p = build_env.cli(*args, str(ctx))
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("call", ["outline", "targets"])
def test_call_prints_what_buildkitd_answers(build_env, buildkitd, tmp_path, case, call):
    text, opts = CASES[case]
    ctx = write(tmp_path / "ctx", {"Dockerfile": text.format(base=build_env.base)})
    args = ["build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
            "--opt", f"requestid=frontend.{call}"]
    for o in opts:
        args += ["--opt", o]
    theirs = buildkitd.buildctl(*args).stdout.decode()
    assert theirs.strip(), "buildkitd answered nothing"
    assert _mason(build_env, ctx, call, opts) == theirs
