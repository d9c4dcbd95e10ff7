"""``mason build --explain``: for each step that ran, why it missed the cache compared with the
last build of the same target — the changed file for a content edit, the changed ARG for a
``--build-arg`` change; values themselves are never stored (they may be secrets)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DF = """\
FROM {base}
ARG VERSION=1
COPY src/ /src/
RUN cat /src/main.c > /built
RUN echo "version $VERSION" > /version
"""


def test_explain_names_the_changed_file_and_build_arg(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base), "src/main.c": "int main;\n",
                                   "src/util.c": "int util;\n"})
    env.build(ctx, build_args={"VERSION": "1.0-supersecret"})

    (ctx / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    res, _ = env.build(ctx, build_args={"VERSION": "1.0-supersecret"}, explain=True)
    text = "\n".join(res.explain)
    copy = next(line for line in res.explain if "COPY src/" in line)
    assert "changed file src/main.c (sha256 " in copy and "util.c" not in copy, text
    run = next(line for line in res.explain if "RUN cat /src/main.c" in line)
    assert "parent step" in run, text

    p = env.cli("build", "--progress=quiet", "--explain", "--build-arg", "VERSION=2.0-othersecret", str(ctx))
    assert p.returncode == 0, p.stderr
    # every RUN after the ARG sees it in its environment (as in BuildKit): both run again
    for step in ("RUN echo", "RUN cat"):
        line = next(x for x in p.stderr.splitlines() if step in x)
        assert "build arg VERSION changed" in line, p.stderr
    assert not any("COPY" in x for x in p.stderr.splitlines())  # the COPY hit the cache
    db = (env.root / "solver" / "cache.db").read_bytes()
    assert b"supersecret" not in db and b"othersecret" not in db


def test_explain_without_changes_and_first_build(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DF.format(base=env.base), "src/main.c": "x\n"})
    res, _ = env.build(ctx, explain=True)
    assert res.explain and all("no earlier build of this target" in line for line in res.explain)
    res, _ = env.build(ctx, explain=True)
    assert res.explain == ()  # nothing ran, nothing to explain
    res, _ = env.build(ctx, explain=True, no_cache=True)
    assert res.explain and all("cache disabled" in line for line in res.explain)
