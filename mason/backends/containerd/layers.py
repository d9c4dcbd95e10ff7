"""Layers in and out of snapshots: import a layer blob as a committed snapshot (content
write → Snapshots.Prepare → Diff.Apply → Snapshots.Commit under its chain ID), and diff a
snapshot against its parent into a new layer blob (Snapshots.View + Mounts → Diff.Diff)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from mason.backends.containerd.client import (
    LAYER_MEDIA_TYPE,
    LAYER_MEDIA_TYPE_UNCOMPRESSED,
    UNCOMPRESSED,
    Client,
    Descriptor,
    NotFound,
)

GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.overlayfs"


def chain_id(parent: str | None, diff_id: str) -> str:
    """OCI chain ID: ``ChainID(L0) = DiffID(L0)``; ``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))``."""
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ImportedLayer:
    blob: Descriptor  # the layer as stored in the content store
    diff_id: str  # digest of the uncompressed tar
    chain_id: str  # the committed snapshot's name


def import_layer(client: Client, data: bytes, *, parent: str | None = None, compressed: bool | None = None,
                 labels: Mapping[str, str] | None = None) -> ImportedLayer:
    """Store a layer tar (gzip or plain; detected unless ``compressed`` says) and unpack it onto
    ``parent`` (a committed snapshot, e.g. a previous import's ``chain_id``). Idempotent: a
    snapshot that already exists under the chain ID is reused. Run it inside a lease."""
    if compressed is None:
        compressed = data[:2] == b"\x1f\x8b"
    raw = gzip.decompress(data) if compressed else data
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    media_type = LAYER_MEDIA_TYPE if compressed else LAYER_MEDIA_TYPE_UNCOMPRESSED
    info = client.write_blob(data, labels={UNCOMPRESSED: diff_id})
    blob = Descriptor(media_type, info.digest, info.size)
    name = chain_id(parent, diff_id)
    if client.snapshot_exists(name):
        return ImportedLayer(blob, diff_id, name)
    key = f"mason-extract-{uuid.uuid4().hex[:16]} {name}"
    mounts = client.prepare(key, parent or "")
    try:
        client.apply(blob, mounts)
        client.commit(name, key, labels)
    except BaseException:
        with contextlib.suppress(NotFound):
            client.remove_snapshot(key)
        raise
    return ImportedLayer(blob, diff_id, name)


def diff_snapshot(client: Client, name: str, *, media_type: str = LAYER_MEDIA_TYPE,
                  labels: Mapping[str, str] | None = None) -> Descriptor:
    """The layer that turns ``name``'s parent into the committed snapshot ``name``, written to
    the content store. Run it inside a lease (the blob is only kept by the lease or labels)."""
    info = client.stat_snapshot(name)
    tag = uuid.uuid4().hex[:16]
    upper_key, lower_key = f"mason-diff-upper-{tag}", f"mason-diff-lower-{tag}"
    try:
        upper = client.view(upper_key, name)
        lower = client.view(lower_key, info.parent) if info.parent else []
        return client.diff(lower, upper, media_type=media_type, labels=labels)
    finally:
        for k in (upper_key, lower_key):
            with contextlib.suppress(NotFound):
                client.remove_snapshot(k)
