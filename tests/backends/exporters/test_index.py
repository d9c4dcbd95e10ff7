"""Multi-platform images: an OCI image index of two platforms, written to the image store, an OCI
archive, a Docker archive and a registry — checked by skopeo, umoci and containerd's GC labels."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from mason.backends import oci
from mason.backends.exporters.docker_tar import write_docker_archive
from mason.backends.exporters.image import GC_REF_CONTENT, get_image
from mason.backends.exporters.index import PlatformResult, export_index, platform_dir
from mason.backends.exporters.oci_tar import write_oci_archive
from mason.backends.exporters.registry import push_image
from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec
from tests.backends.exporters.conftest import HELLO
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration

AMD64, ARM64 = PlatformSpec.parse("linux/amd64"), PlatformSpec.parse("linux/arm64")


@pytest.fixture(scope="module")
def index(containerd_env, chain):
    results = [PlatformResult(p, chain.sources, chain.config()) for p in (AMD64, ARM64)]
    return export_index(containerd_env.client, results, name="mason-test/multi:1.0")


def _platforms(raw: dict) -> list[dict]:
    return [m["platform"] for m in raw["manifests"]]


def test_index_names_each_platform_manifest(containerd_env, index) -> None:
    assert index.index["mediaType"] == oci.OCI_INDEX
    assert _platforms(index.index) == [{"architecture": "amd64", "os": "linux"},
                                       {"architecture": "arm64", "os": "linux"}]
    assert [m["digest"] for m in index.index["manifests"]] == [img.manifest_digest for _, img in index.images]
    configs = [img.config for _, img in index.images]
    assert [c["architecture"] for c in configs] == ["amd64", "arm64"]
    assert all(c["history"] and c["created"] for c in configs)
    # the image store names the index; GC labels keep every manifest it names
    img = get_image(containerd_env.client, "mason-test/multi:1.0")
    assert img.target.digest == index.digest and img.target.media_type == oci.OCI_INDEX
    labels = containerd_env.client.content_info(index.digest).labels
    assert {labels[f"{GC_REF_CONTENT}.m.{i}"] for i in range(2)} == {i.manifest_digest for _, i in index.images}


def test_oci_archive_of_an_index_read_by_skopeo_and_umoci(containerd_env, index, tmp_path: Path) -> None:
    out = tmp_path / "multi.tar"
    write_oci_archive(containerd_env.client, index, out)
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{out}"))
    assert raw == index.index
    with tarfile.open(out) as tar:
        top = json.load(tar.extractfile("index.json"))
        names = tar.getnames()
    assert top["manifests"][0]["digest"] == index.digest
    assert top["manifests"][0]["mediaType"] == oci.OCI_INDEX
    # every blob once: the shared layers are not repeated
    assert len(names) == len(set(names))

    layout = tmp_path / "layout"
    skopeo("--override-arch", "arm64", "copy", f"oci-archive:{out}", f"oci:{layout}:arm")
    config = json.loads(skopeo("inspect", "--config", f"oci:{layout}:arm"))
    assert config["architecture"] == "arm64"
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:arm", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    assert (bundle / "rootfs" / "hello.txt").read_bytes() == HELLO


def test_docker_archive_of_an_index_is_a_manifest_list(containerd_env, index, tmp_path: Path) -> None:
    out = tmp_path / "docker.tar"
    digest = write_docker_archive(containerd_env.client, index, out)
    with tarfile.open(out) as tar:
        top = json.load(tar.extractfile("index.json"))
        lst = json.load(tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}"))
        load = json.load(tar.extractfile("manifest.json"))
        children = [json.load(tar.extractfile(f"blobs/sha256/{m['digest'].split(':')[1]}"))
                    for m in lst["manifests"]]
    assert top["manifests"][0]["digest"] == digest
    assert top["manifests"][0]["mediaType"] == oci.DOCKER_MANIFEST_LIST == lst["mediaType"]
    assert _platforms(lst) == _platforms(index.index)
    assert {c["mediaType"] for c in children} == {oci.DOCKER_MANIFEST}
    # manifest.json (the classic docker load) names one image: the host's platform's
    host = next(img for p, img in index.images if PlatformSpec.default().matches(p))
    assert load[0]["Config"] == f"blobs/sha256/{host.config_digest.split(':')[1]}"
    assert load[0]["RepoTags"] == ["mason-test/multi:1.0"]
    info = json.loads(skopeo("inspect", "--config", f"docker-archive:{out}"))
    assert info["architecture"] == PlatformSpec.default().architecture


def test_push_of_an_index(containerd_env, index, registry) -> None:
    ref = registry.ref("mason-test/multi:v1")
    result = push_image(containerd_env.client, index, ref)
    assert result.digest == index.digest and result.media_type == oci.OCI_INDEX
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert raw == index.index
    arm = json.loads(skopeo("--override-arch", "arm64", "inspect", "--config", "--tls-verify=false",
                            f"docker://{ref}"))
    assert arm["architecture"] == "arm64"
    again = push_image(containerd_env.client, index, ref)
    assert set(again.blobs.values()) == {"exists"}


def test_bad_name_fails_before_any_work(containerd_env, chain) -> None:
    before = {c.digest for c in containerd_env.client.list_content()}
    with pytest.raises(MasonError):
        export_index(containerd_env.client, [PlatformResult(AMD64, chain.sources, chain.config())], name="Bad Name")
    assert {c.digest for c in containerd_env.client.list_content()} == before


def test_platform_dir_is_buildx_style() -> None:
    assert platform_dir(PlatformSpec.parse("linux/arm/v7")) == "linux_arm_v7"
    assert platform_dir(AMD64) == "linux_amd64"
