"""``type=registry`` (and ``type=image,push=true``): push an exported image from containerd's
content store through mason's registry client (the one pulls use): blobs that exist are
skipped, the rest streamed from containerd, then the manifest by tag. Plain HTTP only for
loopback hosts and ``insecure_registries`` (the client's rule). A multi-platform image
(:class:`~.index.ExportedIndex`) pushes every platform's blobs and manifest (by digest, each
blob once), then the index by tag."""

from __future__ import annotations

from collections.abc import Sequence

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.exporters.image import ExportedImage
from mason.backends.exporters.index import ExportedIndex
from mason.backends.sources.registry import PushResult, RegistryClient
from mason.backends.sources.registry_push import BlobSource
from mason.ir.reference import parse_reference


def _blobs(client: Client, img: ExportedImage) -> dict[str, BlobSource]:
    def source(digest: str) -> BlobSource:
        return lambda: client.read_blob_chunks(digest)

    blobs: dict[str, BlobSource] = {la.digest: source(la.digest) for la in img.layers}
    blobs[img.config_digest] = img.config_bytes
    return blobs


def _push_index(client: Client, reg: RegistryClient, index: ExportedIndex, ref: str,
                mount_from: Sequence[str]) -> PushResult:
    result = PushResult(parse_reference(ref), index.digest, oci.OCI_INDEX, index.size)
    for _, img in index.images:
        blobs = _blobs(client, img)
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
               mount_from: Sequence[str] = ()) -> PushResult:
    """Push ``image`` to ``ref`` (``host/repo:tag``); returns what the push did."""
    own = registry is None
    reg = registry or RegistryClient(insecure_registries=insecure_registries)
    try:
        if isinstance(image, ExportedIndex):
            return _push_index(client, reg, image, ref, mount_from)
        return reg.push_image(ref, image.manifest_bytes, image.manifest["mediaType"], _blobs(client, image),
                              mount_from)
    finally:
        if own:
            reg.close()
