"""Loading OCI and Docker archives made by other tools (skopeo) and by mason's exporters."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED, Client
from mason.backends.exporters.docker_tar import write_docker_archive
from mason.backends.exporters.image import export_image, get_image, list_images, remove_image
from mason.backends.exporters.load import load_archive
from mason.ir.errors import MasonError
from tests.backends.exporters.conftest import HELLO
from tests.fixtures.images import build_busybox_index_layout
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration


def ctr(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", env.address, "-n", "mason", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_load_oci_archive_made_by_skopeo(containerd_env, busybox_layout, tmp_path: Path) -> None:
    c = containerd_env.client
    archive = tmp_path / "bb.tar"
    skopeo("copy", f"oci:{busybox_layout.layout}:latest", f"oci-archive:{archive}:mason-test/loaded:1")
    loaded = load_archive(c, archive)
    assert [(i.name, i.digest) for i in loaded] == [("docker.io/mason-test/loaded:1", busybox_layout.manifest_digest)]
    listed = {i.name: i for i in list_images(c)}["docker.io/mason-test/loaded:1"]
    assert listed.digest == busybox_layout.manifest_digest and listed.size > 100_000
    rec = get_image(c, "mason-test/loaded:1")
    m = json.loads(c.read_blob(rec.target.digest))
    layer = m["layers"][0]["digest"]
    assert c.content_info(layer).labels[UNCOMPRESSED] == busybox_layout.diff_ids[0]
    assert c.content_info(rec.target.digest).labels["containerd.io/gc.ref.content.l.0"] == layer
    r = ctr(containerd_env, "run", "--rm", "docker.io/mason-test/loaded:1", "mason-load-run", "/bin/echo", "loaded")
    assert (r.returncode, r.stdout) == (0, "loaded\n"), r.stderr
    remove_image(c, "mason-test/loaded:1")
    with pytest.raises(MasonError, match="no such image: mason-test/loaded:1"):
        get_image(c, "mason-test/loaded:1")


def test_load_docker_archive_written_by_mason(containerd_env, chain, tmp_path: Path) -> None:
    c = containerd_env.client
    img = export_image(c, chain.sources, chain.config(), name="mason-test/dock:1")
    archive = tmp_path / "d.tar"
    write_docker_archive(c, img, archive, names=["mason-test/redock:2"])
    with tarfile.open(archive) as tar:  # make it an old-style docker archive: manifest.json only
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()
                   if m.name not in ("index.json", "oci-layout")]
    old = tmp_path / "old.tar"
    with tarfile.open(old, "w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    loaded = load_archive(c, old)
    assert [i.name for i in loaded] == ["docker.io/mason-test/redock:2"]
    m = json.loads(c.read_blob(loaded[0].digest))
    assert m["mediaType"] == oci.OCI_MANIFEST and m["config"]["digest"] == img.config_digest
    assert [la["digest"] for la in m["layers"]] == [la.digest for la in img.layers]
    r = ctr(containerd_env, "run", "--rm", "docker.io/mason-test/redock:2", "mason-redock-run")
    assert (r.returncode, r.stdout.encode()) == (0, HELLO), r.stderr


def test_blobs_the_store_has_already_survive_a_gc_during_the_load(containerd_env, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What made test_load_of_a_multi_platform_archive_keeps_every_platform flaky: a build leaves
    its platforms' configs and layers in the content store, held by its lease only; ``mason
    load`` of the build's archive finds them there, and containerd's GC, scheduled when the
    build's lease went, ran in the middle of the load. The load must hold every blob it found
    until the image record does. Here GC runs for certain after every blob the load writes (a
    lease deleted with sync is collected before the call returns): first as the build's lease
    goes, then after each further write, then once the load is done."""
    c = containerd_env.client
    info = build_busybox_index_layout(tmp_path / "layout", tag="gc")  # linux/amd64 + linux/arm64
    archive = tmp_path / "gc.tar"
    skopeo("copy", "--all", f"oci:{info.layout}:gc", f"oci-archive:{archive}:mason-test/gc-load:1")
    build = c.create_lease(expire=600)
    for d in sorted({d for i in info.images for d in (i.config_digest, *i.layer_digests)}):
        c.with_lease(build).write_blob((info.layout / "blobs" / "sha256" / d.split(":", 1)[1]).read_bytes())
    write, leases = Client.write_blob, [build]

    def write_then_collect(self: Client, *args, **kwargs):
        out = write(self, *args, **kwargs)
        c.delete_lease(leases.pop() if leases else c.create_lease(expire=600), sync=True)
        return out

    monkeypatch.setattr(Client, "write_blob", write_then_collect)
    try:
        loaded = load_archive(c, archive)
    finally:
        monkeypatch.undo()
    assert [(i.name, i.digest) for i in loaded] == [("docker.io/mason-test/gc-load:1", info.index_digest)]
    c.delete_lease(c.create_lease(expire=600), sync=True)
    try:
        index = json.loads(c.read_blob(info.index_digest))
        assert len(index["manifests"]) == 2
        for m in index["manifests"]:
            manifest = json.loads(c.read_blob(m["digest"]))
            for d in (manifest["config"], *manifest["layers"]):
                assert c.content_info(d["digest"]).size == d["size"], d
    finally:
        remove_image(c, "mason-test/gc-load:1")


def test_load_rejects_what_is_not_an_archive(containerd_env, tmp_path: Path) -> None:
    bad = tmp_path / "x.tar"
    with tarfile.open(bad, "w"):
        pass
    with pytest.raises(MasonError) as e:
        load_archive(containerd_env.client, bad)
    assert e.value.message == f"{bad} is neither an OCI archive (index.json) nor a Docker archive (manifest.json)"
    with pytest.raises(MasonError) as e:
        load_archive(containerd_env.client, tmp_path / "missing.tar")
    assert e.value.message == f"cannot read archive {tmp_path / 'missing.tar'}: No such file or directory"


def test_loaded_and_exported_images_resolve_as_from_without_a_registry(containerd_env, busybox_layout, chain,
                                                                      tmp_path: Path) -> None:
    from mason.backends.sources.image import load_image

    c = containerd_env.client
    archive = tmp_path / "bb.tar"
    skopeo("copy", f"oci:{busybox_layout.layout}:latest", f"oci-archive:{archive}:mason-test/offline:1")
    load_archive(c, archive)
    exported = export_image(c, chain.sources, chain.config(), name="mason-test/fromable")
    with c.lease(expire=600) as lc:
        res = load_image(lc, None, "docker-image://mason-test/offline:1", {})
        assert res.digest == busybox_layout.manifest_digest
        assert [la.diff_id for la in res.layers] == list(busybox_layout.diff_ids)
        res = load_image(lc, None, "docker-image://mason-test/fromable", {"image.resolvemode": "local"})
        assert [la.digest for la in res.layers] == [la.digest for la in exported.layers]
        assert res.config["config"]["Cmd"] == ["/bin/cat", "/hello.txt"]
        assert res.snapshot
