"""Multi-platform builds from mason's image store, offline. A busybox index of linux/amd64,
linux/arm64 and linux/riscv64 — each image holding Debian's busybox-static of its own
architecture (tests/fixtures/foreign.py) — goes in with ``mason load``; ``FROM`` it picks each
platform's manifest, and the RUN steps of the arm64 and riscv64 images really run under QEMU
(``uname -m`` says so). The image's name points at a port where nothing listens: any registry
access would fail the build.

Independent tools check what mason wrote: ``file`` the per-platform directories of
``type=local``; skopeo and umoci the ``type=docker`` archive (an OCI layout as well as a
``docker load`` archive) and the ``type=oci`` one; and ``mason load`` of mason's own
multi-platform archives keeps every platform."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mason.backends import oci
from mason.ir.builder import image
from tests.fixtures.foreign import FILE_SAYS, UNAME_M, file_type
from tests.fixtures.images import IndexInfo, build_busybox_index_layout, build_busybox_layout
from tests.fixtures.registry import free_port, skopeo
from tests.integration.conftest import clean, write

pytestmark = pytest.mark.integration

ARCHES = ("amd64", "arm64", "riscv64")
THREE = ",".join(f"linux/{a}" for a in ARCHES)


@pytest.fixture(scope="module")
def three(foreign_busybox, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, IndexInfo]:
    """(name, OCI archive, what was written) of the busybox index (arm64, riscv64, arm/v7 and
    amd64 — the host's platform last, so nothing picks it for being first), archived by skopeo
    under a name whose registry does not exist."""
    d = tmp_path_factory.mktemp("busybox-three")
    binaries = {f"linux/{a}": foreign_busybox[a] for a in ("arm64", "riscv64")}
    binaries["linux/arm/v7"] = foreign_busybox["arm"]
    info = build_busybox_index_layout(d / "layout", (*binaries, "linux/amd64"), tag="three", binaries=binaries)
    name = f"127.0.0.1:{free_port()}/offline/busybox3:1"
    archive = d / "three.tar"
    skopeo("copy", "--all", f"oci:{info.layout}:three", f"oci-archive:{archive}:{name}")
    return name, archive, info


def _load(env, archive: Path) -> str:
    p = env.cli("load", "-i", str(archive))
    assert p.returncode == 0, p.stderr
    return p.stdout


def _unpack(archive: Path, arch: str, dest: Path) -> Path:
    """The ``arch`` image of the archive's index, copied out by skopeo and unpacked by umoci."""
    layout = dest.parent / f"{dest.name}-layout"
    skopeo("--override-arch", arch, "copy", f"oci-archive:{archive}", f"oci:{layout}:t")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(dest)], check=True, capture_output=True,
                   timeout=120)
    return dest / "rootfs"


def test_three_platforms_from_a_loaded_index_run_under_qemu(build_env, three, tmp_path):
    env = build_env
    name, archive, info = three
    _load(env, archive)
    assert env.client.get_image(name).target.digest == info.index_digest
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {name}\n"
        "ARG TARGETARCH\n"
        "RUN uname -m > /arch && echo \"$TARGETARCH\" > /targetarch\n")})
    local, docker = tmp_path / "local", tmp_path / "three-docker.tar"
    p = env.cli("build", "--progress=plain", "--platform", THREE, "-o", f"type=local,dest={local}",
                "-o", f"type=docker,dest={docker},name=mason-test/three:1", str(ctx))
    assert p.returncode == 0, p.stderr
    for a in ARCHES:  # buildx's layout: a directory per platform
        root = local / f"linux_{a}"
        assert (root / "arch").read_text() == UNAME_M[a] + "\n"  # arm64, riscv64: under QEMU
        assert (root / "targetarch").read_text() == a + "\n"
        assert FILE_SAYS[a] in file_type(root / "bin" / "busybox")
    assert sorted(x.name for x in local.iterdir()) == [f"linux_{a}" for a in ARCHES]

    # the docker archive: a Docker manifest list of the three (skopeo reads the OCI layout it
    # also is), and manifest.json — what the classic `docker load` reads — names the host's image
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{docker}"))
    assert raw["mediaType"] == oci.DOCKER_MANIFEST_LIST
    assert [m["platform"] for m in raw["manifests"]] == [{"architecture": a, "os": "linux"} for a in ARCHES]
    assert {m["mediaType"] for m in raw["manifests"]} == {oci.DOCKER_MANIFEST}
    config = json.loads(skopeo("inspect", "--config", f"docker-archive:{docker}"))
    assert config["architecture"] == "amd64" and config["history"][-1]["created_by"].startswith("RUN ")
    rv = _unpack(docker, "riscv64", tmp_path / "rv")
    assert (rv / "arch").read_text() == "riscv64\n"
    assert FILE_SAYS["riscv64"] in file_type(rv / "bin" / "busybox")
    # containerd's importer (what `docker load` uses with the containerd image store) keeps all three
    ns = "mason-test-ctr-import"
    try:
        _ctr(env, ns, "images", "import", "--all-platforms", "--no-unpack", str(docker))
        listed = _ctr(env, ns, "images", "ls").splitlines()
        row = next(line for line in listed if line.startswith("docker.io/mason-test/three:1 "))
        assert oci.DOCKER_MANIFEST_LIST in row and "linux/amd64,linux/arm64,linux/riscv64" in row, listed
    finally:
        subprocess.run(["ctr", "--address", env.address, "-n", ns, "images", "rm", "docker.io/mason-test/three:1"],
                       capture_output=True, timeout=60)
    assert clean(env.leftovers()), env.leftovers()


