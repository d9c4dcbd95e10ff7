"""Real builds (session containerd + fixture registry) rendered by the progress renderers and
recorded by the history recorder, the way ``mason build`` wires them: what the solver really
emits draws well, is stored whole with secrets redacted, and replays with ``mason logs``."""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from mason.backends.solver.history import HistoryRecorder, list_builds
from mason.cli.main import main
from mason.cli.progress import JsonRenderer, PlainRenderer, TtyRenderer

pytestmark = pytest.mark.integration

SECRET = "pr0gress-S3CRET-value-77"
DOCKERFILE = """\
FROM {base} AS a
RUN echo a-one && sleep 1 && echo a-two && touch /a-done

FROM {base} AS b
RUN --mount=type=secret,id=token sh -c 'echo b-one; cat /run/secrets/token; echo; echo b-err >&2; touch /b-done'

FROM {base}
COPY --from=a /a-done /a
COPY --from=b /b-done /b
RUN echo final
"""


@pytest.fixture
def env(containerd_env, busybox_image, tmp_path: Path):
    root = Path(tempfile.mkdtemp(prefix="mason-progress-"))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=busybox_image.ref))
    secret = tmp_path / "token"
    secret.write_text(SECRET)
    yield root, containerd_env.address, ctx, secret
    shutil.rmtree(root, ignore_errors=True)


def build(env, renderer, **kw) -> str:
    """One build as `mason build` runs it: history recorder in front of the renderer."""
    from mason.driver import BuildRequest
    from mason.driver import build as do_build

    root, address, ctx, secret = env
    meta = {"context": str(ctx), "dockerfile": str(ctx / "Dockerfile"), "target": None, "tags": ["progress-it"]}
    try:
        with HistoryRecorder(root, meta=meta, forward=renderer) as rec:
            do_build(BuildRequest(context=str(ctx), root=str(root), containerd_address=address, events=rec,
                                  tags=("progress-it",), secrets=(f"id=token,src={secret}",), **kw))
    finally:
        renderer.close()
    return rec.id


def step_of(out: str, pattern: str) -> int:
    m = re.search(rf"^#(\d+) {pattern}", out, re.M)
    assert m, f"no step {pattern!r} in:\n{out}"
    return int(m.group(1))


def test_real_build_plain_history_logs_and_rebuild(env, capsys: pytest.CaptureFixture[str]) -> None:
    root = env[0]
    out = io.StringIO()
    first = build(env, PlainRenderer(out))
    text = out.getvalue()
    assert SECRET not in text
    a = step_of(text, r"\[a 2/2\] RUN echo a-one")
    b = step_of(text, r"\[b 2/2\] RUN --mount=type=secret")
    final = step_of(text, r"\[stage-2 4/4\] RUN echo final")
    lines_a = re.findall(rf"^#{a} \d+\.\d{{3}} (.*)$", text, re.M)
    assert lines_a == ["a-one", "a-two"]
    assert re.search(rf"^#{b} \d+\.\d{{3}} \*\*\*\*$", text, re.M)
    for n in (a, b, final):
        assert re.search(rf"^#{n} DONE \d+\.\ds$", text, re.M)
    assert "=> exporting to image" in text

    [rec] = list_builds(root)
    assert (rec.id, rec.status, rec.tags) == (first, "finished", ["progress-it"])
    assert rec.step(a).status == "done" and rec.log(a) == b"a-one\na-two\n"
    assert sorted(rec.log(b).splitlines()) == sorted([b"b-one", b"****", b"b-err"])
    for p in (root / "history").rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p

    # the stored output replays as plain progress
    assert main(["logs", "--root", str(root), "--step", str(a)]) == 0
    replay = capsys.readouterr().out
    assert re.fullmatch(rf"#{a} \[a 2/2\] RUN echo a-one && sleep 1 && echo a-two && touch /a-done\n#{a} \d\.\d{{3}} a-one\n#{a} \d\.\d{{3}} a-two\n"
                        rf"#{a} DONE \d+\.\ds\n", replay), replay

    # a rebuild hits the cache: json events say so, and history counts it
    out = io.StringIO()
    second = build(env, JsonRenderer(out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    cached = {e["n"] for e in events if e["type"] == "vertex.cached"}
    assert {a, b, final} <= cached
    assert not [e for e in events if e["type"] == "vertex.log"]
    rec2 = list_builds(root)[-1]
    assert rec2.id == second and rec2.cached >= 3 and {s.n for s in rec2.steps if s.cached} >= {a, b, final}
    assert main(["history", "--root", str(root)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].startswith(second) and rows[2].startswith(first)


def test_real_build_tty_summary(env) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, height=40)
    build(env, TtyRenderer(console=console), no_cache=True)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    summary = plain[plain.rindex("[+] Building"):]
    assert re.match(r"\[\+\] Building \d+\.\ds \(\d+/\d+\) FINISHED", summary)
    assert re.search(r"=> \[a 2/2\] RUN echo a-one && sleep 1 .* +\d+\.\ds", summary)
    assert re.search(r"=> \[stage-2 4/4\] RUN echo final +\d+\.\ds", summary)
    assert SECRET not in plain
