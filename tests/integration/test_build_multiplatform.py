"""Multi-platform builds (`--platform a,b`): one graph lowered once per platform, one image per
platform under an image index in every output; RUN steps of the arm64 image run under QEMU.

The base image is a busybox index whose arm64 image holds Debian's arm64 busybox-static
(tests/fixtures/foreign.py), pushed to the session registry. skopeo, umoci and `file` check what mason wrote."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from mason.backends.solver.events import VertexStarted
from tests.fixtures.foreign import file_type
from tests.fixtures.images import build_busybox_index_layout
from tests.fixtures.registry import skopeo, skopeo_copy_layout
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration

TWO = "linux/amd64,linux/arm64"
THREE = "linux/amd64,linux/arm64,linux/riscv64"


@pytest.fixture(scope="module")
def multi_base(registry, foreign_busybox, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox for amd64 (the host's) and arm64 (its own binary) under one index, pushed."""
    info = build_busybox_index_layout(tmp_path_factory.mktemp("busybox-multi"), ("linux/amd64", "linux/arm64"),
                                      binaries={"linux/arm64": foreign_busybox["arm64"]})
    ref = registry.ref("library/busybox-multi:latest")
    skopeo_copy_layout(info.layout, info.tag, ref, all_images=True)
    return ref


def _unpack(archive: Path, arch: str, dest: Path) -> Path:
    layout = dest.parent / f"layout-{arch}"
    skopeo("--override-arch", arch, "copy", f"oci-archive:{archive}", f"oci:{layout}:t")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(dest)], check=True, capture_output=True,
                   timeout=120)
    return dest / "rootfs"


def test_two_platforms_one_index_arm64_run_emulated(build_env, multi_base, registry, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {multi_base}\n"
        "ARG TARGETPLATFORM\n"
        "RUN uname -m > /arch && echo \"$TARGETPLATFORM\" > /platform\n")})
    out = tmp_path / "multi.tar"
    pushed = registry.ref("mason-test/multi:1")
    res, _ = env.build(ctx, platform=TWO, outputs=(f"type=oci,dest={out}", f"type=registry,name={pushed}"))
    assert res.platforms == ("linux/amd64", "linux/arm64")

    for raw in (json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}")),
                json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{pushed}"))):
        assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
        assert [m["platform"] for m in raw["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                             {"architecture": "arm64", "os": "linux"}]
        assert [m["digest"] for m in raw["manifests"]] == [m["digest"] for m in res.image.index["manifests"]]

    arm = _unpack(out, "arm64", tmp_path / "arm")
    assert (arm / "arch").read_text() == "aarch64\n"  # the RUN really ran under emulation
    assert (arm / "platform").read_text() == "linux/arm64\n"
    assert "ARM aarch64" in file_type(arm / "bin" / "busybox")
    amd = _unpack(out, "amd64", tmp_path / "amd")
    assert (amd / "arch").read_text() == "x86_64\n"
    assert "x86-64" in file_type(amd / "bin" / "busybox")
    for arch in ("amd64", "arm64"):
        config = json.loads(skopeo("--override-arch", arch, "inspect", "--config", "--tls-verify=false",
                                   f"docker://{pushed}"))
        assert config["architecture"] == arch
        assert config["history"][-1]["created_by"].startswith("RUN ") and config["created"]
    assert clean(env.leftovers()), env.leftovers()


def test_cross_compilation_stage_runs_once_for_three_targets(build_env, multi_base, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM --platform=$BUILDPLATFORM {multi_base} AS build\n"
        "ARG BUILDARCH\n"
        "RUN mkdir /out && for a in amd64 arm64 riscv64; do echo \"$a built on $BUILDARCH\" > /out/$a; done\n"
        "FROM scratch\n"
        "ARG TARGETARCH TARGETOS TARGETVARIANT\n"
        "COPY --from=build /out/$TARGETARCH /app\n"
        "LABEL target=$TARGETOS/$TARGETARCH\n")})
    local, tar_out, oci_out = tmp_path / "local", tmp_path / "fs.tar", tmp_path / "oci.tar"
    res, rec = env.build(ctx, platform=THREE, outputs=(f"type=local,dest={local}", f"type=tar,dest={tar_out}",
                                                        f"type=oci,dest={oci_out}"))
    runs = [e for e in rec.of(VertexStarted) if e.name.startswith("[build") and "RUN" in e.name]
    assert len(runs) == 1, [e.name for e in rec.of(VertexStarted)]  # the build stage ran once
    for arch in ("amd64", "arm64", "riscv64"):
        assert (local / f"linux_{arch}" / "app").read_text() == f"{arch} built on amd64\n"
    with tarfile.open(tar_out) as tar:
        names = tar.getnames()
        assert tar.extractfile("linux_riscv64/app").read() == b"riscv64 built on amd64\n"
    assert {"linux_amd64", "linux_arm64", "linux_riscv64", "linux_amd64/app"} <= set(names)
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{oci_out}"))
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64", "riscv64"]
    config = json.loads(skopeo("--override-arch", "riscv64", "inspect", "--config", f"oci-archive:{oci_out}"))
    assert config["architecture"] == "riscv64" and config["config"]["Labels"] == {"target": "linux/riscv64"}


def test_bad_platform_list_is_one_clear_line(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM scratch\nCOPY x /x\n", "x": "x"})
    for bad in ("linux/amd64,", "linux/amd64,linux/nope"):
        p = env.cli("build", "--platform", bad, str(ctx))
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert "platform" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