def _ctr(env, ns: str, *args: str) -> str:
    p = subprocess.run(["ctr", "--address", env.address, "-n", ns, *args], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_load_of_a_multi_platform_archive_keeps_every_platform(build_env, three, tmp_path):
    env = build_env
    name, archive, _ = three
    _load(env, archive)
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {name}\nRUN uname -m > /arch\n"})
    docker, oci_tar = tmp_path / "docker.tar", tmp_path / "oci.tar"
    p = env.cli("build", "--platform", THREE, "-o", f"type=docker,dest={docker},name=mason-test/three-docker:1",
                "-o", f"type=oci,dest={oci_tar},name=mason-test/three-oci:1", str(ctx))
    assert p.returncode == 0, p.stderr

    for archive_path, loaded, top_type in ((docker, "docker.io/mason-test/three-docker:1", oci.DOCKER_MANIFEST_LIST),
                                           (oci_tar, "docker.io/mason-test/three-oci:1", oci.OCI_INDEX)):
        short = loaded.removeprefix("docker.io/")
        assert _load(env, archive_path).startswith(f"Loaded image: {short} (sha256:")
        raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{archive_path}"))
        img = env.client.get_image(loaded)
        assert img.target.media_type == top_type
        assert json.loads(env.client.read_blob(img.target.digest)) == raw
        for m in raw["manifests"]:  # every platform's manifest, config and layers are in the store
            manifest = json.loads(env.client.read_blob(m["digest"]))
            for d in (manifest["config"], *manifest["layers"]):
                assert env.client.content_info(d["digest"]).size == d["size"]

        # FROM the loaded image picks each platform's manifest; the RUNs see the earlier ones' files
        ctx2 = write(tmp_path / f"c-{short.replace('/', '_')}", {"Dockerfile": (
            f"FROM {short}\nRUN cat /arch > /was && uname -m > /now\n")})
        local = tmp_path / f"again-{short.replace('/', '_')}"
        p = env.cli("build", "--platform", "linux/riscv64,linux/arm64", "-o", str(local), str(ctx2))
        assert p.returncode == 0, p.stderr
        for a in ("arm64", "riscv64"):
            assert (local / f"linux_{a}" / "was").read_text() == UNAME_M[a] + "\n"
            assert (local / f"linux_{a}" / "now").read_text() == UNAME_M[a] + "\n"
    assert clean(env.leftovers()), env.leftovers()


def test_a_platform_the_loaded_index_lacks_is_one_clear_error(build_env, three, tmp_path):
    env = build_env
    name, archive, _ = three
    _load(env, archive)
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {name}\nRUN uname -m > /arch\n"})
    out = tmp_path / "out"
    p = env.cli("build", "--platform", "linux/amd64,linux/s390x", "-o", str(out), str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    first = p.stderr.splitlines()[0]
    assert first.endswith(f"Dockerfile:1:1: error: image {name} has no manifest for platform linux/s390x in "
                          "mason's image store (it has linux/amd64, linux/arm/v7, linux/arm64, linux/riscv64); the "
                          "registry: "
                          f"cannot reach registry {name.split('/')[0]}: connection refused"), p.stderr
    assert not out.exists()
    assert clean(env.leftovers()), env.leftovers()


def test_solve_of_a_definition_for_a_platform_the_store_lacks_is_the_same_clear_error(build_env, three, tmp_path):
    """A raw Definition (no frontend, no resolver: the solver's docker-image:// source finds the
    image) says what ``mason build`` says: the platforms the store has, then the registry's answer."""
    env = build_env
    name, archive, _ = three
    _load(env, archive)
    path = tmp_path / "def.llb"
    path.write_bytes(image(name, platform="linux/s390x").run("uname -m > /arch").root().marshal())
    out = tmp_path / "out"
    p = env.cli("solve", str(path), "-o", f"type=local,dest={out}")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert (f"image {name} has no manifest for platform linux/s390x in mason's image store (it has linux/amd64, "
            "linux/arm/v7, linux/arm64, linux/riscv64); the registry: "
            f"cannot reach registry {name.split('/')[0]}: connection refused") in p.stderr, p.stderr
    assert not out.exists()
    assert clean(env.leftovers()), env.leftovers()


def test_solve_of_a_single_platform_image_for_another_platform_is_one_clear_error(build_env, tmp_path):
    env = build_env
    info = build_busybox_layout(tmp_path / "layout", tag="one")  # the host's platform only
    name = f"127.0.0.1:{free_port()}/offline/busybox1:1"
    skopeo("copy", f"oci:{info.layout}:one", f"oci-archive:{tmp_path / 'one.tar'}:{name}")
    _load(env, tmp_path / "one.tar")
    path = tmp_path / "def.llb"
    path.write_bytes(image(name, platform="linux/riscv64").run("true").root().marshal())
    p = env.cli("solve", str(path))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert (f"image {name} in mason's image store is for platform {info.platform}, not linux/riscv64; "
            "the registry: cannot reach registry") in p.stderr, p.stderr
    assert clean(env.leftovers()), env.leftovers()


def test_a_single_platform_image_for_another_platform_is_one_clear_error(build_env, tmp_path):
    env = build_env
    info = build_busybox_layout(tmp_path / "layout", tag="one")  # the host's platform only
    name = f"127.0.0.1:{free_port()}/offline/busybox1:1"
    skopeo("copy", f"oci:{info.layout}:one", f"oci-archive:{tmp_path / 'one.tar'}:{name}")
    _load(env, tmp_path / "one.tar")
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {name}\nRUN true\n"})
    p = env.cli("build", "--platform", "linux/riscv64", str(ctx))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert (f"error: image {name} in mason's image store is for platform {info.platform}, not linux/riscv64; "
            "the registry: cannot reach registry") in p.stderr.splitlines()[0], p.stderr


def test_four_platforms_with_arm_v7_and_the_automatic_args(build_env, three, tmp_path):
    env = build_env
    name, archive, _ = three
    _load(env, archive)
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {name}\n"
        "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\n"
        "RUN uname -m > /arch && echo \"$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT\" > /target && "
        "echo \"$BUILDPLATFORM|$BUILDOS|$BUILDARCH|$BUILDVARIANT\" > /build\n")})
    local, oci_tar = tmp_path / "local", tmp_path / "four.tar"
    p = env.cli("build", "--platform", "linux/amd64,linux/arm64,linux/riscv64,linux/arm/v7",
                "-o", f"type=local,dest={local}", "-o", f"type=oci,dest={oci_tar}", str(ctx))
    assert p.returncode == 0, p.stderr
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{oci_tar}"))
    assert [m["platform"] for m in raw["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"},
        {"architecture": "riscv64", "os": "linux"}, {"architecture": "arm", "os": "linux", "variant": "v7"}]
    for a, plat, variant in (("amd64", "linux/amd64", ""), ("arm64", "linux/arm64", ""),
                             ("riscv64", "linux/riscv64", ""), ("arm", "linux/arm/v7", "v7")):
        root = local / plat.replace("/", "_")
        assert (root / "arch").read_text() == UNAME_M[a] + "\n"
        assert (root / "target").read_text() == f"{plat}|linux|{a}|{variant}\n"
        assert (root / "build").read_text() == "linux/amd64|linux|amd64|\n"
        assert FILE_SAYS[a] in file_type(root / "bin" / "busybox")
    arm = _unpack(oci_tar, "arm", tmp_path / "arm")  # skopeo picks linux/arm's v7 image
    assert (arm / "arch").read_text() == "armv7l\n"
    config = json.loads(skopeo("--override-arch", "arm", "--override-variant", "v7", "inspect", "--config",
                               f"oci-archive:{oci_tar}"))
    assert (config["architecture"], config["variant"]) == ("arm", "v7")
    assert clean(env.leftovers()), env.leftovers()


