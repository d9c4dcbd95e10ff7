"""The typed containerd client against a real private containerd."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import socket
import tarfile
from pathlib import Path

import pytest

from mason.backends.containerd.client import UNCOMPRESSED, Client, ContainerdError, Descriptor, Image, NotFound
from mason.backends.containerd.daemon import ADDRESS_ENV, resolve_address
from mason.backends.containerd.layers import chain_id, diff_snapshot, import_layer
from mason.ir.errors import MasonError

pytestmark = pytest.mark.integration


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1_700_000_000
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_namespace_is_created_and_listed(containerd_env) -> None:
    c: Client = containerd_env.client
    c.ensure_namespace()  # idempotent
    c.ensure_namespace("mason-other")
    assert {"mason", "mason-other"} <= set(c.list_namespaces())
    assert c.version().startswith("1.")


def test_lease_and_content_round_trip(containerd_env) -> None:
    c: Client = containerd_env.client
    data = b"mason content round trip\n" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with c.lease(expire=600) as lc:
        assert lc.lease_id in c.list_leases()
        assert "containerd.io/gc.expire" in c.list_leases()[lc.lease_id]
        info = lc.write_blob(data, labels={"mason.test": "1"})
        assert (info.digest, info.size, info.labels["mason.test"]) == (digest, len(data), "1")
        assert lc.content_exists(digest)
        assert lc.read_blob(digest) == data
        assert lc.write_blob(data).digest == digest  # writing again is a no-op
        chunks = [data[:1000], data[1000:]]
        assert lc.write_blob(iter(chunks), digest=digest, size=len(data)).size == len(data)
        lc.delete_content(digest)
        assert not lc.content_exists(digest)
    assert lc.lease_id not in c.list_leases()


def test_a_blob_that_exists_already_is_held_by_the_writers_lease(containerd_env) -> None:
    """Writing a blob that is there already (held by another lease, or garbage not yet
    collected) puts it into the writer's lease, as containerd's own Writer does for a write
    with an expected digest: when the other lease goes and GC runs, the blob stays until the
    writer's parent (a manifest's labels, an image record) holds it. GC runs here for certain:
    deleting a lease with sync collects before the call returns."""
    c: Client = containerd_env.client
    data = b"held by whoever wrote it last\n" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    first = c.create_lease(expire=600)
    c.with_lease(first).write_blob(data)
    with c.lease(expire=600) as lc:
        assert lc.write_blob(data).digest == digest  # there already: nothing is written
        assert (digest, "content") in c.list_lease_resources(lc.lease_id)
        c.delete_lease(first, sync=True)
        assert lc.content_exists(digest)
        chunks = iter([data])  # the same for a streamed write, and with labels to add
        lc2 = c.create_lease(expire=600)
        try:
            assert c.with_lease(lc2).write_blob(chunks, digest=digest, size=len(data),
                                                labels={"mason.test": "2"}).labels["mason.test"] == "2"
            assert (digest, "content") in c.list_lease_resources(lc2)
        finally:
            c.delete_lease(lc2)
    c.delete_lease(c.create_lease(expire=600), sync=True)
    assert not c.content_exists(digest)  # nothing holds it now: GC took it


def test_lease_resources_snapshot_labels_and_container_snapshots(containerd_env) -> None:
    """The calls the GC and the layer exporter make (no reaching into the client's stubs)."""
    c: Client = containerd_env.client
    key = "test-client-labels"
    with c.lease(expire=600) as lc:
        lc.prepare(key, containerd_env.busybox)
        try:
            got = c.list_lease_resources(lc.lease_id)
            assert (key, "snapshots/overlayfs") in got
            c.update_snapshot_labels(key, {"mason.test": "a"})
            c.update_snapshot_labels(key, {"mason.other": "b"})  # other labels kept
            labels = c.stat_snapshot(key).labels
            assert (labels["mason.test"], labels["mason.other"]) == ("a", "b")
            c.delete_lease_resource(lc.lease_id, key, "snapshots/overlayfs")
            assert (key, "snapshots/overlayfs") not in c.list_lease_resources(lc.lease_id)
            assert key not in c.list_container_snapshots()
            c.create_container("test-client-snapshots", {"ociVersion": "1.0.2"}, snapshot_key=key)
            try:
                assert key in c.list_container_snapshots()
            finally:
                c.delete_container("test-client-snapshots")
        finally:
            # Out of the lease, nothing holds the snapshot: containerd's GC may have taken it.
            with contextlib.suppress(NotFound):
                c.remove_snapshot(key)


def test_missing_blob_is_a_clear_mason_error(containerd_env) -> None:
    with pytest.raises(NotFound) as e:
        containerd_env.client.read_blob("sha256:" + "0" * 64)
    assert isinstance(e.value, MasonError)
    assert e.value.format().startswith("error: containerd: read blob sha256:000")
    assert "Traceback" not in e.value.format()


def test_wrong_digest_is_refused(containerd_env) -> None:
    with containerd_env.client.lease(expire=600) as lc, pytest.raises(ContainerdError) as e:
        lc.write_blob(b"abc", digest="sha256:" + "1" * 64, size=3)
    assert "write blob" in e.value.message


def test_layer_import_snapshots_and_diff(containerd_env) -> None:
    c: Client = containerd_env.client
    layer = _tar({"hello.txt": b"hello\n"})
    with c.lease(expire=600) as lc:
        imported = import_layer(lc, gzip.compress(layer, mtime=0), parent=containerd_env.busybox)
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        assert imported.diff_id == diff_id
        assert imported.chain_id == chain_id(containerd_env.busybox, diff_id)
        assert lc.content_info(imported.blob.digest).labels[UNCOMPRESSED] == diff_id
        info = lc.stat_snapshot(imported.chain_id)
        assert (info.kind, info.parent) == ("committed", containerd_env.busybox)
        assert imported.chain_id in {s.name for s in lc.list_snapshots()}
        assert import_layer(lc, layer, parent=containerd_env.busybox).chain_id == imported.chain_id

        # A read-only view shows the file on top of busybox; diff gives back exactly the layer.
        mounts = lc.view("test-view", imported.chain_id)
        assert mounts and mounts[0].type in ("overlay", "bind")
        lc.remove_snapshot("test-view")
        desc = diff_snapshot(lc, imported.chain_id)
        assert desc.media_type.endswith("tar+gzip")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(lc.read_blob(desc.digest)))) as tar:
            assert tar.extractfile("hello.txt").read() == b"hello\n"
        lc.remove_snapshot(imported.chain_id)
    with pytest.raises(NotFound):
        c.stat_snapshot(imported.chain_id)


