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
