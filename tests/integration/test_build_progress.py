"""``mason build --progress`` and the build history as ``mason build`` wires them: plain prints
BuildKit's lines, json parseable events; every build (and ``mason solve``) is recorded, ``mason
history`` lists it and ``mason logs --step N`` replays a RUN's output with secrets redacted; the
record names build args but never holds their values; Ctrl-C leaves a "cancelled" record."""

from __future__ import annotations

import json
import re

import pytest

from mason.backends.solver.history import list_builds
from mason.cli.progress import event_from_json
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

SECRET = "hist0ry-S3CRET-value-31"
ARG_VALUE = "arg-value-not-for-history-8c1"
DOCKERFILE = """\
FROM {base} AS tool
RUN echo tool-line-one && echo tool-line-two >&2 && touch /tool

FROM {base}
ARG TOKEN
COPY --from=tool /tool /tool
RUN --mount=type=secret,id=tok sh -c 'echo before; cat /run/secrets/tok; echo; echo after'
"""


def history_ids(env) -> list[str]:
    p = env.cli("history", check=True)
    return [line.split()[0] for line in p.stdout.splitlines()[1:]]


def step_number(stderr: str, pattern: str) -> int:
    m = re.search(rf"^#(\d+) {pattern}", stderr, re.M)
    assert m, f"no step {pattern!r} in:\n{stderr}"
    return int(m.group(1))


def test_plain_progress_history_and_logs(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base)})
    secret_env = {"MASON_IT_TOK": SECRET}
    args = ("build", "--progress=plain", "--secret", "id=tok,env=MASON_IT_TOK", "--build-arg",
            f"TOKEN={ARG_VALUE}", "-t", "it-history", str(ctx))
    p = env.cli(*args, env=secret_env)
    assert p.returncode == 0, p.stderr
    err = p.stderr
    assert SECRET not in err and SECRET not in p.stdout
    # BuildKit's plain lines: header, output lines with seconds, DONE
    tool = step_number(err, r"\[tool 2/2\] RUN echo tool-line-one")
    final = step_number(err, r"\[stage-1 3/3\] RUN --mount=type=secret,id=tok")
    assert re.search(rf"^#{tool} \d+\.\d{{3}} tool-line-one$", err, re.M)
    assert re.search(rf"^#{tool} \d+\.\d{{3}} tool-line-two$", err, re.M)  # stderr too
    assert re.search(rf"^#{final} \d+\.\d{{3}} \*\*\*\*$", err, re.M)
    for n in (tool, final):
        assert re.search(rf"^#{n} DONE \d+\.\ds$", err, re.M)
    assert re.search(r"^#\d+ \[stage-1 2/3\] COPY --from=tool /tool /tool$", err, re.M)

    # mason history lists it; mason logs replays a step's output (redacted)
    [first] = history_ids(env)
    p = env.cli("logs", "--step", str(final), check=True)
    assert re.fullmatch(rf"#{final} \[stage-1 3/3\] RUN --mount=type=secret,id=tok sh -c .*\n"
                        rf"#{final} \d+\.\d{{3}} before\n#{final} \d+\.\d{{3}} \*\*\*\*\n#{final} \d+\.\d{{3}} after\n"
                        rf"#{final} DONE \d+\.\ds\n", p.stdout), p.stdout
    p = env.cli("logs", first[-6:], "--step", str(tool), check=True)  # by the random part of the id
    assert "tool-line-one" in p.stdout and "tool-line-two" in p.stdout

    # the record: what the build was, build-arg names only, the image; no secret anywhere
    [rec] = list_builds(env.root)
    assert rec.id == first and rec.status == "finished"
    assert rec.meta["build_args"] == ["TOKEN"] and rec.meta["tags"] == ["it-history"]
    assert rec.meta["context"] == str(ctx) and rec.meta["dockerfile"] == str(ctx / "Dockerfile")
    assert rec.meta["image"] == p_digest(env, "it-history")
    assert rec.meta["names"] == ["docker.io/library/it-history:latest"]
    for f in (env.root / "history").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert SECRET.encode() not in data and ARG_VALUE.encode() not in data, f

    # a rebuild: every step CACHED, listed first by mason history
    p = env.cli(*args, env=secret_env)
    assert p.returncode == 0, p.stderr
    for n in (tool, final):
        assert re.search(rf"^#{n} CACHED$", p.stderr, re.M), p.stderr
    ids = history_ids(env)
    assert len(ids) == 2 and ids[1] == first
    hist = env.cli("history", check=True).stdout.splitlines()
    assert hist[0].split()[:3] == ["BUILD", "ID", "CREATED"]
    assert "finished" in hist[1] and "it-history" in hist[1] and " cached" in hist[1]


def p_digest(env, name: str) -> str:
    return env.client.get_image(f"docker.io/library/{name}:latest").target.digest


def test_json_progress_is_one_event_per_line(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo json-visible\n"})
    p = env.cli("build", "--progress=json", str(ctx))
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in p.stderr.splitlines()]
    events = [event_from_json(o) for o in objs]
    assert len(events) == len(objs)
    kinds = [o["type"] for o in objs]
    assert "vertex.started" in kinds and "vertex.done" in kinds
    run = next(o for o in objs if o["type"] == "vertex.started" and "RUN echo json-visible" in o["name"])
    logs = "".join(o["data"] for o in objs if o["type"] == "vertex.log" and o["n"] == run["n"])
    assert logs == "json-visible\n"
    done = next(o for o in objs if o["type"] == "vertex.done" and o["n"] == run["n"])
    assert done["error"] is None and done["duration"] >= 0


def test_failed_build_is_recorded_and_replayed(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo about-to-fail; exit 3\n"})
    p = env.cli("build", "--progress=quiet", str(ctx))
    assert p.returncode == 1 and "exit code: 3" in p.stderr
    assert "about-to-fail" in p.stderr  # the error shows the output even with quiet progress
    [rec] = list_builds(env.root)
    assert rec.status == "failed" and "exit code: 3" in rec.error
    failed = next(s for s in rec.steps if s.status == "error")
    p = env.cli("logs", "--step", str(failed.n), check=True)
    assert re.search(rf"^#{failed.n} \d+\.\d{{3}} about-to-fail$", p.stdout, re.M)
    assert re.search(rf"^#{failed.n} ERROR: ", p.stdout, re.M)


def test_solve_is_recorded_too(build_env, tmp_path):
    from mason.ir.builder import image

    env = build_env
    path = tmp_path / "def.llb"
    path.write_bytes(image(env.base).run("echo solved-output").root().marshal())
    p = env.cli("solve", "--progress=plain", str(path))
    assert p.returncode == 0, p.stderr
    [rec] = list_builds(env.root)
    assert rec.status == "finished" and rec.meta["definition"] == str(path)
    n = next(s.n for s in rec.steps if "solved-output" in s.name)
    assert rec.log(n) == b"solved-output\n"


def test_python_api_result_names_the_record(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN true\n"})
    res, _ = env.build(ctx)
    [rec] = list_builds(env.root)
    assert res.build_id == rec.id and rec.status == "finished"
    res, _ = env.build(ctx, history=False)
    assert res.build_id is None and len(list_builds(env.root)) == 1


def test_ctrl_c_closes_progress_and_records_cancelled(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN echo started; sleep 60\n"})
    rc, before, rest = env.interrupt(ctx)
    assert rc == 130, before + rest
    assert "Traceback" not in rest
    [rec] = list_builds(env.root)
    assert rec.status == "cancelled"
    run = next(s for s in rec.steps if "sleep 60" in s.name)
    assert rec.log(run.n) == b"started\n"
