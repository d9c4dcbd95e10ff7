"""The image writer against a real containerd; ``ctr`` runs what it stored."""

from __future__ import annotations

import json
import subprocess

import pytest

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED
from mason.backends.exporters.image import export_image, get_image, list_images, remove_image
from mason.backends.exporters.layer import SnapshotDiff, layer_cache_label, resolve_layer
from mason.ir.errors import MasonError
from tests.backends.exporters.conftest import HELLO

pytestmark = pytest.mark.integration


def ctr(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "--address", env.address, "-n", "mason", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_exported_image_runs_with_ctr(containerd_env, chain) -> None:
    c = containerd_env.client
    img = export_image(c, chain.sources, chain.config(), name="mason-test/hello")
    assert img.names == ("docker.io/mason-test/hello:latest",)
    rec = c.get_image("docker.io/mason-test/hello:latest")
    assert (rec.target.digest, rec.target.media_type, rec.target.size) == (img.manifest_digest, oci.OCI_MANIFEST, img.size)

    manifest = json.loads(c.read_blob(img.manifest_digest))
    assert manifest["mediaType"] == oci.OCI_MANIFEST and manifest["config"]["digest"] == img.config_digest
    assert [la["digest"] for la in manifest["layers"]][0] == chain.base.digest  # base passes through
    labels = c.content_info(img.manifest_digest).labels
    assert labels["containerd.io/gc.ref.content.config"] == img.config_digest
    assert labels["containerd.io/gc.ref.content.l.1"] == manifest["layers"][1]["digest"]

    config = json.loads(c.read_blob(img.config_digest))
    assert config["rootfs"]["diff_ids"][0] == chain.base.diff_id
    assert c.content_info(manifest["layers"][1]["digest"]).labels[UNCOMPRESSED] == config["rootfs"]["diff_ids"][1]
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, True, False]
    assert config["config"]["Cmd"] == ["/bin/cat", "/hello.txt"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert config["history"][0]["created"] == "2023-11-14T22:13:20Z"
    assert all("created" in h for h in config["history"]) and config["created"]

    r = ctr(containerd_env, "run", "--rm", "docker.io/mason-test/hello:latest", "mason-ctr-hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == HELLO
    r = ctr(containerd_env, "run", "--rm", "docker.io/mason-test/hello:latest", "mason-ctr-hello2",
            "/bin/sh", "-c", "test ! -e /etc/group && stat -c '%a %u' /hello.txt /data/n.txt && id -u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["640 0", "644 1000", "0"]


def test_layer_is_computed_once_and_cached_on_the_snapshot(containerd_env, chain) -> None:
    c = containerd_env.client
    with c.lease(expire=600) as lc:
        first = resolve_layer(lc, SnapshotDiff(chain.base_snapshot, chain.top))
        labels = c.stat_snapshot(chain.top).labels
        assert json.loads(labels[layer_cache_label(chain.base_snapshot)])["digest"] == first.digest
        assert any(k.startswith("containerd.io/gc.ref.content.") and v == first.digest for k, v in labels.items())
        assert resolve_layer(lc, SnapshotDiff(chain.base_snapshot, chain.top)) == first


def test_image_store_list_and_remove(containerd_env, chain) -> None:
    c = containerd_env.client
    img = export_image(c, chain.sources, chain.config(), name=["mason-test/store:v1", "mason-test/store:v2"])
    listed = {i.name: i for i in list_images(c)}
    assert listed["docker.io/mason-test/store:v1"].digest == img.manifest_digest
    assert listed["docker.io/mason-test/store:v1"].size == (
        img.size + len(img.config_bytes) + sum(la.size for la in img.layers))
    assert get_image(c, "mason-test/store:v2").target.digest == img.manifest_digest
    assert remove_image(c, "mason-test/store:v1") == "docker.io/mason-test/store:v1"
    assert "docker.io/mason-test/store:v1" not in {i.name for i in list_images(c)}
    with pytest.raises(MasonError) as e:
        remove_image(c, "mason-test/store:v1")
    assert e.value.message == "no such image: mason-test/store:v1"


def test_gc_keeps_a_computed_layer_while_its_snapshot_lives(containerd_env, chain) -> None:
    c = containerd_env.client
    with c.lease(expire=600) as snap_lease:
        from tests.backends.exporters.conftest import commit_changes

        top = commit_changes(snap_lease, containerd_env.busybox, lambda root: (root / "gc").write_text("gc\n"))
        lease = c.create_lease(expire=600)
        layer = resolve_layer(c.with_lease(lease), SnapshotDiff(containerd_env.busybox, top), source_date_epoch=0)
        c.delete_lease(lease, sync=True)  # runs containerd's GC now
        assert c.content_exists(layer.digest)  # held by the snapshot's gc.ref.content label
    c.delete_lease(c.create_lease(expire=600), sync=True)
    assert not c.snapshot_exists(top) and not c.content_exists(layer.digest)
