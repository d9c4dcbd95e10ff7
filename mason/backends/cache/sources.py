"""Where an imported cache comes from: a registry repository (a cache manifest or index, or an
image whose config carries an inline cache) or a local OCI layout. Each source reads the carrier
and the config up front — small JSON documents — and streams layer blobs only when asked
(:meth:`CacheSource.stream`), verified: the last chunk is handed out only after the digest and
size checked out, so containerd never commits a corrupt blob."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mason.backends import oci
from mason.backends.cache.format import (
    INLINE_KEY,
    BlobInfo,
    CacheConfig,
    CacheFormatError,
    blobs_of,
    decode_inline,
    merge_configs,
    parse_carrier,
    parse_config,
)
from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference
from mason.ir.resolver import PlatformSpec

MAX_JSON = 64 << 20
CHUNK = 1 << 20


@dataclass
class Loaded:
    """An imported cache: its config, its blobs by digest, and how it was found (``kind``:
    ``manifest``, ``index`` or ``inline``)."""

    config: CacheConfig
    blobs: dict[str, BlobInfo]
    kind: str
    digest: str  # of the carrier (manifest / index) or the image


class CacheSource(Protocol):
    name: str

    def load(self) -> Loaded: ...

    def stream(self, blob: BlobInfo) -> Iterator[bytes]: ...

    def mount_repos(self, domain: str) -> list[str]:
        """Repositories on registry ``domain`` that hold this cache's blobs (cross-repo mounts)."""


class RegistrySource:
    """A cache in a registry repository: ``ref`` names a cache manifest / index, or an image
    (the inline cache in its config; for a multi-platform index, every platform's, merged)."""

    def __init__(self, registry: Any, ref: str, platform: PlatformSpec | None = None):
        self.registry = registry
        self.ref: Reference = parse_reference(ref)
        self.name = ref
        self.platform = platform

    def load(self) -> Loaded:
        root = self.registry.get_manifest(self.ref)
        carrier = parse_carrier(root.data, root.media_type)
        if carrier is not None:
            data = self.registry.fetch_blob_bytes(self.ref, carrier.config, MAX_JSON)
            kind = "index" if oci.is_index(root.media_type) else "manifest"
            return Loaded(parse_config(data), dict(carrier.blobs), kind, root.digest)
        if not root.is_index:
            config, blobs = self._inline(root)
            return Loaded(config, blobs, "inline", root.digest)
        # a multi-platform image: every platform's image carries its own records (their keys
        # differ by platform), so all of them are read and merged (configs and manifests only)
        configs, blobs, errors = [], {}, []
        for child in root.children():
            if not oci.is_manifest(child.media_type) or (child.annotations or {}).get(
                    "vnd.docker.reference.type") == "attestation-manifest":
                continue
            manifest = self.registry.get_manifest(self.ref, child.digest)
            try:
                config, b = self._inline(manifest)
            except CacheNotFound as e:
                errors.append(e)
                continue
            configs.append(config)
            blobs.update(b)
        if not configs:
            raise errors[0] if errors else CacheNotFound(f"{self.name} is an index without images")
        return Loaded(merge_configs(configs), blobs, "inline", root.digest)

    def _inline(self, manifest: Any) -> tuple[CacheConfig, dict[str, BlobInfo]]:
        _, cfg = self.registry.get_config(self.ref, manifest)
        if INLINE_KEY not in cfg:
            raise CacheNotFound(f"{self.name} is an image without an inline cache (build it with "
                                "--cache-to type=inline), not a cache manifest")
        config = decode_inline(cfg[INLINE_KEY])
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list):
            raise CacheFormatError(f"image {self.name}: rootfs.diff_ids is not a list")
        return config, blobs_of(manifest.json.get("layers") or [], diff_ids)

    def stream(self, blob: BlobInfo) -> Iterator[bytes]:
        return self.registry.stream_blob(self.ref, oci.Descriptor(blob.media_type, blob.digest, blob.size))

    def mount_repos(self, domain: str) -> list[str]:
        return [self.ref.path] if domain == self.ref.domain else []


class LocalSource:
    """A cache in an OCI layout directory (``type=local,src=DIR``), by tag or digest."""

    def __init__(self, path: str, tag: str = "latest", digest: str | None = None):
        self.layout = oci.OciLayout(path)
        self.tag, self.digest = tag, digest
        self.name = f"local:{path}" + (f"@{digest}" if digest else (f":{tag}" if tag != "latest" else ""))

    def _root(self) -> oci.Descriptor:
        if not (self.layout.root / "index.json").is_file():
            raise CacheNotFound(f"{self.name}: no cache there ({self.layout.root}/index.json does not exist)")
        try:
            descs = self.layout.descriptors()
        except ValueError:
            raise CacheFormatError(f"{self.name}: index.json is not valid JSON") from None
        for d in descs:
            if self.digest is not None and d.digest == self.digest:
                return d
            if self.digest is None and d.annotations.get(oci.ANNOTATION_REF_NAME) == self.tag:
                return d
        raise CacheNotFound(f"{self.name}: the layout has no cache tagged {self.digest or self.tag!r}")

    def load(self) -> Loaded:
        root = self._root()
        data = self.layout.read_blob(root.digest)
        carrier = parse_carrier(data, root.media_type)
        if carrier is None:
            raise CacheFormatError(f"{self.name}: {root.digest} is not a cache manifest")
        cfg = parse_config(self.layout.read_blob(carrier.config.digest))
        kind = "index" if oci.is_index(root.media_type or oci.detect_manifest_type(json.loads(data))) else "manifest"
        return Loaded(cfg, dict(carrier.blobs), kind, root.digest)

    def stream(self, blob: BlobInfo) -> Iterator[bytes]:
        path = self.layout.blob_path(blob.digest)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise MasonError(f"{self.name}: blob {blob.digest} is missing") from None
        return verified(_read(f), blob, self.name)

    def mount_repos(self, domain: str) -> list[str]:
        return []


def _read(f) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def verified(chunks: Iterator[bytes], blob: BlobInfo, where: str) -> Iterator[bytes]:
    """``chunks`` checked against ``blob``'s size and digest, the last one held back until
    both are right."""
    h = hashlib.sha256()
    n = 0
    held: bytes | None = None
    for c in chunks:
        n += len(c)
        if n > blob.size:
            raise MasonError(f"digest mismatch for blob {blob.digest} of {where}: larger than {blob.size} bytes")
        h.update(c)
        if held is not None:
            yield held
        held = c
    if n != blob.size or "sha256:" + h.hexdigest() != blob.digest:
        raise MasonError(f"digest mismatch for blob {blob.digest} of {where}: content is sha256:{h.hexdigest()}")
    if held is not None:
        yield held


class CacheNotFound(MasonError):
    """The ref names no cache (missing, or an image without an inline cache)."""


__all__ = ["CacheNotFound", "CacheSource", "LocalSource", "Loaded", "RegistrySource", "verified"]
