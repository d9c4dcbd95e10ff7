"""Cache keys by selected content, against real builds: a rebuild with no change runs no
step; ``touch`` of a copied file runs none; editing the file copied at step 8 of 10 runs
exactly the RUNs after that COPY; an EXPOSE edit runs none (and still changes the image);
``--no-cache-filter`` runs a stage's steps again. A step ran when its RUN printed its marker
(``RAN-<id>``, spelled so that the step's name never contains it)."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from mason.backends.solver.events import VertexLog, VertexStarted
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

TEN = """\
FROM {base}
RUN echo "RAN-$(echo r2)"
COPY a.txt /a.txt
RUN echo "RAN-$(echo r4)" && cat /a.txt > /seen-a
EXPOSE {port}
COPY b.txt /b.txt
RUN echo "RAN-$(echo r7)"
COPY c.txt /c.txt
RUN echo "RAN-$(echo r9)" && cat /c.txt > /seen-c
RUN echo "RAN-$(echo r10)"
"""


def ran(rec) -> list[str]:
    """The markers the RUNs printed, in order."""
    out = b"".join(e.data for e in rec.of(VertexLog)).decode()
    return re.findall(r"RAN-(\w+)", out)


def snapshots(env) -> set[str]:
    return {s.name for s in env.client.list_snapshots()}


def config_of(env, res):
    c = env.client
    manifest = json.loads(c.read_blob(res.image.manifest_digest))
    return json.loads(c.read_blob(manifest["config"]["digest"]))


def test_rebuilds_run_only_what_changed(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": TEN.format(base=env.base, port=8080),
                                   "a.txt": "a1\n", "b.txt": "b1\n", "c.txt": "c1\n", "unused.txt": "u\n"})
    _, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == ["r2", "r4", "r7", "r9", "r10"]

    # no change: nothing runs, and nothing is loaded (no context copy, no snapshot made)
    before = snapshots(env)
    res, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == []
    assert rec.of(VertexStarted) == []
    assert snapshots(env) == before

    # touch every file (mtime only): nothing
    later = time.time() + 5
    for name in ("a.txt", "b.txt", "c.txt", "unused.txt", "Dockerfile"):
        os.utime(ctx / name, (later, later))
    _, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == [] and rec.of(VertexStarted) == []

    # a file no step copies: nothing
    (ctx / "unused.txt").write_text("u2\n")
    _, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == []

    # the file COPY'd at step 8 of 10: exactly the RUNs after it
    (ctx / "c.txt").write_text("c2\n")
    res, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == ["r9", "r10"]
    started = [e.name for e in rec.of(VertexStarted)]
    assert not any("COPY a.txt" in n or "COPY b.txt" in n for n in started)

    # EXPOSE: nothing runs, and the image says the new port
    (ctx / "Dockerfile").write_text(TEN.format(base=env.base, port=9090))
    res, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == []
    assert "9090/tcp" in config_of(env, res)["config"]["ExposedPorts"]

    # the file copied at step 3: the RUNs after it
    (ctx / "a.txt").write_text("a2\n")
    res, rec = env.build(ctx, tags=("it-cache-ten",))
    assert ran(rec) == ["r4", "r7", "r9", "r10"]
    from tests.integration.test_build_dockerfile import fs

    with fs(env, res.result) as root:
        assert open(os.path.join(root, "seen-a")).read() == "a2\n"
        assert open(os.path.join(root, "seen-c")).read() == "c2\n"


def test_selected_content_wildcards_and_directories(build_env, tmp_path):
    env = build_env
    df = (f"FROM {env.base}\n"
          "COPY src/ /src/\n"
          'RUN echo "RAN-$(echo src)"\n'
          "COPY *.cfg /cfg/\n"
          'RUN echo "RAN-$(echo cfg)"\n')
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "src/a.c": "int a;\n", "src/sub/b.c": "int b;\n",
                                   "x.cfg": "x\n", "notes.md": "n\n"})
    _, rec = env.build(ctx)
    assert ran(rec) == ["src", "cfg"]
    (ctx / "notes.md").write_text("changed\n")
    _, rec = env.build(ctx)
    assert ran(rec) == []
    (ctx / "y.cfg").write_text("new\n")  # a new wildcard match
    _, rec = env.build(ctx)
    assert ran(rec) == ["cfg"]
    os.chmod(ctx / "src" / "sub" / "b.c", 0o755)  # a mode inside a copied directory
    _, rec = env.build(ctx)
    assert ran(rec) == ["src", "cfg"]


def test_no_cache_filter_runs_the_named_stage_again(build_env, tmp_path):
    env = build_env
    df = (f"FROM {env.base} AS deps\n"
          'RUN echo "RAN-$(echo deps)" && echo d > /deps\n'
          f"FROM {env.base} AS app\n"
          'RUN echo "RAN-$(echo app1)"\n'
          "COPY --from=deps /deps /deps\n"
          'RUN echo "RAN-$(echo app2)"\n')
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    _, rec = env.build(ctx)
    assert sorted(ran(rec)) == ["app1", "app2", "deps"]
    _, rec = env.build(ctx, no_cache_filter=("app",))
    assert ran(rec) == ["app1", "app2"]
    _, rec = env.build(ctx, no_cache_filter=("deps",))
    assert ran(rec) == ["deps"]  # same output as before: the app stage's keys do not change
    _, rec = env.build(ctx, no_cache=True)
    assert sorted(ran(rec)) == ["app1", "app2", "deps"]
