"""Foreign-platform builds and emulation: a RUN for a platform this host cannot run fails before
any step runs, naming the platform and what to do, and leaves nothing behind; a platform with no
RUN builds without emulation. "Cannot run" is staged in a private binfmt_misc directory
(MASON_BINFMT_MISC) whose aarch64 entry is disabled — the machine's own entries are untouched."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mason.backends.containerd import binfmt as bf
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


@pytest.fixture
def no_arm64(tmp_path: Path) -> dict[str, str]:
    """Environment for mason with a private binfmt_misc whose qemu-aarch64 entry is disabled."""
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    (d / "register").write_text("")
    (d / "status").write_text("enabled\n")
    (d / "qemu-aarch64").write_text(
        "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n"
        "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n")
    return {bf.MISC_ENV: str(d)}


def test_foreign_run_without_emulation_fails_before_anything_runs(build_env, tmp_path, no_arm64):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM --platform=$BUILDPLATFORM {env.base} AS host\n"
        "RUN echo host-step-r''an > /m\n"
        "FROM scratch\n"
        "COPY --from=host /m /m\n"
        "RUN [\"/m\"]\n")})
    out = tmp_path / "out.tar"
    p = env.cli("build", "--progress=plain", "--platform", "linux/arm64", "-o", f"type=oci,dest={out}", str(ctx),
                env=no_arm64)
    assert p.returncode == 1, p.stderr
    err = p.stderr
    assert "Dockerfile:5:1: error: cannot run RUN steps for linux/arm64 on this" in err
    assert "qemu-aarch64 is disabled" in err and "mason binfmt --install" in err
    assert "host-step-ran" not in err  # the host stage's RUN never ran either
    assert "Traceback" not in err
    assert not out.exists()
    assert clean(env.leftovers()), env.leftovers()


def test_platform_without_run_needs_no_emulation(build_env, tmp_path, no_arm64):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM scratch\nCOPY hello /hello\n", "hello": "hi\n"})
    out = tmp_path / "out.tar"
    p = env.cli("build", "--platform", "linux/arm64", "-o", f"type=oci,dest={out}", str(ctx), env=no_arm64)
    assert p.returncode == 0, p.stderr
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        config = json.load(tar.extractfile("blobs/sha256/" + manifest["config"]["digest"].split(":")[1]))
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
