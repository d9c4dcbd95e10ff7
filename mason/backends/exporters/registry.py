"""``type=registry`` (and ``type=image,push=true``): push an exported image from containerd's
content store through mason's registry client (the one pulls use): blobs that exist are
skipped, the rest streamed from containerd, then the manifest by tag. Plain HTTP only for
loopback hosts and ``insecure_registries`` (the client's rule)."""

from __future__ import annotations

from collections.abc import Sequence

from mason.backends.containerd.client import Client
from mason.backends.exporters.image import ExportedImage
from mason.backends.sources.registry import PushResult, RegistryClient


def push_image(client: Client, image: ExportedImage, ref: str, *, registry: RegistryClient | None = None,
               insecure_registries: Sequence[str] = (), mount_from: Sequence[str] = ()) -> PushResult:
    """Push ``image`` to ``ref`` (``host/repo:tag``); returns what the push did."""

    def source(digest: str):
        return lambda: client.read_blob_chunks(digest)

    blobs = {la.digest: source(la.digest) for la in image.layers}
    blobs[image.config_digest] = image.config_bytes
    own = registry is None
    reg = registry or RegistryClient(insecure_registries=insecure_registries)
    try:
        return reg.push_image(ref, image.manifest_bytes, image.manifest["mediaType"], blobs, mount_from)
    finally:
        if own:
            reg.close()
