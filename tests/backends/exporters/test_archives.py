"""OCI and Docker archives, type=local, type=tar and registry push — checked by skopeo, umoci
and the fixture registry."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from mason.backends import oci
from mason.backends.exporters.docker_tar import write_docker_archive
from mason.backends.exporters.image import export_image
from mason.backends.exporters.local import export_local
from mason.backends.exporters.oci_tar import write_oci_archive
from mason.backends.exporters.registry import push_image
from mason.backends.exporters.tar import export_tar
from tests.backends.exporters.conftest import HELLO
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image(containerd_env, chain):
    return export_image(containerd_env.client, chain.sources, chain.config(), name="mason-test/archive:1.0")


def test_oci_archive_read_by_skopeo_and_unpacked_by_umoci(containerd_env, image, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    write_oci_archive(containerd_env.client, image, out)
    info = json.loads(skopeo("inspect", f"oci-archive:{out}"))
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == [la.digest for la in image.layers]
    assert info["Labels"] == {"org.example": "mason"}
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}"))
    assert raw == image.manifest
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))
    ann = index["manifests"][0]["annotations"]
    assert ann == {"io.containerd.image.name": "docker.io/mason-test/archive:1.0",
                   "org.opencontainers.image.ref.name": "1.0"}

    skopeo("copy", f"oci-archive:{out}", f"oci:{tmp_path / 'layout'}:t")
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:t", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    rootfs = bundle / "rootfs"
    assert (rootfs / "hello.txt").read_bytes() == HELLO
    assert oct((rootfs / "hello.txt").stat().st_mode & 0o7777) == "0o640"
    assert (rootfs / "data" / "n.txt").stat().st_uid == 1000
    assert os.readlink(rootfs / "data" / "link") == "../hello.txt"
    assert not (rootfs / "etc" / "group").exists() and (rootfs / "etc" / "passwd").exists()
    assert not list(rootfs.rglob(".wh.*"))
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["args"] == ["/bin/cat", "/hello.txt"]


def test_docker_archive_read_by_skopeo(containerd_env, image, tmp_path: Path) -> None:
    out = tmp_path / "docker.tar"
    digest = write_docker_archive(containerd_env.client, image, out)
    info = json.loads(skopeo("inspect", f"docker-archive:{out}"))
    # a docker archive names layers by their uncompressed digests
    assert info["Layers"] == [la.diff_id for la in image.layers]
    assert info["Labels"] == {"org.example": "mason"}
    assert info["Env"] == ["PATH=/bin:/usr/bin"]
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        dm = json.load(tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}"))
    assert manifest == [{"Config": f"blobs/sha256/{image.config_digest.split(':')[1]}",
                         "RepoTags": ["mason-test/archive:1.0"],
                         "Layers": [f"blobs/sha256/{la.digest.split(':')[1]}" for la in image.layers]}]
    assert dm["mediaType"] == oci.DOCKER_MANIFEST and dm["config"]["mediaType"] == oci.DOCKER_CONFIG
    assert [la["mediaType"] for la in dm["layers"]] == ["application/vnd.docker.image.rootfs.diff.tar",
                                                       oci.DOCKER_LAYER_GZIP]
    raw = json.loads(skopeo("inspect", "--config", f"docker-archive:{out}"))
    assert raw["rootfs"]["diff_ids"] == [la.diff_id for la in image.layers]


def test_archives_are_deterministic(containerd_env, image, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    write_oci_archive(containerd_env.client, image, a, source_date_epoch=5)
    write_oci_archive(containerd_env.client, image, b, source_date_epoch=5)
    assert a.read_bytes() == b.read_bytes()


def test_local_output_is_the_final_rootfs(containerd_env, chain, tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    export_local(containerd_env.client, chain.top, dest, preserve_owner=True)
    assert (dest / "hello.txt").read_bytes() == HELLO
    assert oct((dest / "hello.txt").stat().st_mode & 0o7777) == "0o640"
    assert oct((dest / "data").stat().st_mode & 0o7777) == "0o750"
    assert (dest / "data" / "n.txt").stat().st_uid == 1000
    assert os.readlink(dest / "data" / "link") == "../hello.txt"
    assert os.readlink(dest / "bin" / "sh") == "busybox"
    assert oct((dest / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert not (dest / "etc" / "group").exists()  # deleted in the top layer
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert not [f for f in files if ".wh." in f]
    expected = {"hello.txt", "data", "data/n.txt", "data/link", "etc", "etc/passwd", "bin", "bin/busybox",
                "tmp", "root", "proc", "sys", "dev", "usr", "usr/bin"}
    assert expected <= set(files)
    assert {f for f in files if not f.startswith("bin/")} == expected - {"bin/busybox"}


def test_local_output_belongs_to_the_calling_user(containerd_env, chain, tmp_path: Path, monkeypatch) -> None:
    """Without preserve_owner every entry gets the process's uid and gid (BuildKit's client does
    the same with what it receives); modes and links stay. The ids are read from os.getuid/getgid,
    set here to a user other than root to see them used."""
    monkeypatch.setattr(os, "getuid", lambda: 4321)
    monkeypatch.setattr(os, "getgid", lambda: 8765)
    dest = tmp_path / "rootfs"
    export_local(containerd_env.client, chain.top, dest)
    owners = {(s.st_uid, s.st_gid) for s in (os.lstat(p) for p in [dest, *dest.rglob("*")])}
    assert owners == {(4321, 8765)}
    assert oct((dest / "hello.txt").stat().st_mode & 0o7777) == "0o640"
    assert oct((dest / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert os.readlink(dest / "data" / "link") == "../hello.txt"


def test_tar_output_is_the_final_rootfs(containerd_env, chain, tmp_path: Path) -> None:
    out = tmp_path / "rootfs.tar"
    export_tar(containerd_env.client, chain.top, out, source_date_epoch=7)
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("hello.txt").read() == HELLO
    assert "etc/group" not in members and "etc/passwd" in members
    assert not [n for n in members if ".wh." in n]
    assert members["data/n.txt"].uid == 1000 and members["data/link"].linkname == "../hello.txt"
    assert {m.mtime for m in members.values()} == {7}


def test_push_to_registry_keeps_the_digest(containerd_env, image, registry) -> None:
    ref = registry.ref("mason-test/pushed:v1")
    result = push_image(containerd_env.client, image, ref)
    assert result.digest == image.manifest_digest
    assert set(result.blobs.values()) == {"uploaded"}
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == image.manifest_digest
    again = push_image(containerd_env.client, image, ref)
    assert set(again.blobs.values()) == {"exists"}
