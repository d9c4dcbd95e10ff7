"""``mason solve``: a Definition written with the builder API (plain LLB, as BuildKit reads it)
executed from the command line and named with ``-t``."""

from __future__ import annotations

import json

import pytest

from mason.ir.builder import bind, image, local
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def test_mason_solve_definition_and_tag(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"data.txt": "from the local dir\n"})
    st = image(env.base).run("cp /in/data.txt /copied", mounts=[bind(local("context"), "/in", readonly=True)]).root()
    path = tmp_path / "def.llb"
    path.write_bytes(st.marshal())
    p = env.cli("solve", str(path), "--local", f"context={ctx}", "-t", "solved-it", "--progress=plain")
    assert p.returncode == 0, p.stderr
    digest = p.stdout.split()[0]
    img = env.client.get_image("docker.io/library/solved-it:latest")
    assert img.target.digest == digest
    manifest = json.loads(env.client.read_blob(digest))
    assert len(manifest["layers"]) == 2  # the base layer and the RUN's
    p2 = env.cli("solve", str(path), "--local", f"context={ctx}", "--progress=plain")
    assert p2.returncode == 0 and "CACHED" in p2.stderr


def test_mason_solve_needs_local_dir(build_env, tmp_path):
    env = build_env
    st = image(env.base).run("ls /in", mounts=[bind(local("other"), "/in")]).root()
    path = tmp_path / "def.llb"
    path.write_bytes(st.marshal())
    p = env.cli("solve", str(path))
    assert p.returncode == 1 and "local://other" in p.stderr


def test_mason_solve_reads_a_lower_stream(build_env, tmp_path):
    """Issue 10 item 11: ``mason lower -O0 -o f.llb`` of a multi-stage Dockerfile writes a
    Definition stream (one Definition per stage and ``default``); ``mason opt`` and ``mason solve``
    read it — solve builds the default output, or the one ``--output-name`` picks."""
    env = build_env
    df = f"FROM {env.base} AS a\nRUN echo from-a > /a.txt\nFROM {env.base}\nCOPY --from=a /a.txt /b.txt\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    stream, opt = tmp_path / "f.llb", tmp_path / "g.llb"
    p = env.cli("lower", "-O0", "-o", str(stream), str(ctx))
    assert p.returncode == 0, p.stderr
    assert stream.read_bytes().startswith(b"mason-llb-stream\n")
    p = env.cli("opt", str(stream), "-o", str(opt))
    assert p.returncode == 0, p.stderr
    for src in (stream, opt):
        out = tmp_path / f"out-{src.stem}"
        p = env.cli("solve", str(src), "--local", f"context={ctx}", "--progress=plain", "-o", f"type=local,dest={out}")
        assert p.returncode == 0, p.stderr
        assert (out / "b.txt").read_text() == "from-a\n"
    out_a = tmp_path / "out-a"
    p = env.cli("solve", str(stream), "--output-name", "a", "--local", f"context={ctx}", "--progress=plain",
                "-o", f"type=local,dest={out_a}")
    assert p.returncode == 0, p.stderr
    assert (out_a / "a.txt").read_text() == "from-a\n" and not (out_a / "b.txt").exists()
