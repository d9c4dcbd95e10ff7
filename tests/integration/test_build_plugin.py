"""A frontend plugin installed with pip builds an image with no change to mason: ``mason build``
picks it by the file's name (and by ``# syntax=``), and the image holds what its language said."""

from __future__ import annotations

import os

from tests.fixtures.plugins import install_toy_plugin


def test_plugin_frontend_builds(build_env, tmp_path):
    site = install_toy_plugin(tmp_path / "plugin")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Toyfile").write_text(f"from {build_env.base}\nrun echo ran > /ran\nwrite /greeting hello toy\n")
    out = tmp_path / "out"
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}
    p = build_env.cli("build", "--progress=plain", "-f", str(ctx / "Toyfile"), "-o", f"type=local,dest={out}",
                      str(ctx), env=env)
    assert p.returncode == 0, p.stderr
    assert (out / "greeting").read_text() == "hello toy\n"
    assert (out / "ran").read_text() == "ran\n"
    assert (out / "bin" / "busybox").exists()  # the base image is under it
    # without the plugin, the same file is a Dockerfile and fails as one, located
    p = build_env.cli("build", "-f", str(ctx / "Toyfile"), "-o", f"type=local,dest={tmp_path / 'o2'}", str(ctx))
    assert p.returncode == 1 and "Toyfile:3:1: error: unknown instruction: WRITE" in p.stderr
