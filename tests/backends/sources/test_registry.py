"""The registry client against a real registry (Debian's docker-registry, distribution 2.8),
checked from outside with skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from mason.backends import oci
from mason.backends.oci import Descriptor, OciLayout
from mason.backends.sources.auth import Credentials
from mason.backends.sources.registry import RegistryClient, RegistryResolver
from mason.ir.errors import MasonError
from mason.ir.resolver import CachingResolver, ImageMetaResolver, PlatformSpec
from tests.fixtures.images import (
    ENV,
    build_busybox_index_layout,
    build_busybox_layout,
    gzip_bytes,
    write_image,
)
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_docker_config(tmp_path, monkeypatch):
    empty = tmp_path / "docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))


@pytest.fixture
def client():
    with RegistryClient(timeout=30) as c:
        yield c


def skopeo_digest(ref: str) -> str:
    return json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))["Digest"]


def skopeo_raw_digest(ref: str) -> str:
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}")
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def test_resolve_busybox(busybox_image, client):
    res = client.resolve_image_config(busybox_image.ref)
    assert res.digest == busybox_image.digest == skopeo_digest(busybox_image.ref)
    assert res.manifest_digest == res.digest  # a single-platform image pins its manifest
    assert res.ref == busybox_image.ref + "@" + res.digest == busybox_image.pinned
    assert res.config["config"]["Env"] == ENV == ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]
    assert res.config["config"]["Cmd"] == ["/bin/sh"]
    assert res.config["config"]["WorkingDir"] == "/"
    assert res.config["os"] == "linux"
    assert res.config["architecture"] == PlatformSpec.default().architecture
    assert res.config_digest == busybox_image.info.config_digest
    assert res.platform == PlatformSpec.default()
    assert res.media_type == oci.OCI_MANIFEST
    assert isinstance(RegistryResolver(client), ImageMetaResolver)


def test_resolve_by_digest_and_head(busybox_image, client):
    res = client.resolve_image_config(busybox_image.pinned)
    assert res.digest == busybox_image.digest and res.ref == busybox_image.pinned
    head = client.head_manifest(busybox_image.ref)
    assert head is not None and head.digest == busybox_image.digest
    assert head.media_type == oci.OCI_MANIFEST and head.size == busybox_image.info.manifest_size
    registry_host = busybox_image.ref.split("/")[0]
    assert client.head_manifest(f"{registry_host}/library/busybox:missing") is None


def test_download_layer_verified(busybox_image, client, tmp_path):
    res = client.resolve(busybox_image.ref)
    (layer,) = res.manifest.layers()
    assert layer.media_type == oci.OCI_LAYER_GZIP
    dest = tmp_path / "layer.tar.gz"
    seen: list[int] = []
    assert client.fetch_blob(busybox_image.ref, layer, dest, progress=lambda n, t: seen.append(n)) == layer.size
    data = dest.read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.digest == busybox_image.info.layer_digests[0]
    assert seen[-1] == layer.size
    tar_bytes = gzip.decompress(data)
    assert "sha256:" + hashlib.sha256(tar_bytes).hexdigest() == busybox_image.info.diff_ids[0]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert names["bin/busybox"].isfile() and names["bin/busybox"].mode == 0o755
        assert names["bin/sh"].issym() and names["bin/sh"].linkname == "busybox"
        assert names["tmp"].mode == 0o1777
        passwd = tar.extractfile("etc/passwd").read().decode()
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert "app:x:1000:1000::/home/app:/bin/sh" in passwd


def test_unknown_image_and_unknown_tag(registry, client):
    with pytest.raises(MasonError) as e:
        client.resolve_image_config(registry.ref("library/nope:latest"))
    assert e.value.message.startswith(f"image not found: {registry.host}/library/nope:latest (")
    with pytest.raises(MasonError) as e:
        client.get_manifest(registry.ref("library/busybox:nosuchtag"))
    assert e.value.message.startswith(f"image not found: {registry.host}/library/busybox:nosuchtag")


def test_multi_platform_index(registry, client, tmp_path):
    idx = build_busybox_index_layout(tmp_path / "multi", ("linux/amd64", "linux/arm64"))
    ref = registry.ref("mason/multi:latest")
    pushed = client.push_layout(idx.layout, ref, tag="latest")
    assert pushed.digest == idx.index_digest
    assert skopeo_raw_digest(ref) == idx.index_digest
    amd, arm = idx.images
    for plat, image in (("linux/amd64", amd), ("linux/arm64", arm), ("linux/arm64/v8", arm)):
        res = client.resolve_image_config(ref, PlatformSpec.parse(plat))
        # BuildKit pins the index, not the platform's manifest
        assert res.digest == idx.index_digest
        assert res.ref == f"{registry.host}/mason/multi:latest@{idx.index_digest}"
        assert res.manifest_digest == image.manifest_digest
        assert res.config["architecture"] == image.platform.architecture
        assert res.platform == image.platform
        assert res.media_type == oci.OCI_INDEX
    with pytest.raises(MasonError) as e:
        client.resolve_image_config(ref, PlatformSpec.parse("linux/s390x"))
    assert e.value.message == (f"image {registry.host}/mason/multi:latest has no manifest for platform "
                               "linux/s390x (it has linux/amd64, linux/arm64)")
    # skopeo agrees: it too reports the index digest, and picks the arm64 config from it
    seen = json.loads(skopeo("--override-arch", "arm64", "inspect", "--tls-verify=false", f"docker://{ref}"))
    assert (seen["Digest"], seen["Architecture"]) == (idx.index_digest, "arm64")
    arm_ref = f"{registry.host}/mason/multi@{arm.manifest_digest}"
    assert skopeo_raw_digest(arm_ref) == arm.manifest_digest
    # pushing the same index again uploads nothing
    again = client.push_layout(idx.layout, ref, tag="latest")
    assert set(again.blobs.values()) == {"exists"}


def _new_image(tmp_path, base_layout_info, marker: bytes):
    """A two-layer image: busybox's layer plus one small new layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("marker")
        ti.size, ti.mtime, ti.mode = len(marker), 1_700_000_000, 0o644
        tar.addfile(ti, io.BytesIO(marker))
    new_tar = buf.getvalue()
    base = OciLayout(base_layout_info.layout)
    base_layer = base.read_blob(base_layout_info.layer_digests[0])
    config = json.loads(json.dumps(base_layout_info.config))
    config["config"]["Env"] = config["config"]["Env"] + ["PUSHED=1"]
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(new_tar).hexdigest())
    layout = OciLayout.create(tmp_path / "new")
    return write_image(layout, config, [base_layer, gzip_bytes(new_tar)], "v1", base_layout_info.platform)


