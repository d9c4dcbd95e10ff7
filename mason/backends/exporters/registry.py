"""``type=registry`` (and ``type=image,push=true``): push an exported image from containerd's
content store through mason's registry client (the one pulls use): blobs that exist are
skipped, the rest streamed from containerd, then the manifest by tag. Plain HTTP only for
loopback hosts and ``insecure_registries`` (the client's rule). A multi-platform image
(:class:`~.index.ExportedIndex`) pushes every platform's blobs and manifest (by digest, each
blob once), then the index by tag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.exporters.image import ExportedImage
from mason.backends.exporters.index import ExportedIndex
from mason.backends.sources.registry import PushResult, RegistryClient
from mason.backends.sources.registry_push import BlobSource
from mason.ir.reference import parse_reference


def _blobs(client: Client, img: ExportedImage, remote: Mapping[str, Any], domain: str,
           mounts: list[str]) -> dict[str, BlobSource]:
    """The blob sources of ``img``: containerd's content store, or for a layer that came from a
    remote cache and is not in the store, the cache (its repositories added to ``mounts`` when
    the cache is on ``domain``, so the registry mounts the blob instead of receiving it)."""

    def source(digest: str) -> BlobSource:
        loc = remote.get(digest)
        if loc is not None and not client.content_exists(digest):
            for repo in loc.mount_repos(domain):
                if repo not in mounts:
                    mounts.append(repo)
            return lambda: loc.stream()
        return lambda: client.read_blob_chunks(digest)

    blobs: dict[str, BlobSource] = {la.digest: source(la.digest) for la in img.layers}
    blobs[img.config_digest] = img.config_bytes
    return blobs


def _push_index(client: Client, reg: RegistryClient, index: ExportedIndex, ref: str,
                remote: Mapping[str, Any], mount_from: list[str]) -> PushResult:
    result = PushResult(parse_reference(ref), index.digest, oci.OCI_INDEX, index.size)
    for _, img in index.images:
        blobs = _blobs(client, img, remote, result.ref.domain, mount_from)
        m = img.manifest
        for d in [oci.Descriptor.from_json(m["config"])] + [oci.Descriptor.from_json(x) for x in m["layers"]]:
            if d.digest not in result.blobs:
                result.blobs[d.digest] = reg.push_blob(ref, d, blobs[d.digest], mount_from)
        if reg.manifest_exists(ref, img.manifest_digest):
            result.blobs[img.manifest_digest] = "exists"
        else:
            reg.push_manifest(ref, img.manifest_bytes, m["mediaType"], tag=img.manifest_digest)
            result.blobs[img.manifest_digest] = "uploaded"
    reg.push_manifest(ref, index.index_bytes, oci.OCI_INDEX)
    return result


def push_image(client: Client, image: ExportedImage | ExportedIndex, ref: str, *,
               registry: RegistryClient | None = None, insecure_registries: Sequence[str] = (),
               mount_from: Sequence[str] = (), remote: Mapping[str, Any] | None = None) -> PushResult:
    """Push ``image`` to ``ref`` (``host/repo:tag``); returns what the push did. ``remote``:
    per layer digest, the remote cache blob it came from (``stream()``, ``mount_repos(domain)``),
    used for layers that are not in the content store: mounted across repositories when the
    cache is on the target registry, streamed from the cache otherwise."""
    remote = remote or {}
    mounts = list(mount_from)
    own = registry is None
    reg = registry or RegistryClient(insecure_registries=insecure_registries)
    try:
        if isinstance(image, ExportedIndex):
            return _push_index(client, reg, image, ref, remote, mounts)
        blobs = _blobs(client, image, remote, parse_reference(ref).domain, mounts)
        return reg.push_image(ref, image.manifest_bytes, image.manifest["mediaType"], blobs, mounts)
    finally:
        if own:
            reg.close()
