"""Builds that fail: a clear error (location, message, output), exit code 1, and nothing left
behind in containerd — no tasks, no containers, no snapshots of steps beyond the (deleted)
build lease."""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


def test_failing_run_shows_line_and_output(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN echo fine\n"
        "RUN echo before-failure; echo to-stderr >&2; exit 7\n"
        "RUN echo never\n")})
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1
    err = p.stderr
    assert "Dockerfile:3:1: error:" in err
    assert "RUN echo before-failure; echo to-stderr >&2; exit 7" in err  # the source line
    assert "exit code: 7" in err
    assert "before-failure" in err.split("error:", 1)[1] and "to-stderr" in err.split("error:", 1)[1]
    assert "never" not in err.replace("RUN echo never", "")
    assert "Traceback" not in err
    assert clean(env.leftovers()), env.leftovers()


def test_missing_base_image(build_env, tmp_path):
    env = build_env
    missing = env.base.rsplit("/", 1)[0] + "/nosuch-image:latest"
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {missing}\nRUN true\n"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert "nosuch-image" in p.stderr and "Traceback" not in p.stderr
    assert clean(env.leftovers())


def test_unreachable_registry(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM 127.0.0.1:9/library/busybox:latest\nRUN true\n"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert "127.0.0.1:9" in p.stderr and "Traceback" not in p.stderr
    assert clean(env.leftovers())


def test_copy_of_missing_file(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nCOPY does-not-exist.txt /x\n"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert "does-not-exist.txt" in p.stderr and "Dockerfile:2" in p.stderr
    assert "Traceback" not in p.stderr
    assert clean(env.leftovers())


def test_copy_through_symlink_out_of_context(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nCOPY escape/passwd /stolen\n"})
    os.symlink("/etc", ctx / "escape")
    p = env.cli("build", str(ctx))
    assert p.returncode == 1, p.stderr
    assert "escape/passwd" in p.stderr and "Traceback" not in p.stderr
    assert clean(env.leftovers())


def test_explicit_containerd_address_not_listening(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN true\n"})
    sock = tmp_path / "nothing.sock"
    p = env.cli("build", "--containerd-address", str(sock), str(ctx),
                env={"MASON_CONTAINERD_ADDRESS": ""})
    assert p.returncode == 1
    assert f"no containerd answers at {sock}" in p.stderr and "Traceback" not in p.stderr


def test_missing_required_secret(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN --mount=type=secret,id=nope,required=true cat /run/secrets/nope\n"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert "secret nope" in p.stderr and "Dockerfile:2" in p.stderr
    assert clean(env.leftovers())


def test_secret_redacted_in_printed_output(build_env, tmp_path):
    env = build_env
    value = "printed-secret-9f8e7d"
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok; echo; false\n"})
    p = env.cli("build", "--progress=plain", "--secret", "id=tok,env=MASON_IT_TOK", str(ctx),
                env={"MASON_IT_TOK": value})
    assert p.returncode == 1
    assert value not in p.stderr and value not in p.stdout
    assert "****" in p.stderr
    assert clean(env.leftovers())