def test_multi_platform_build_into_the_store_is_an_index_from_picks(build_env, three, tmp_path):
    """``-t NAME`` (mason's image store) of a multi-platform build is an OCI index of each
    platform's manifest; ``FROM NAME`` then picks the manifest of the platform built."""
    env = build_env
    name, archive, _ = three
    _load(env, archive)
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {name}\nRUN uname -m > /arch\n"})
    p = env.cli("build", "--platform", "linux/arm64,linux/riscv64", "-t", "mason-test/three-store:1", str(ctx))
    assert p.returncode == 0, p.stderr
    img = env.client.get_image("docker.io/mason-test/three-store:1")
    assert img.target.media_type == oci.OCI_INDEX
    index = json.loads(env.client.read_blob(img.target.digest))
    assert [m["platform"] for m in index["manifests"]] == [{"architecture": a, "os": "linux"}
                                                           for a in ("arm64", "riscv64")]
    for m in index["manifests"]:
        manifest = json.loads(env.client.read_blob(m["digest"]))
        config = json.loads(env.client.read_blob(manifest["config"]["digest"]))
        assert config["architecture"] == m["platform"]["architecture"]
        assert config["history"][-1]["created_by"].startswith("RUN ") and config["created"]
    ctx2 = write(tmp_path / "c2", {"Dockerfile": "FROM mason-test/three-store:1\nRUN cat /arch > /was\n"})
    for a in ("riscv64", "arm64"):
        out = tmp_path / f"out-{a}"
        p = env.cli("build", "--platform", f"linux/{a}", "-o", str(out), str(ctx2))
        assert p.returncode == 0, p.stderr
        assert (out / "was").read_text() == UNAME_M[a] + "\n"
        assert FILE_SAYS[a] in file_type(out / "bin" / "busybox")
    assert clean(env.leftovers()), env.leftovers()
