"""Layers of an exported image, computed lazily from the chain of a build result.

A chain is a sequence of :data:`LayerSource`: a :class:`KnownLayer` is a base-image layer that
passes through byte for byte (compressed digest, size, media type, diff ID); a
:class:`SnapshotDiff` is the change from one committed snapshot (``lower``; ``None`` = empty) to
another (``upper``), turned into a tar+gzip blob only when an image is exported (the solver
never waits for a diff; DESIGN.md "containerd").

:func:`resolve_layer` diffs through containerd's Diff service (an uncompressed tar, gzipped by
:mod:`.fastgzip`), or — with a
``SOURCE_DATE_EPOCH`` — writes the tar itself (:mod:`.difftar`), since containerd 1.6's Diff
cannot clamp timestamps. Either way the result is remembered as a label on the upper snapshot
(``mason.layer/<lower>`` or ``mason.layer.epoch-<N>/<lower>`` = JSON descriptor), together with
a ``containerd.io/gc.ref.content.…`` label so containerd's GC keeps the blob as long as the
snapshot: each diff is computed once.

Empty diffs stay layers, as in BuildKit (a RUN that changes nothing still has a non-empty
history entry, and the layer count must match it); their tar holds only the end-of-archive
blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED, Client, ContentInfo, NotFound, SnapshotInfo
from mason.backends.exporters._mount import mounted
from mason.backends.exporters.fastgzip import gzip_chunks
from mason.backends.sources.result import Layer
from mason.ir.errors import MasonError

__all__ = ["Layer", "KnownLayer", "SnapshotDiff", "LayerSource", "resolve_layer", "resolve_layer_at", "resolve_chain",
           "resolve_chain_at", "layer_cache_label"]

GC_REF_CONTENT = "containerd.io/gc.ref.content"


@dataclass(frozen=True, slots=True)
class KnownLayer:
    """A layer that already exists as a blob (a base image's, or a remote cache's): exported
    unchanged. ``source`` (a remote cache's blob locator, :class:`mason.backends.cache.importer.RemoteBlob`)
    says where to fetch the blob when it is not in the content store: ``fetch_into(client)``,
    ``stream()``, ``mount_repos(domain)``."""

    layer: Layer
    source: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """The change from committed snapshot ``lower`` (``None``: the empty tree) to ``upper``."""

    lower: str | None
    upper: str


LayerSource = Union[KnownLayer, SnapshotDiff]


def layer_cache_label(lower: str | None, source_date_epoch: int | None = None) -> str:
    """The label on the upper snapshot that remembers the layer from ``lower``."""
    space = "mason.layer" if source_date_epoch is None else f"mason.layer.epoch-{source_date_epoch}"
    return f"{space}/{lower or 'scratch'}"


def _gc_label(lower: str | None, source_date_epoch: int | None) -> str:
    tag = hashlib.sha256(f"{lower or ''}\0{source_date_epoch}".encode()).hexdigest()[:16]
    return f"{GC_REF_CONTENT}.mason.layer.{tag}"


def _remembered(upper_labels: Mapping[str, str], key: str) -> Layer | None:
    raw = upper_labels.get(key)
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return Layer(d["mediaType"], d["digest"], int(d["size"]), d["diffID"])
    except (ValueError, KeyError, TypeError):
        return None


def _cached(client: Client, upper_labels: Mapping[str, str], key: str,
            known: Mapping[str, ContentInfo]) -> Layer | None:
    layer = _remembered(upper_labels, key)
    if layer is None:
        return None
    return layer if layer.digest in known or client.content_exists(layer.digest) else None


@contextlib.contextmanager
def viewed(client: Client, snapshot: str | None):
    """A read-only mount of committed ``snapshot`` (None: an empty directory)."""
    if snapshot is None:
        with mounted([]) as path:
            yield path
        return
    key = f"mason-export-view-{uuid.uuid4().hex[:16]}"
    mounts = client.view(key, snapshot)
    try:
        with mounted(mounts) as path:
            yield path
    finally:
        with contextlib.suppress(NotFound):
            client.remove_snapshot(key)


def _diff_by_containerd(client: Client, src: SnapshotDiff) -> Layer:
    """containerd's Diff writes the uncompressed tar (its digest is the diff ID); mason gzips
    it (:mod:`.fastgzip`: in parallel blocks, incompressible data stored) — Diff's own gzip
    costs ~12 s for 200 MB of random data here, this ~1 s. The tar blob stays in the build's
    lease, garbage once the build ends (unless an image uses it)."""
    tag = uuid.uuid4().hex[:16]
    upper_key, lower_key = f"mason-export-upper-{tag}", f"mason-export-lower-{tag}"
    try:
        upper = client.view(upper_key, src.upper)
        lower = client.view(lower_key, src.lower) if src.lower else []
        tar = client.diff(lower, upper, media_type=oci.OCI_LAYER)
    finally:
        for k in (upper_key, lower_key):
            with contextlib.suppress(NotFound):
                client.remove_snapshot(k)
    fd, tmp = tempfile.mkstemp(prefix="mason-layer-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as out:
            diff_id, digest, size = gzip_chunks(client.read_blob_chunks(tar.digest), out)
        if diff_id != tar.digest:
            raise MasonError(f"containerd's diff of {src.upper} read back as {diff_id}, not {tar.digest}")
        client.write_blob(_file_chunks(tmp), digest=digest, size=size, labels={UNCOMPRESSED: diff_id})
    finally:
        os.unlink(tmp)
    return Layer(oci.OCI_LAYER_GZIP, digest, size, diff_id)


def _diff_by_mason(client: Client, src: SnapshotDiff, epoch: int | None) -> Layer:
    fd, tmp = tempfile.mkstemp(prefix="mason-layer-", suffix=".tar.gz")
    try:
        with os.fdopen(fd, "wb") as out, viewed(client, src.lower) as lower, viewed(client, src.upper) as upper:
            from mason.backends.exporters.difftar import write_gzip_diff  # tarfile: only to write a layer

            diff_id, digest, size = write_gzip_diff(lower, upper, out, epoch=epoch)
        client.write_blob(_file_chunks(tmp), digest=digest, size=size, labels={UNCOMPRESSED: diff_id})
    finally:
        os.unlink(tmp)
    return Layer(oci.OCI_LAYER_GZIP, digest, size, diff_id)


def resolve_layer(client: Client, src: LayerSource, *, source_date_epoch: int | None = None,
                  fetch_remote: bool = True) -> Layer:
    """The layer blob for ``src`` (see :func:`resolve_layer_at`)."""
    return resolve_layer_at(client, src, source_date_epoch=source_date_epoch, fetch_remote=fetch_remote)[0]


def resolve_layer_at(client: Client, src: LayerSource, *, source_date_epoch: int | None = None,
                     fetch_remote: bool = True, snapshots: Mapping[str, SnapshotInfo] | None = None,
                     blobs: Mapping[str, ContentInfo] | None = None) -> tuple[Layer, int | None]:
    """The layer blob for ``src``, in the content store, and when the layer was made (ns since
    1970; None: unknown) — BuildKit's time of the layer's cache record: for a
    :class:`SnapshotDiff` when its upper snapshot was committed, for a :class:`KnownLayer` when
    its blob came into the content store. The same cached layer gives the same time on every
    build, so a rebuild that reruns nothing writes the same image. A :class:`SnapshotDiff` is computed
    once per (lower, upper, epoch) and remembered on the upper snapshot. Call it with a client
    bound to a lease: the blob is held by that lease until the upper snapshot's label holds it.
    A :class:`KnownLayer` from a remote cache is fetched into the content store when missing —
    unless ``fetch_remote`` is false (an image that is only pushed: its blobs are mounted or
    streamed from the cache at push time), when its descriptor is all that is needed.
    ``snapshots`` and ``blobs``: what is known to exist already (:func:`resolve_chain_at` asks
    for a whole chain at once); anything not in them is looked up."""
    blobs = blobs or {}
    if isinstance(src, KnownLayer):
        layer = src.layer
        try:
            info = blobs.get(layer.digest) or client.content_info(layer.digest)
        except NotFound:
            if src.source is None:
                raise MasonError(f"base layer {layer.digest} is not in containerd's content store") from None
            if not fetch_remote:
                return layer, None
            src.source.fetch_into(client)
            info = client.content_info(layer.digest)
        if info.labels.get(UNCOMPRESSED) != layer.diff_id and layer.diff_id:
            client.update_content_labels(layer.digest, {UNCOMPRESSED: layer.diff_id})
        return layer, info.created_ns or None
    if not isinstance(src, SnapshotDiff):
        raise TypeError(f"not a layer source: {src!r}")
    key = layer_cache_label(src.lower, source_date_epoch)
    try:
        upper = (snapshots or {}).get(src.upper) or client.stat_snapshot(src.upper)
    except NotFound:
        raise MasonError(f"snapshot {src.upper} is gone: cannot compute its layer") from None
    made = upper.created_ns or None
    hit = _cached(client, upper.labels, key, blobs)
    if hit is not None:
        return hit, made
    if source_date_epoch is None:
        layer = _diff_by_containerd(client, src)
    else:
        layer = _diff_by_mason(client, src, source_date_epoch)
    value = json.dumps({"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size,
                        "diffID": layer.diff_id}, sort_keys=True, separators=(",", ":"))
    client.update_snapshot_labels(src.upper, {key: value, _gc_label(src.lower, source_date_epoch): layer.digest})
    return layer, made


def resolve_chain(client: Client, chain, *, source_date_epoch: int | None = None,
                  fetch_remote: bool = True) -> list[Layer]:
    return [la for la, _ in resolve_chain_at(client, chain, source_date_epoch=source_date_epoch,
                                             fetch_remote=fetch_remote)]


def resolve_chain_at(client: Client, chain: Sequence[LayerSource], *, source_date_epoch: int | None = None,
                     fetch_remote: bool = True) -> list[tuple[Layer, int | None]]:
    """:func:`resolve_layer_at` of every layer of ``chain``, asking containerd about the
    chain's snapshots and the blobs they remember in two round trips, not two per layer (a
    rebuild that reruns nothing needs no more)."""
    key = layer_cache_label
    snapshots = client.snapshot_infos(s.upper for s in chain if isinstance(s, SnapshotDiff))
    digests = [s.layer.digest for s in chain if isinstance(s, KnownLayer)]
    for s in chain:
        if isinstance(s, SnapshotDiff) and s.upper in snapshots:
            la = _remembered(snapshots[s.upper].labels, key(s.lower, source_date_epoch))
            if la is not None:
                digests.append(la.digest)
    blobs = client.content_infos(digests)
    return [resolve_layer_at(client, s, source_date_epoch=source_date_epoch, fetch_remote=fetch_remote,
                             snapshots=snapshots, blobs=blobs) for s in chain]


def _file_chunks(path: str):
    from mason.backends.exporters.difftar import file_chunks

    return file_chunks(path)
