"""``type=docker``: an archive ``docker load`` accepts. Like BuildKit's docker exporter (and
``docker save`` since Docker 25) it is an OCI layout whose image uses Docker's schema2 media
types, plus the ``manifest.json`` that ``docker load`` reads (``Config``, ``RepoTags``,
``Layers`` — paths into ``blobs/``). The config bytes are the image's own; layers are the same
blobs (gzip layers stay compressed: ``docker load`` decompresses them), so only the manifest,
whose media types differ, has another digest than the stored OCI image's."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, BinaryIO

from mason.backends import oci
from mason.backends.containerd.client import Client
from mason.backends.exporters.archive import ArchiveWriter, blob_path, write_archive
from mason.backends.exporters.image import ExportedImage
from mason.backends.exporters.index import ExportedIndex, index_object
from mason.backends.exporters.oci_tar import index_entries
from mason.ir.reference import parse_reference
from mason.ir.resolver import PlatformSpec

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_EQUIVALENT = {
    oci.OCI_LAYER_GZIP: oci.DOCKER_LAYER_GZIP,
    oci.OCI_LAYER: DOCKER_LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip":
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}


def docker_manifest(image: ExportedImage) -> dict[str, Any]:
    """``image``'s manifest with Docker schema2 media types."""
    m = json.loads(image.manifest_bytes)
    layers = []
    for la in m["layers"]:
        la = dict(la)
        la["mediaType"] = DOCKER_EQUIVALENT.get(la["mediaType"], la["mediaType"])
        layers.append(la)
    config = dict(m["config"], mediaType=oci.DOCKER_CONFIG)
    return {"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST, "config": config, "layers": layers}


def write_docker_archive(client: Client, image: ExportedImage | ExportedIndex,
                         dest: str | os.PathLike[str] | BinaryIO, *, names: Sequence[str] | None = None,
                         source_date_epoch: int | None = None) -> str:
    """Write ``image`` as a ``docker load`` archive at ``dest``; returns the digest of the
    Docker manifest (or, for a multi-platform image, manifest list) written.

    A multi-platform image becomes a Docker manifest list of every platform's Docker manifest
    (``index.json`` names it, so a containerd-backed ``docker load`` keeps every platform), and
    ``manifest.json`` — which the classic ``docker load`` reads, one image per entry — names one
    image, as containerd's exporter writes it: the host's platform when the list has it, else the
    first."""
    names = list(image.names if names is None else names)
    parts = list(image.images) if isinstance(image, ExportedIndex) else [(None, image)]
    written: list[tuple[PlatformSpec | None, ExportedImage, dict[str, Any], bytes, oci.Descriptor]] = []
    for plat, img in parts:
        manifest = docker_manifest(img)
        data = oci.canonical_json(manifest)
        written.append((plat, img, manifest, data, oci.Descriptor.of(oci.DOCKER_MANIFEST, data)))
    top_bytes: bytes | None = None
    desc = written[0][4]
    if isinstance(image, ExportedIndex):
        top_bytes = oci.canonical_json(
            index_object([(p, d) for p, _, _, _, d in written if p is not None], oci.DOCKER_MANIFEST_LIST))
        desc = oci.Descriptor.of(oci.DOCKER_MANIFEST_LIST, top_bytes)
    host = PlatformSpec.default()
    chosen = next((w for w in written if w[0] is not None and host.matches(w[0])), written[0])
    load_manifest = [{
        "Config": blob_path(chosen[1].config_digest),
        "RepoTags": [parse_reference(n).familiar() for n in names if parse_reference(n).tag],
        "Layers": [blob_path(la["digest"]) for la in chosen[2]["layers"]],
    }]
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": index_entries(desc, names)}

    def fill(w: ArchiveWriter) -> None:
        w.dir("blobs/sha256")
        done: set[str] = set()
        for _, img, _, data, d in written:
            for la in img.layers:
                if la.digest not in done:
                    done.add(la.digest)
                    w.blob(client, blob_path(la.digest), la.digest, la.size)
            for digest, blob in ((img.config_digest, img.config_bytes), (d.digest, data)):
                if digest not in done:
                    done.add(digest)
                    w.bytes(blob_path(digest), blob)
        if top_bytes is not None:
            w.bytes(blob_path(desc.digest), top_bytes)
        w.bytes("index.json", oci.canonical_json(index))
        w.bytes("manifest.json", json.dumps(load_manifest, separators=(",", ":")).encode())
        w.bytes("oci-layout", json.dumps({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}).encode())

    write_archive(dest, fill, mtime=source_date_epoch or 0)
    return desc.digest
