"""The cache's wire format: BuildKit's cache config (``application/vnd.buildkit.cacheconfig.v0``)
and the manifest or index that carries it with the layer blobs.

The config (JSON)::

    {"layers":  [{"blob": "sha256:…", "parent": -1}, {"blob": "sha256:…", "parent": 0}, …],
     "records": [{"digest": "sha256:…", "layers": [{"layer": 1}], "inputs": [[{"link": 0}], …]}, …],
     "mason":   {"version": 1, "mounts": [{"id": "…", "layer": 2}]}}

* ``layers`` form chains through ``parent`` (-1: the bottom layer): a result's filesystem is its
  layer's chain, bottom first.
* ``records``: one per cached vertex output. ``digest`` names it — for mason,
  :func:`record_digest` of mason's output key (the key already covers the op, its inputs' keys
  and the content it reads); ``layers`` the result; ``inputs`` (per op input, alternatives) link
  to the records of the inputs — the key chain, as BuildKit writes it (mason does not need the
  links to look a key up, since its keys are Merkle keys; they document the graph).
* ``mason`` (ignored by BuildKit, whose JSON decoding skips unknown fields): the format version
  and the cache mounts exported with ``cache-mounts=true`` (their contents as a layer each).
  A config without it was written by BuildKit: its record digests come from BuildKit's own key
  scheme, which mason's keys never equal (``docs/remote-cache.md``).

The carrier is either an OCI image manifest whose ``config`` is the cache config and whose
``layers`` are the blobs (BuildKit's ``image-manifest=true``), or an index (OCI or Docker list)
listing the blobs and, last, the config (``image-manifest=false``). Layer descriptors carry the
diff ID as ``containerd.io/uncompressed``. The inline form is the config, base64, under the image
config key ``moby.buildkit.cache.v0``, its layers being the image's own.

Every decoder here validates what it reads (types, indexes in range, parent chains without
cycles, digests well formed) and raises :class:`CacheFormatError` (a MasonError) otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mason.backends import oci
from mason.ir.errors import MasonError

CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
INLINE_KEY = "moby.buildkit.cache.v0"
UNCOMPRESSED = "containerd.io/uncompressed"
CREATED_AT = "buildkit/createdat"
VERSION = 1
MAX_CONFIG = 64 << 20
MAX_RECORDS = 1 << 20

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class CacheFormatError(MasonError):
    """A cache manifest or config that is not what the format says."""


def record_digest(output_key: str) -> str:
    """The record digest of a mason output key (``<cache key>/<index>``)."""
    return "sha256:" + hashlib.sha256(b"mason.remotecache.v1\0" + output_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheLayer:
    blob: str
    parent: int = -1


@dataclass(frozen=True, slots=True)
class CacheRecord:
    digest: str
    results: tuple[int, ...] = ()  # layer indexes (one per result; mason writes one)
    inputs: tuple[tuple[int, ...], ...] = ()  # per input: the linked record indexes
    selectors: tuple[tuple[str, ...], ...] = field(default=(), compare=False)  # BuildKit's, kept for display


@dataclass(frozen=True, slots=True)
class CacheMountEntry:
    id: str
    layer: int  # index into layers (a chain of one)


@dataclass
class CacheConfig:
    layers: list[CacheLayer] = field(default_factory=list)
    records: list[CacheRecord] = field(default_factory=list)
    mounts: list[CacheMountEntry] = field(default_factory=list)
    mason: bool = True  # written by mason (False: by BuildKit, or another writer)

    def chain(self, layer: int) -> list[str]:
        """The blobs of layer ``layer``'s chain, bottom first."""
        out: list[str] = []
        i = layer
        while i >= 0:
            out.append(self.layers[i].blob)
            i = self.layers[i].parent
        out.reverse()
        return out

    def to_json(self) -> dict[str, Any]:
        recs = []
        for r in self.records:
            d: dict[str, Any] = {"digest": r.digest}
            if r.results:
                d["layers"] = [{"layer": i} for i in r.results]
            if r.inputs:
                d["inputs"] = [[{"link": i} for i in alts] for alts in r.inputs]
            recs.append(d)
        out: dict[str, Any] = {"layers": [{"blob": la.blob, "parent": la.parent} for la in self.layers],
                               "records": recs}
        if self.mason:
            m: dict[str, Any] = {"version": VERSION}
            if self.mounts:
                m["mounts"] = [{"id": e.id, "layer": e.layer} for e in self.mounts]
            out["mason"] = m
        return out

    def to_bytes(self) -> bytes:
        return oci.canonical_json(self.to_json())


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CacheFormatError(f"cache config: {what} is not an integer")
    return v


