"""``type=oci``: the image as an OCI image layout in a tar (``oci-layout``, ``index.json``,
``blobs/sha256/…``), as BuildKit's OCI exporter writes it. Each name gets an ``index.json``
entry annotated with ``io.containerd.image.name`` (the full name) and
``org.opencontainers.image.ref.name`` (its tag), so ``skopeo``/``umoci`` find it by tag and
``mason load``/``ctr import`` by name. A multi-platform image (:class:`~.index.ExportedIndex`)
is written the same way: ``index.json``'s entry names the image index blob, which names each
platform's manifest (every platform's blobs are in the archive, each once)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, BinaryIO

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.exporters.archive import ArchiveWriter, blob_path, write_archive
from mason.backends.exporters.image import ExportedImage
from mason.backends.exporters.index import ExportedIndex
from mason.ir.reference import parse_reference

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"


def index_entries(desc: oci.Descriptor, names: Sequence[str]) -> list[dict[str, Any]]:
    if not names:
        return [desc.to_json()]
    out = []
    for n in names:
        ref = parse_reference(n)
        ann = {ANNOTATION_IMAGE_NAME: str(ref)}
        if ref.tag:
            ann[oci.ANNOTATION_REF_NAME] = ref.tag
        out.append(oci.Descriptor(desc.media_type, desc.digest, desc.size, annotations=ann).to_json())
    return out


def write_image_blobs(w: ArchiveWriter, client: Client, image: ExportedImage, done: set[str] | None = None) -> None:
    """Config, layers and manifest of ``image`` under ``blobs/`` (each digest once; ``done``:
    the digests already written)."""
    done = set() if done is None else done
    w.dir("blobs/sha256")
    for la in image.layers:
        if la.digest not in done:
            done.add(la.digest)
            w.blob(client, blob_path(la.digest), la.digest, la.size)
    for digest, data in ((image.config_digest, image.config_bytes), (image.manifest_digest, image.manifest_bytes)):
        if digest not in done:
            done.add(digest)
            w.bytes(blob_path(digest), data)


def write_oci_archive(client: Client, image: ExportedImage | ExportedIndex,
                      dest: str | os.PathLike[str] | BinaryIO, *, names: Sequence[str] | None = None,
                      source_date_epoch: int | None = None) -> None:
    """Write ``image`` (from :func:`~mason.backends.exporters.image.export_image`, or an index
    from :func:`~mason.backends.exporters.index.export_index`) as an OCI archive at ``dest`` (a
    path, or a binary stream). ``names`` default to the image's."""
    names = list(image.names if names is None else names)
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
             "manifests": index_entries(image.descriptor, names)}

    def fill(w: ArchiveWriter) -> None:
        w.bytes("oci-layout", json.dumps({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}).encode())
        w.bytes("index.json", oci.canonical_json(index))
        if isinstance(image, ExportedIndex):
            done: set[str] = set()
            for _, img in image.images:
                write_image_blobs(w, client, img, done)
            w.bytes(blob_path(image.digest), image.index_bytes)
        else:
            write_image_blobs(w, client, image)

    write_archive(dest, fill, mtime=source_date_epoch or 0)
