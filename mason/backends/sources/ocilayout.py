"""``oci-layout://`` sources: an image from an OCI image layout directory the build was given.

The identifier is ``oci-layout://<store>/<name>[:<tag>][@<digest>]``; ``<store>`` names one of
the layout directories the caller passes in ``layout_stores`` (a build definition never names a
host path itself). BuildKit's form — the store in the ``oci.store`` attr and only a reference in
the identifier — is accepted too. A digest picks that manifest or index; otherwise the tag (default
``latest``) is looked up in ``index.json`` by ``org.opencontainers.image.ref.name`` (the tag, or
the full ``name:tag``) or ``io.containerd.image.name``. Importing is the image source's
(``image.import_image``): blobs into the content store, layers into chain-ID snapshots.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.sources.image import import_image
from mason.backends.sources.result import SourceResult
from mason.ir.errors import MasonError
from mason.ir.reference import validate_digest
from mason.ir.resolver import PlatformSpec

PREFIX = "oci-layout://"
ATTR_STORE = "oci.store"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20

__all__ = ["load_oci_layout", "parse_oci_identifier", "find_in_layout", "layout_image_config"]


def parse_oci_identifier(identifier: str, attrs: Mapping[str, str] | None = None
                         ) -> tuple[str, str, str | None, str | None]:
    """``(store, name, tag, digest)`` of an ``oci-layout://`` identifier."""
    text = identifier[len(PREFIX):] if identifier.startswith(PREFIX) else identifier
    store = (attrs or {}).get(ATTR_STORE, "")
    if not store:
        store, _, text = text.partition("/")
        if not store or not text:
            raise MasonError(f"invalid oci-layout source {identifier!r}: expected oci-layout://<store>/<name>[:tag][@digest]")
    rest, at, digest = text.partition("@")
    if at:
        validate_digest(digest, identifier)
    tag = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
    if not rest:
        raise MasonError(f"invalid oci-layout source {identifier!r}: missing image name")
    return store, rest, tag, digest or None


class _LayoutProvider:
    def __init__(self, layout: oci.OciLayout):
        self.layout = layout

    def describe(self) -> str:
        return f"OCI layout {self.layout.root}"

    def read(self, desc: oci.Descriptor) -> bytes:
        return self.layout.read_blob(desc.digest)

    def stream(self, desc: oci.Descriptor) -> Iterator[bytes]:
        path = self.layout.blob_path(desc.digest)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise MasonError(f"OCI layout {self.layout.root}: blob {desc.digest} is missing") from None
        with f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def labels(self) -> Mapping[str, str]:
        return {}


def _find(layout: oci.OciLayout, name: str, tag: str | None, digest: str | None, what: str) -> oci.Descriptor:
    descs = layout.descriptors()
    if digest:
        for d in descs:
            if d.digest == digest:
                return d
        if layout.has_blob(digest):  # not in index.json, but present: a child of an index
            data = layout.read_blob(digest)
            return oci.Descriptor(oci.detect_manifest_type(data), digest, len(data))
        raise MasonError(f"{what}: the layout has no manifest {digest}")
    tag = tag or "latest"
    wanted = {tag, f"{name}:{tag}"}
    for d in descs:
        if d.annotations.get(oci.ANNOTATION_REF_NAME) in wanted:
            return d
    for d in descs:
        full = d.annotations.get(CONTAINERD_IMAGE_NAME, "")
        if full == f"{name}:{tag}" or full.endswith(f"/{name}:{tag}"):
            return d
    have = sorted({d.annotations.get(oci.ANNOTATION_REF_NAME, "") for d in descs} - {""})
    raise MasonError(f"{what}: the layout has no image tagged {tag!r}"
                     + (f" (it has {', '.join(have)})" if have else ""))


def load_oci_layout(client: Client, identifier: str, attrs: Mapping[str, str], platform: PlatformSpec | None,
                    layout_stores: Mapping[str, str | os.PathLike[str]]) -> SourceResult:
    """Load ``oci-layout://<store>/<ref>`` from the layout directory ``layout_stores[store]``."""
    store, name, tag, digest = parse_oci_identifier(identifier, attrs)
    if store not in layout_stores:
        known = ", ".join(sorted(layout_stores)) or "none"
        raise MasonError(f"oci-layout source {identifier}: unknown layout store {store!r} (known: {known})")
    root = Path(layout_stores[store])
    if not (root / "index.json").is_file():
        raise MasonError(f"oci-layout store {store!r}: {root} is not an OCI image layout (no index.json)")
    layout = oci.OciLayout(root)
    what = f"oci-layout store {store!r}"
    desc = _find(layout, name, tag, digest, what)
    desc = oci.Descriptor(desc.media_type, desc.digest, desc.size)  # index annotations stay in the layout
    ref = f"{name}:{tag or 'latest'}" if not digest else f"{name}@{digest}"
    return import_image(client, _LayoutProvider(layout), desc, platform or PlatformSpec.default(),
                        name=f"{ref} in {what}")


def find_in_layout(root: str | os.PathLike[str], tag: str | None, digest: str | None, what: str) -> str:
    """The digest of the manifest or index ``tag`` (default ``latest``; the only image when the
    layout holds one untagged) or ``digest`` names in the OCI layout at ``root``."""
    if not (Path(root) / "index.json").is_file():
        raise MasonError(f"{what}: {root} is not an OCI image layout (no index.json)")
    layout = oci.OciLayout(root)
    if digest is None and tag is None:
        descs = layout.descriptors()
        if len(descs) == 1 and not descs[0].annotations.get(oci.ANNOTATION_REF_NAME):
            return descs[0].digest
    return _find(layout, "", tag, digest, what).digest


def layout_image_config(root: str | os.PathLike[str], digest: str, platform: PlatformSpec, what: str) -> dict:
    """The image config of ``digest`` (a manifest, or an index: its ``platform`` manifest) in
    the OCI layout at ``root`` — what BuildKit's resolver answers for an oci-layout context."""
    from mason.backends.sources.image import _walk

    layout = oci.OciLayout(root)
    desc = _find(layout, "", None, digest, what)
    desc = oci.Descriptor(desc.media_type, desc.digest, desc.size)
    return _walk(_LayoutProvider(layout), desc, platform, what).config
