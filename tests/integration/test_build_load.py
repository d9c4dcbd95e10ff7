"""Offline base images (issue 7): an OCI archive made by other tools (a layout from
``tests/fixtures/images.py``, changed with umoci, archived by skopeo) goes in with ``mason load
-i``, and a ``mason build`` ``FROM`` that name works with no registry at all — the image's name
points at a port where nothing listens, so any registry access would fail the build."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.images import build_busybox_index_layout, build_busybox_layout
from tests.fixtures.registry import free_port, skopeo
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration


def umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)


def ctr(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", env.address, "-n", "mason", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_load_umoci_archive_then_build_from_it_offline(build_env, tmp_path):
    env = build_env
    layout = tmp_path / "layout"
    build_busybox_layout(layout, tag="base")
    marker = tmp_path / "offline-marker"
    marker.write_text("made by umoci\n")
    umoci("insert", "--image", f"{layout}:base", "--tag", "offline", str(marker), "/etc/offline-marker")
    umoci("config", "--image", f"{layout}:offline", "--config.env", "FROM_UMOCI=yes",
          "--config.cmd", "cat", "--config.cmd", "/etc/offline-marker")
    name = f"127.0.0.1:{free_port()}/offline/base:1"  # nothing listens there
    archive = tmp_path / "offline.tar"
    skopeo("copy", f"oci:{layout}:offline", f"oci-archive:{archive}:{name}")
    digest = json.loads(skopeo("inspect", f"oci-archive:{archive}"))["Digest"]

    p = env.cli("load", "-i", str(archive))
    assert p.returncode == 0, p.stderr
    assert name in p.stdout
    assert env.client.get_image(name).target.digest == digest

    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {name}\n"
        "RUN echo \"built on $FROM_UMOCI\" > /built && cat /etc/offline-marker >> /built\n")})
    p = env.cli("build", "--progress=plain", "-t", "it-offline", "-o", "type=image", "-o", str(tmp_path / "out"),
                str(ctx))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "built").read_text() == "built on yes\nmade by umoci\n"
    # the base resolved to the loaded image, pinned to its digest
    assert f"FROM {name}@{digest}" in p.stderr
    # the image keeps the loaded image's layers and config, and runs its CMD
    r = ctr(env, "run", "--rm", "docker.io/library/it-offline:latest", "mason-it-offline-run")
    assert (r.returncode, r.stdout) == (0, "made by umoci\n"), r.stderr
    assert clean(env.leftovers()), env.leftovers()


def test_load_multi_platform_index_then_build_offline(build_env, tmp_path):
    env = build_env
    layout = tmp_path / "layout"
    info = build_busybox_index_layout(layout, platforms=("linux/amd64", "linux/arm64"), tag="multi")
    name = f"127.0.0.1:{free_port()}/offline/multi:2"
    archive = tmp_path / "multi.tar"
    skopeo("copy", "--all", f"oci:{layout}:multi", f"oci-archive:{archive}:{name}")
    p = env.cli("load", "-i", str(archive))
    assert p.returncode == 0, p.stderr
    assert env.client.get_image(name).target.digest == info.index_digest

    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {name}\nRUN uname -m > /arch\n"})
    p = env.cli("build", "-o", str(tmp_path / "out"), str(ctx))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "arch").read_text().strip()  # ran on the host's platform's manifest


def test_not_loaded_and_no_registry_is_a_clear_error(build_env, tmp_path):
    env = build_env
    name = f"127.0.0.1:{free_port()}/offline/missing:1"
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {name}\nRUN true\n"})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1
    assert name.split("/")[0] in p.stderr and "Traceback" not in p.stderr