def _obj(v: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise CacheFormatError(f"cache config: {what} is not an object")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise CacheFormatError(f"cache config: {what} is not a list")
    return v


def _digest(v: Any, what: str) -> str:
    if not isinstance(v, str) or not _DIGEST.match(v):
        raise CacheFormatError(f"cache config: {what} is not a sha256 digest")
    return v


def parse_config(data: bytes | str | Mapping[str, Any]) -> CacheConfig:
    """Decode and validate a cache config (mason's or BuildKit's)."""
    if isinstance(data, (bytes, str)):
        if len(data) > MAX_CONFIG:
            raise CacheFormatError(f"cache config is larger than {MAX_CONFIG} bytes")
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise CacheFormatError("cache config is not valid JSON") from None
    else:
        obj = data
    top = _obj(obj, "the config")
    layers_raw = _list(top.get("layers"), "layers")
    records_raw = _list(top.get("records"), "records")
    if len(records_raw) > MAX_RECORDS or len(layers_raw) > MAX_RECORDS:
        raise CacheFormatError("cache config has too many records or layers")
    layers = []
    for i, la in enumerate(layers_raw):
        la = _obj(la, f"layer {i}")
        parent = _int(la.get("parent", -1), f"layer {i} parent")
        if parent < -1 or parent >= len(layers_raw) or parent == i:
            raise CacheFormatError(f"cache config: layer {i} has parent {parent}, out of range")
        layers.append(CacheLayer(_digest(la.get("blob"), f"layer {i} blob"), parent))
    _check_acyclic(layers)
    records = []
    for i, r in enumerate(records_raw):
        r = _obj(r, f"record {i}")
        results = []
        for j, res in enumerate(_list(r.get("layers"), f"record {i} layers")):
            li = _int(_obj(res, f"record {i} result {j}").get("layer"), f"record {i} result {j} layer")
            if not 0 <= li < len(layers):
                raise CacheFormatError(f"cache config: record {i} names layer {li}, out of range")
            results.append(li)
        inputs, selectors = [], []
        for j, alts in enumerate(_list(r.get("inputs"), f"record {i} inputs")):
            links, sels = [], []
            for k, inp in enumerate(_list(alts, f"record {i} input {j}")):
                inp = _obj(inp, f"record {i} input {j}.{k}")
                link = _int(inp.get("link"), f"record {i} input {j}.{k} link")
                if not 0 <= link < len(records_raw):
                    raise CacheFormatError(f"cache config: record {i} links record {link}, out of range")
                links.append(link)
                sel = inp.get("selector", "")
                sels.append(sel if isinstance(sel, str) else "")
            inputs.append(tuple(links))
            selectors.append(tuple(sels))
        records.append(CacheRecord(_digest(r.get("digest"), f"record {i} digest"), tuple(results), tuple(inputs),
                                   tuple(selectors)))
    mason_raw = top.get("mason")
    mounts = []
    if mason_raw is not None:
        m = _obj(mason_raw, "mason")
        version = _int(m.get("version"), "mason.version")
        if version != VERSION:
            raise CacheFormatError(f"cache config: mason format version {version} (this mason reads {VERSION})")
        for i, e in enumerate(_list(m.get("mounts"), "mason.mounts")):
            e = _obj(e, f"mount {i}")
            cid = e.get("id")
            if not isinstance(cid, str) or not cid or len(cid) > 4096:
                raise CacheFormatError(f"cache config: mount {i} has no valid id")
            li = _int(e.get("layer"), f"mount {i} layer")
            if not 0 <= li < len(layers) or layers[li].parent != -1:
                raise CacheFormatError(f"cache config: mount {i} names layer {li}, which is not a single layer")
            mounts.append(CacheMountEntry(cid, li))
    return CacheConfig(layers, records, mounts, mason=mason_raw is not None)


def _check_acyclic(layers: Sequence[CacheLayer]) -> None:
    state = [0] * len(layers)  # 0 unseen, 1 on the current path, 2 done
    for start in range(len(layers)):
        path = []
        i = start
        while i >= 0 and state[i] == 0:
            state[i] = 1
            path.append(i)
            i = layers[i].parent
        if i >= 0 and state[i] == 1:
            raise CacheFormatError(f"cache config: layer {i}'s parents form a cycle")
        for p in path:
            state[p] = 2


# -- the carrier: manifest or index -----------------------------------------------------------

@dataclass(frozen=True)
class BlobInfo:
    """A layer blob as the carrier describes it."""

    media_type: str
    digest: str
    size: int
    diff_id: str


def layer_descriptor(b: BlobInfo, created_at: str | None = None) -> dict[str, Any]:
    ann = {UNCOMPRESSED: b.diff_id}
    if created_at:
        ann[CREATED_AT] = created_at
    return {"mediaType": b.media_type, "digest": b.digest, "size": b.size, "annotations": ann}


def docker_media_type(media_type: str) -> str:
    """A layer media type in Docker's spelling (``oci-mediatypes=false``) where one exists."""
    return {oci.OCI_LAYER_GZIP: oci.DOCKER_LAYER_GZIP,
            oci.OCI_LAYER: "application/vnd.docker.image.rootfs.diff.tar"}.get(media_type, media_type)


def build_carrier(config: bytes, blobs: Sequence[BlobInfo], *, image_manifest: bool = True,
                  oci_mediatypes: bool = True) -> tuple[bytes, str]:
    """(bytes, media type) of the manifest (``image_manifest``) or index carrying ``config``
    and ``blobs``."""
    cdesc = {"mediaType": CACHE_CONFIG, "digest": oci.sha256_digest(config), "size": len(config)}
    descs = []
    for b in blobs:
        d = layer_descriptor(b)
        if not oci_mediatypes:
            d["mediaType"] = docker_media_type(d["mediaType"])
        descs.append(d)
    if image_manifest:
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": cdesc, "layers": descs}
    else:
        mt = oci.OCI_INDEX if oci_mediatypes else oci.DOCKER_MANIFEST_LIST
        obj = {"schemaVersion": 2, "mediaType": mt, "manifests": descs + [cdesc]}
    return oci.canonical_json(obj), obj["mediaType"]


@dataclass(frozen=True)
class Carrier:
    """What a manifest or index says: the config's descriptor and the blobs by digest."""

    config: oci.Descriptor
    blobs: Mapping[str, BlobInfo]


def parse_carrier(data: bytes, media_type: str = "") -> Carrier | None:
    """The cache carried by a manifest or index, or None when it carries none (an image's
    manifest: look for an inline cache in its config; an index of images)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CacheFormatError("cache manifest is not valid JSON") from None
    if not isinstance(obj, Mapping):
        raise CacheFormatError("cache manifest is not a JSON object")
    mt = media_type or oci.detect_manifest_type(obj)
    if oci.is_index(mt):
        entries = _list(obj.get("manifests"), "manifests")
        cfg = [e for e in entries if isinstance(e, Mapping) and e.get("mediaType") == CACHE_CONFIG]
        if not cfg:
            return None
        config = oci.Descriptor.from_json(cfg[0])
        layers = [e for e in entries if isinstance(e, Mapping) and e.get("mediaType") != CACHE_CONFIG]
    elif oci.is_manifest(mt):
        c = obj.get("config")
        if not isinstance(c, Mapping) or c.get("mediaType") != CACHE_CONFIG:
            return None
        config = oci.Descriptor.from_json(c)
        layers = _list(obj.get("layers"), "layers")
    else:
        raise CacheFormatError(f"unsupported cache manifest media type {mt!r}")
    return Carrier(config, blobs_of(layers))


def blobs_of(descs: Sequence[Any], diff_ids: Sequence[str] | None = None) -> dict[str, BlobInfo]:
    """Layer descriptors (JSON) → BlobInfo by digest; diff IDs from the annotations, else from
    ``diff_ids`` (an image config's ``rootfs.diff_ids``, same order)."""
    out: dict[str, BlobInfo] = {}
    for i, raw in enumerate(descs):
        d = oci.Descriptor.from_json(_obj(raw, f"layer descriptor {i}"))
        _digest(d.digest, f"layer descriptor {i} digest")
        diff = d.annotations.get(UNCOMPRESSED) or (diff_ids[i] if diff_ids is not None and i < len(diff_ids) else "")
        if not isinstance(diff, str) or not _DIGEST.match(diff):
            raise CacheFormatError(f"cache manifest: layer {d.digest} has no diff ID ({UNCOMPRESSED})")
        if d.size < 0:
            raise CacheFormatError(f"cache manifest: layer {d.digest} has a negative size")
        out[d.digest] = BlobInfo(d.media_type, d.digest, d.size, diff)
    return out


def merge_configs(configs: Sequence[CacheConfig]) -> CacheConfig:
    """One config holding every record, layer and mount of ``configs`` (the inline caches of a
    multi-platform image's manifests), indexes shifted; the first config's mounts win an id."""
    out = CacheConfig(mason=all(c.mason for c in configs))
    ids: set[str] = set()
    for c in configs:
        lo, ro = len(out.layers), len(out.records)
        out.layers.extend(CacheLayer(la.blob, la.parent + lo if la.parent >= 0 else -1) for la in c.layers)
        out.records.extend(CacheRecord(r.digest, tuple(i + lo for i in r.results),
                                       tuple(tuple(i + ro for i in alts) for alts in r.inputs), r.selectors)
                           for r in c.records)
        for m in c.mounts:
            if m.id not in ids:
                ids.add(m.id)
                out.mounts.append(CacheMountEntry(m.id, m.layer + lo))
    return out


def encode_inline(config: CacheConfig) -> str:
    return base64.b64encode(config.to_bytes()).decode("ascii")


def decode_inline(value: Any) -> CacheConfig:
    if not isinstance(value, str):
        raise CacheFormatError(f"image config key {INLINE_KEY} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CacheFormatError(f"image config key {INLINE_KEY} is not base64") from None
    return parse_config(raw)


__all__ = ["CACHE_CONFIG", "INLINE_KEY", "BlobInfo", "CacheConfig", "CacheFormatError", "CacheLayer",
           "CacheMountEntry", "CacheRecord", "Carrier", "blobs_of", "build_carrier", "decode_inline",
           "encode_inline", "merge_configs", "parse_carrier", "parse_config", "record_digest"]
