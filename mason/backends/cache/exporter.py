"""Exporting a finished solve as a remote cache: the records of its vertices (one per vertex
output whose result has layers) and their layer blobs, written to an OCI layout directory or a
registry repository as a cache manifest (or index).

* ``mode=min`` keeps the records whose result is a bottom part of the final result's layers —
  what the final image needs (its own steps; a builder stage's steps are left out);
  ``mode=max`` keeps every vertex with a result.
* ``compression=zstd|uncompressed`` converts the layer blobs (:mod:`.compress`); the records
  name the converted blobs, which an import unpacks as they are.
* Layers are resolved with the image's ``SOURCE_DATE_EPOCH``, so the cache's blobs are the
  image's own and a build from the cache gives the same image digest.
* A layer that is an imported cache's and not in the content store is streamed from that
  cache (or mounted across repositories on the same registry), never unpacked.

A local layout is safe to share between concurrent exporters: blobs are written to a temporary
name and renamed; ``index.json`` is rewritten under an exclusive ``flock`` of
``index.json.lock`` and replaced atomically, keeping every other tag's entry."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mason.backends import oci
from mason.backends.cache.format import (
    BlobInfo,
    CacheConfig,
    CacheLayer,
    CacheRecord,
    build_carrier,
    record_digest,
)
from mason.backends.cache.spec import CacheSpec
from mason.backends.containerd.client import Client
from mason.backends.exporters.layer import KnownLayer, resolve_layer
from mason.ir.errors import MasonError

# the solver's view of a vertex (mason.backends.solver.solver.SolvedVertex): digest, key, kind,
# outputs (Results), inputs ((vertex digest, index)…), export (metadata allows it)
SKIPPED_KINDS = ("source", "config")  # a source is loaded, not cached; a config op has no files


@dataclass
class Collected:
    """A cache ready to write: its config and, per blob digest, where its bytes come from."""

    config: CacheConfig
    blobs: dict[str, BlobInfo] = field(default_factory=dict)
    readers: dict[str, Callable[[], Iterator[bytes]]] = field(default_factory=dict)
    remote: dict[str, Any] = field(default_factory=dict)  # digest -> RemoteBlob (mount_repos)


def output_key(key: str, index: int) -> str:
    from mason.backends.solver.cachekey import output_key as ok

    return ok(key, index)


def collect(client: Client, vertices: Sequence[Any], finals: Sequence[Any], *, mode: str = "min",
            source_date_epoch: int | None = None, mounts: Iterable[tuple[str, Any]] = (),
            compression: str = "gzip") -> Collected:
    """The cache of a solve: ``vertices`` (SolvedVertex, inputs first), ``finals`` the results
    the build exports, one per platform (for ``mode=min``). ``mounts``: (cache id, Layer already in the content store)
    for ``cache-mounts=true``. ``compression``: ``zstd`` / ``uncompressed`` convert the layer blobs
    that differ (:mod:`.compress`); ``gzip`` (the default) takes every blob as it is."""
    from mason.backends.cache.compress import convert

    cfg = CacheConfig()
    out = Collected(cfg)
    layer_index: dict[tuple[str, int], int] = {}
    resolved: dict[tuple[str, ...], BlobInfo] = {}

    def add_blob(media_type: str, digest: str, size: int, diff_id: str, read: Callable[[], Iterator[bytes]],
                 remote: Any = None) -> BlobInfo:
        mt, new, n = media_type, digest, size
        if compression != "gzip":  # the default keeps every blob as it is (mason's own are gzip)
            mt, new, n = convert(client, media_type, digest, size, diff_id, read, compression)
        if new not in out.blobs:
            out.blobs[new] = BlobInfo(mt, new, n, diff_id)
            if new == digest:
                out.readers[new] = read
                if remote is not None:
                    out.remote[new] = remote
            else:
                out.readers[new] = _content_reader(client, new)
        return out.blobs[new]

    def resolve(item: Any) -> BlobInfo:
        k = _item_key(item)
        if k not in resolved:
            la = resolve_layer(client, item, source_date_epoch=source_date_epoch, fetch_remote=False)
            src = item.source if isinstance(item, KnownLayer) else None
            resolved[k] = add_blob(la.media_type, la.digest, la.size, la.diff_id, _reader(client, item, la.digest),
                                   src)
        return resolved[k]

    def add_chain(chain: Sequence[Any]) -> int:
        parent = -1
        for item in chain:
            b = resolve(item)
            k = (b.digest, parent)
            if k not in layer_index:
                layer_index[k] = len(cfg.layers)
                cfg.layers.append(CacheLayer(b.digest, parent))
            parent = layer_index[k]
        return parent

    final_chains = [tuple(f.chain) for f in finals]
    rec_index: dict[tuple[str, int], int] = {}
    keys = {v.digest: v.key for v in vertices}

    def root(x: tuple[str, int]) -> int:
        """A record without results for an input that has none of its own (a source, a step
        left out): BuildKit refuses a record with an empty input (``invalid empty input``)."""
        if x not in rec_index:
            k = keys.get(x[0]) or "vertex:" + x[0]
            rec_index[x] = len(cfg.records)
            cfg.records.append(CacheRecord(record_digest(output_key(k, x[1]))))
        return rec_index[x]
    for v in vertices:
        if not v.export or not v.key or v.kind in SKIPPED_KINDS:
            continue
        for i, res in enumerate(v.outputs):
            if not res.chain:
                continue  # the empty filesystem: nothing to fetch, and cheap to make
            chain = tuple(res.chain)
            if mode == "min" and not any(chain == fc[:len(chain)] for fc in final_chains):
                continue  # not a bottom part of a final image
            top = add_chain(res.chain)
            inputs = tuple((rec_index[x] if x in rec_index else root(x),) for x in v.inputs)
            rec_index[(v.digest, i)] = len(cfg.records)
            cfg.records.append(CacheRecord(record_digest(output_key(v.key, i)), (top,), inputs))
    for cache_id, la in mounts:
        from mason.backends.cache.format import CacheMountEntry

        b = add_blob(la.media_type, la.digest, la.size, la.diff_id, _content_reader(client, la.digest))
        k = (b.digest, -1)
        if k not in layer_index:
            layer_index[k] = len(cfg.layers)
            cfg.layers.append(CacheLayer(b.digest, -1))
        cfg.mounts.append(CacheMountEntry(cache_id, layer_index[k]))
    return out


def _item_key(item: Any) -> tuple[str, ...]:
    if isinstance(item, KnownLayer):
        return ("layer", item.layer.digest)
    return ("diff", item.lower or "", item.upper)


def _content_reader(client: Client, digest: str) -> Callable[[], Iterator[bytes]]:
    return lambda: client.read_blob_chunks(digest)


def _reader(client: Client, item: Any, digest: str) -> Callable[[], Iterator[bytes]]:
    def read() -> Iterator[bytes]:
        if isinstance(item, KnownLayer) and item.source is not None and not client.content_exists(digest):
            return item.source.stream()
        return client.read_blob_chunks(digest)
    return read


def blob_list(c: Collected) -> list[BlobInfo]:
    """The blobs in layer order, each once."""
    seen: dict[str, BlobInfo] = {}
    for la in c.config.layers:
        seen.setdefault(la.blob, c.blobs[la.blob])
    return list(seen.values())


# -- writers ----------------------------------------------------------------------------------

def write_local(c: Collected, spec: CacheSpec) -> str:
    """Write the cache into the OCI layout at ``spec.path`` under ``spec.tag``; returns the
    carrier's digest."""
    assert spec.path is not None
    root = os.path.abspath(spec.path)
    blobs_dir = os.path.join(root, "blobs", "sha256")
    try:
        os.makedirs(blobs_dir, exist_ok=True)
        if not os.path.exists(os.path.join(root, "oci-layout")):
            _atomic_write(os.path.join(root, "oci-layout"),
                          json.dumps({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}).encode())
        blobs = blob_list(c)
        for b in blobs:
            _write_blob(blobs_dir, b.digest, c.readers[b.digest]())
        config = c.config.to_bytes()
        _write_blob(blobs_dir, oci.sha256_digest(config), iter([config]))
        carrier, mt = build_carrier(config, blobs, image_manifest=spec.image_manifest,
                                    oci_mediatypes=spec.oci_mediatypes)
        digest = oci.sha256_digest(carrier)
        _write_blob(blobs_dir, digest, iter([carrier]))
        _update_index(root, {"mediaType": mt, "digest": digest, "size": len(carrier),
                             "annotations": {oci.ANNOTATION_REF_NAME: spec.tag}}, spec.tag)
    except OSError as e:
        raise MasonError(f"cannot write cache to {spec.path}: {e.strerror or e}") from None
    return digest


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_blob(blobs_dir: str, digest: str, chunks: Iterator[bytes]) -> None:
    path = os.path.join(blobs_dir, digest.split(":", 1)[1])
    if os.path.isfile(path):
        return
    fd, tmp = tempfile.mkstemp(dir=blobs_dir, prefix=".tmp-")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                h.update(chunk)
                f.write(chunk)
        if "sha256:" + h.hexdigest() != digest:
            raise MasonError(f"blob {digest} read back as sha256:{h.hexdigest()}: not written to the cache")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _update_index(root: str, desc: dict[str, Any], tag: str) -> None:
    lock = os.open(os.path.join(root, "index.json.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(root, "index.json")
        manifests: list[Any] = []
        try:
            with open(path, "rb") as f:
                old = json.load(f)
            if isinstance(old, dict) and isinstance(old.get("manifests"), list):
                manifests = [m for m in old["manifests"]
                             if not (isinstance(m, dict)
                                     and (m.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) == tag)]
        except FileNotFoundError:
            pass
        except ValueError:
            raise MasonError(f"cannot write cache to {root}: its index.json is not valid JSON") from None
        manifests.append(desc)
        _atomic_write(path, oci.canonical_json({"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                                                "manifests": manifests}))
    finally:
        os.close(lock)


def write_registry(c: Collected, spec: CacheSpec, registry: Any) -> str:
    """Push the cache to ``spec.ref``: blobs (mounted from the repositories they came from
    when on the same registry), the config, then the carrier by tag. Returns its digest."""
    from mason.ir.reference import parse_reference

    assert spec.ref is not None
    ref = parse_reference(spec.ref)
    blobs = blob_list(c)
    for b in blobs:
        loc = c.remote.get(b.digest)
        mounts = loc.mount_repos(ref.domain) if loc is not None else []
        registry.push_blob(ref, oci.Descriptor(b.media_type, b.digest, b.size), c.readers[b.digest], mounts)
    config = c.config.to_bytes()
    from mason.backends.cache.format import CACHE_CONFIG

    registry.push_blob(ref, oci.Descriptor.of(CACHE_CONFIG, config), config)
    carrier, mt = build_carrier(config, blobs, image_manifest=spec.image_manifest,
                                oci_mediatypes=spec.oci_mediatypes)
    registry.push_manifest(ref, carrier, mt)
    return oci.sha256_digest(carrier)


__all__ = ["Collected", "collect", "write_local", "write_registry"]
