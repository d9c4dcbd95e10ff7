"""``docker-image://`` and ``oci-layout://`` sources against a real containerd and the fixture
registry: layers land in chain-ID snapshots, a second load applies nothing, mason's image store
is asked before the registry, and failures are clear."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid

import pytest

from mason.backends import oci
from mason.backends.containerd.client import Client, Image
from mason.backends.containerd.client import Descriptor as CDescriptor
from mason.backends.containerd.layers import chain_id
from mason.backends.sources.image import load_image
from mason.backends.sources.mount import mounted_view
from mason.backends.sources.ocilayout import load_oci_layout, parse_oci_identifier
from mason.backends.sources.registry import RegistryClient
from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec
from tests.fixtures.images import build_busybox_index_layout
from tests.fixtures.registry import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(containerd_env):
    """A client in a fresh containerd namespace (so no other test's snapshots or blobs are
    there), bound to a lease that goes at the end."""
    base: Client = containerd_env.client.in_namespace(f"mason-t-{uuid.uuid4().hex[:10]}")
    base.ensure_namespace()
    lease = base.create_lease(expire=3600)
    try:
        yield base.with_lease(lease)
    finally:
        with contextlib.suppress(Exception):
            base.delete_lease(lease, sync=True)


@pytest.fixture
def reg():
    with RegistryClient(timeout=5) as r:
        yield r


def _committed(c: Client) -> set[str]:
    return {s.name for s in c.list_snapshots() if s.kind == "committed"}


def _check_busybox(c: Client, snapshot: str) -> None:
    with mounted_view(c, snapshot) as root:
        st = os.lstat(root / "bin/busybox")
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
        assert (st.st_uid, st.st_gid) == (0, 0)
        assert os.readlink(root / "bin/sh") == "busybox"
        assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
        assert (root / "etc/passwd").read_text().startswith("root:x:0:0:")


def test_pull_from_registry_into_chain_id_snapshots(ns, reg, busybox_image) -> None:
    info = busybox_image.info
    res = load_image(ns, reg, f"docker-image://{busybox_image.ref}", {}, PlatformSpec.default())
    assert res.snapshot == chain_id(None, info.diff_ids[0])
    assert [ly.digest for ly in res.layers] == list(info.layer_digests)
    assert [ly.diff_id for ly in res.layers] == list(info.diff_ids)
    assert res.layers[0].media_type == oci.OCI_LAYER_GZIP
    assert res.config == info.config and res.digest == info.manifest_digest
    assert _committed(ns) == {res.snapshot}
    _check_busybox(ns, res.snapshot)
    # containerd's labels: layer → diff ID, manifest → children, config → snapshot
    assert ns.content_info(info.layer_digests[0]).labels["containerd.io/uncompressed"] == info.diff_ids[0]
    mlabels = ns.content_info(info.manifest_digest).labels
    assert mlabels["containerd.io/gc.ref.content.config"] == info.config_digest
    assert mlabels["containerd.io/gc.ref.content.l.0"] == info.layer_digests[0]
    assert ns.content_info(info.config_digest).labels["containerd.io/gc.ref.snapshot.overlayfs"] == res.snapshot


def test_second_load_applies_nothing(ns, reg, busybox_image) -> None:
    first = load_image(ns, reg, f"docker-image://{busybox_image.ref}", {}, None)
    snaps, blobs = ns.list_snapshots(), {b.digest for b in ns.list_content()}
    second = load_image(ns, reg, f"docker-image://{busybox_image.ref}", {"image.resolvemode": "pull"}, None)
    assert second == first
    assert ns.list_snapshots() == snaps  # no prepare, no new snapshot
    assert {b.digest for b in ns.list_content()} == blobs


def _load_into_store(c: Client, layout_info, name: str) -> None:
    """What ``mason load`` does: blobs into the content store, an image record naming them."""
    layout = oci.OciLayout(layout_info.layout)
    for d in layout.walk(layout_info.descriptor):
        c.write_blob(layout.read_blob(d.digest))
    c.create_image(Image(name, CDescriptor(oci.OCI_MANIFEST, layout_info.manifest_digest, layout_info.manifest_size)))


def test_image_store_is_used_before_the_registry(ns, reg, busybox_layout) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    name = f"{dead}/library/busybox:latest"
    _load_into_store(ns, busybox_layout, name)
    res = load_image(ns, reg, f"docker-image://{name}", {}, PlatformSpec.default())
    assert res.digest == busybox_layout.manifest_digest and res.config == busybox_layout.config
    _check_busybox(ns, res.snapshot)
    # pinned by digest: the manifest in the content store is enough
    pinned = f"{dead}/library/other@{busybox_layout.manifest_digest}"
    assert load_image(ns, reg, f"docker-image://{pinned}", {}, None).snapshot == res.snapshot
    # resolvemode=pull goes to the (dead) registry
    with pytest.raises(MasonError, match=rf"cannot reach registry {dead}: connection refused"):
        load_image(ns, reg, f"docker-image://{name}", {"image.resolvemode": "pull"}, None)


def test_docker_hub_names_are_normalized_for_the_store(ns, reg, busybox_layout) -> None:
    _load_into_store(ns, busybox_layout, "docker.io/library/masontest-bb:latest")
    res = load_image(ns, reg, "docker-image://docker.io/library/masontest-bb:latest", {"image.resolvemode": "local"}, None)
    assert res.digest == busybox_layout.manifest_digest


def test_missing_image_in_registry(ns, reg, registry) -> None:
    ref = registry.ref("library/no-such-image:latest")
    with pytest.raises(MasonError, match=rf"image not found: {ref}"):
        load_image(ns, reg, f"docker-image://{ref}", {}, None)


def test_unreachable_registry(ns, reg) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(MasonError, match=rf"cannot reach registry {dead}: connection refused"):
        load_image(ns, reg, f"docker-image://{dead}/library/busybox:latest", {}, None)


def test_resolvemode_local_and_bad_mode(ns, reg, busybox_image) -> None:
    with pytest.raises(MasonError, match=r"is not in mason's image store \(image.resolvemode=local does not pull\)"):
        load_image(ns, reg, f"docker-image://{busybox_image.ref}", {"image.resolvemode": "local"}, None)
    with pytest.raises(MasonError, match=r"invalid image.resolvemode 'sometimes'"):
        load_image(ns, reg, f"docker-image://{busybox_image.ref}", {"image.resolvemode": "sometimes"}, None)


def test_registry_index_picks_the_platform(ns, reg, registry, tmp_path) -> None:
    from tests.fixtures.registry import skopeo_copy_layout

    idx = build_busybox_index_layout(tmp_path / "idx", platforms=("linux/amd64", "linux/arm64"))
    ref = registry.ref("library/bbmulti:latest")
    skopeo_copy_layout(idx.layout, "latest", ref, all_images=True)
    arm = PlatformSpec.parse("linux/arm64")
    res = load_image(ns, reg, f"docker-image://{ref}", {}, arm)
    assert res.digest == idx.index_digest and res.config["architecture"] == "arm64"
    assert ns.content_info(idx.index_digest).labels["containerd.io/gc.ref.content.m.1"] == idx.images[1].manifest_digest
    with pytest.raises(MasonError, match=r"has no manifest for platform linux/s390x \(it has linux/amd64, linux/arm64\)"):
        load_image(ns, reg, f"docker-image://{ref}", {}, PlatformSpec.parse("linux/s390x"))


# -- oci-layout:// ----------------------------------------------------------------------------


def test_oci_layout_by_tag_and_digest(ns, busybox_layout) -> None:
    stores = {"bb": busybox_layout.layout}
    res = load_oci_layout(ns, "oci-layout://bb/busybox:latest", {}, None, stores)
    assert res.digest == busybox_layout.manifest_digest
    assert [ly.digest for ly in res.layers] == list(busybox_layout.layer_digests)
    _check_busybox(ns, res.snapshot)
    by_digest = load_oci_layout(ns, f"oci-layout://bb/busybox@{busybox_layout.manifest_digest}", {}, None, stores)
    assert by_digest.snapshot == res.snapshot
    # BuildKit's spelling: the store in the attrs
    attrs = {"oci.store": "bb"}
    assert load_oci_layout(ns, "oci-layout://busybox:latest", attrs, None, stores).snapshot == res.snapshot


def test_oci_layout_index_and_errors(ns, tmp_path) -> None:
    idx = build_busybox_index_layout(tmp_path / "idx", platforms=("linux/amd64", "linux/arm64"))
    stores = {"multi": idx.layout}
    res = load_oci_layout(ns, "oci-layout://multi/x:latest", {}, PlatformSpec.parse("linux/amd64"), stores)
    assert res.digest == idx.index_digest and res.config["architecture"] == "amd64"
    with pytest.raises(MasonError, match=r"unknown layout store 'nope' \(known: multi\)"):
        load_oci_layout(ns, "oci-layout://nope/x:latest", {}, None, stores)
    with pytest.raises(MasonError, match=r"the layout has no image tagged 'v9' \(it has latest\)"):
        load_oci_layout(ns, "oci-layout://multi/x:v9", {}, None, stores)
    with pytest.raises(MasonError, match=r"expected oci-layout://<store>/<name>"):
        load_oci_layout(ns, "oci-layout://justastore", {}, None, stores)


def test_parse_oci_identifier() -> None:
    d = "sha256:" + "a" * 64
    assert parse_oci_identifier("oci-layout://s/app:v1") == ("s", "app", "v1", None)
    assert parse_oci_identifier(f"oci-layout://s/a/b@{d}") == ("s", "a/b", None, d)
    assert parse_oci_identifier("oci-layout://x/app", {"oci.store": "st"}) == ("st", "x/app", None, None)


def test_concurrent_loads_of_one_image_agree(ns, reg, busybox_image) -> None:
    """Builds racing to unpack the same layer: one commit wins, the others reuse it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: load_image(ns, reg, f"docker-image://{busybox_image.ref}", {}, None),
                              range(4)))
    assert len({r.snapshot for r in results}) == 1
    assert _committed(ns) == {results[0].snapshot}
    assert not [s for s in ns.list_snapshots() if s.kind == "active"]