def test_push_image_mount_skip_existing(registry, busybox_image, client, tmp_path):
    info = _new_image(tmp_path, busybox_image.info, b"hello from mason\n")
    layout = OciLayout(info.layout)
    manifest = layout.read_blob(info.manifest_digest)
    blobs = {d: layout.blob_path(d) for d in (info.config_digest, *info.layer_digests)}
    ref = registry.ref("mason/pushed:v1")

    first = client.push_image(ref, manifest, oci.OCI_MANIFEST, blobs, mount_from=["library/busybox"])
    assert first.digest == info.manifest_digest
    assert first.blobs == {
        info.config_digest: "uploaded",
        info.layer_digests[0]: "mounted",  # busybox's layer, mounted across repositories
        info.layer_digests[1]: "uploaded",
    }
    assert skopeo_digest(ref) == info.manifest_digest
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", "--config", f"docker://{ref}"))
    assert "PUSHED=1" in inspected["config"]["Env"]

    second = client.push_image(ref, manifest, oci.OCI_MANIFEST, blobs, mount_from=["library/busybox"])
    assert second.digest == first.digest
    assert set(second.blobs.values()) == {"exists"}

    # and what we pushed pulls back, verified
    res = client.resolve_image_config(ref)
    assert res.digest == info.manifest_digest and res.config["config"]["Env"][-1] == "PUSHED=1"


def test_push_with_other_tag_returns_digest(registry, busybox_image, client):
    layout = OciLayout(busybox_image.layout)
    digest = client.push_layout(layout, registry.ref("mason/retag:v9"), tag="latest").digest
    assert digest == busybox_image.digest == skopeo_digest(registry.ref("mason/retag:v9"))


def test_chunked_upload(registry, busybox_image, tmp_path):
    layout = OciLayout(busybox_image.layout)
    digest = busybox_image.info.layer_digests[0]
    size = layout.blob_path(digest).stat().st_size
    desc = Descriptor(oci.OCI_LAYER_GZIP, digest, size)
    ref = registry.ref("mason/chunked:latest")
    with RegistryClient(chunk_size=256 * 1024) as c:
        assert size > 3 * 256 * 1024
        assert c.push_blob(ref, desc, layout.blob_path(digest)) == "uploaded"
        assert c.blob_exists(ref, digest)
        assert c.fetch_blob_bytes(ref, desc) == layout.read_blob(digest)
        assert c.push_blob(ref, desc, layout.blob_path(digest)) == "exists"


def test_push_wrong_content_is_refused(registry, client):
    data = b"some bytes"
    lying = Descriptor("application/octet-stream", "sha256:" + "1" * 64, len(data))
    with pytest.raises(MasonError) as e:
        client.push_blob(registry.ref("mason/bad:latest"), lying, data)
    assert e.value.message.startswith(f"digest mismatch pushing blob {lying.digest} to {registry.host}/mason/bad")


def test_caching_resolver_asks_once(busybox_image):
    calls = []

    class Counting(RegistryResolver):
        def resolve_image_config(self, ref, platform=None):
            calls.append(ref)
            return super().resolve_image_config(ref, platform)

    with Counting() as inner:
        cached = CachingResolver(inner)
        a = cached.resolve_image_config(busybox_image.ref)
        b = cached.resolve_image_config(busybox_image.ref.rsplit(":", 1)[0])  # same after normalizing
        assert a is b and len(calls) == 1


def test_basic_auth_registry(auth_registry, tmp_path, monkeypatch):
    """docker-registry with htpasswd: anonymous is refused, credentials (given or from
    DOCKER_CONFIG) push and pull."""
    ref = auth_registry.ref("private/busybox:latest")
    info = build_busybox_layout(tmp_path / "bb")
    with RegistryClient() as anon, pytest.raises(MasonError) as e:
        anon.resolve_image_config(ref)
    assert e.value.message == (f"unauthorized: GET {auth_registry.host}/private/busybox on "
                               f"{auth_registry.host} was refused (no credentials for this registry)")

    creds = {auth_registry.host: Credentials(auth_registry.username, auth_registry.password)}
    with RegistryClient(credentials=creds) as c:
        assert c.push_layout(info.layout, ref, tag="latest").digest == info.manifest_digest

    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    import base64
    auth = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    with RegistryClient() as c:
        assert c.resolve_image_config(ref).digest == info.manifest_digest

    with RegistryClient(credentials={auth_registry.host: Credentials(auth_registry.username, "wrong")}) as c:
        with pytest.raises(MasonError, match=r"was refused \(credentials rejected\)$"):
            c.resolve_image_config(ref)
