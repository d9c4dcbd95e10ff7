"""Concurrent builds on one state directory: four ``mason build`` processes of overlapping
Dockerfiles started at once all succeed with the right images, and the RUN they share ran
exactly once — it appends a line to a file in a cache mount, and a later build copies that
file out of the mount so the lines can be counted."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

SHARED = ("RUN --mount=type=cache,id={cid},target=/m,sharing=locked "
          "sh -c 'echo ran >> /m/log && sleep 1 && echo {nonce} > /shared'\n")


def test_four_builds_share_one_run(build_env, tmp_path):
    env = build_env
    cid, nonce = f"it-conc-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    procs = []
    e = dict(os.environ, MASON_ROOT=str(env.root), MASON_CONTAINERD_ADDRESS=env.address)
    for i in range(4):
        ctx = write(tmp_path / f"ctx{i}", {"Dockerfile": (
            f"FROM {env.base}\n" + SHARED.format(cid=cid, nonce=nonce) + f"RUN echo variant-{i} > /variant\n")})
        out = tmp_path / f"out{i}"
        procs.append((i, out, subprocess.Popen(
            [sys.executable, "-m", "mason", "build", "--progress=plain", "-o", f"type=local,dest={out}",
             "-o", f"type=image,name=it-conc-{i}", str(ctx)], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL)))
    for i, out, p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, f"build {i} failed:\n{stderr}"
        assert (out / "variant").read_text() == f"variant-{i}\n"
        assert (out / "shared").read_text() == f"{nonce}\n"
    # every image is in the store
    names = {im.name for im in env.client.list_images()}
    assert {f"docker.io/library/it-conc-{i}:latest" for i in range(4)} <= names
    # the shared RUN ran once: one line in the cache mount's log
    reader = write(tmp_path / "reader", {"Dockerfile": (
        f"FROM {env.base}\nRUN --mount=type=cache,id={cid},target=/m cp /m/log /count\n")})
    out = tmp_path / "count"
    env.cli("build", "-o", f"type=local,dest={out}", str(reader), check=True)
    assert (out / "count").read_text() == "ran\n"