def test_images_create_update_get_list_delete(containerd_env) -> None:
    c: Client = containerd_env.client
    with c.lease(expire=600) as lc:
        blob = lc.write_blob(b'{"schemaVersion":2}')
        target = Descriptor("application/vnd.oci.image.manifest.v1+json", blob.digest, blob.size)
        name = "docker.io/library/mason-test:latest"
        lc.create_image(Image(name, target, {"mason.test": "1"}))
        assert lc.get_image(name).target.digest == blob.digest
        blob2 = lc.write_blob(b'{"schemaVersion":2,"x":1}')
        lc.put_image(Image(name, Descriptor(target.media_type, blob2.digest, blob2.size)))
        assert lc.get_image(name).target.digest == blob2.digest
        assert name in {i.name for i in lc.list_images()}
        lc.delete_image(name, sync=True)
        with pytest.raises(NotFound):
            lc.get_image(name)


def test_explicit_address_with_nothing_listening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))  # a socket file nobody listens on
    s.close()
    with pytest.raises(MasonError) as e:
        resolve_address(str(dead))
    assert e.value.format() == f"error: no containerd answers at {dead} (from --containerd-address / {ADDRESS_ENV})"
    monkeypatch.setenv(ADDRESS_ENV, f"unix://{tmp_path}/missing.sock")
    with pytest.raises(MasonError, match="no containerd answers at .*missing.sock"):
        resolve_address()


def test_explicit_address_that_answers(containerd_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADDRESS_ENV, "unix://" + containerd_env.address)
    assert resolve_address() == containerd_env.address


def test_dead_daemon_is_unavailable_not_a_traceback(tmp_path: Path) -> None:
    c = Client(str(tmp_path / "none.sock"), timeout=2)
    with pytest.raises(ContainerdError) as e:
        c.list_namespaces()
    c.close()
    assert "is not answering" in e.value.message
