"""OCI facts shared by sources and exporters: media types, descriptors, digests, and the
OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec, choose_platform

# Media types (OCI image-spec and Docker's schema2).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# What a client accepts when asking for a manifest, preferred first.
MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT_VERSION = "1.0.0"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact, key-ordered JSON: the same object always gives the same bytes (and digest)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def detect_manifest_type(data: bytes | Mapping[str, Any]) -> str:
    """The media type of a manifest or index from its own ``mediaType`` field, or from its shape
    (``manifests`` → index, ``config`` → manifest) when the field is absent (plain OCI)."""
    obj = json.loads(data) if isinstance(data, (bytes, bytearray)) else data
    if not isinstance(obj, Mapping):
        raise MasonError("not an image manifest: the JSON is not an object")
    mt = obj.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if obj.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1
    if "manifests" in obj:
        return OCI_INDEX
    if "config" in obj:
        return OCI_MANIFEST
    raise MasonError("not an image manifest: neither 'manifests' nor 'config' present")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: PlatformSpec | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, media_type: str, data: bytes, **kw: Any) -> "Descriptor":
        return cls(media_type, sha256_digest(data), len(data), **kw)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Descriptor":
        try:
            plat = obj.get("platform")
            return cls(
                media_type=str(obj.get("mediaType", "")),
                digest=str(obj["digest"]),
                size=int(obj["size"]),
                platform=PlatformSpec.from_json(plat) if isinstance(plat, Mapping) else None,
                annotations=dict(obj.get("annotations") or {}),
                urls=tuple(obj.get("urls") or ()),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise MasonError(f"malformed descriptor in manifest: {e}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


def usable_manifests(descs: Iterable[Descriptor]) -> list[Descriptor]:
    """An index's entries less its attestation manifests (BuildKit's provenance / SBOM)."""
    return [d for d in descs if d.annotations.get("vnd.docker.reference.type") != "attestation-manifest"]


def choose_manifest(descs: Iterable[Descriptor], want: PlatformSpec) -> Descriptor | None:
    """The entry of an index for platform ``want`` (attestation manifests never; an entry
    without a platform only when none matches); None when there is none."""
    return choose_platform(usable_manifests(descs), want, lambda d: d.platform)


def _blob_relpath(digest: str) -> Path:
    alg, _, hexpart = digest.partition(":")
    if not alg or not hexpart or "/" in digest or ".." in digest:
        raise MasonError(f"invalid digest {digest!r}")
    return Path("blobs") / alg / hexpart


class OciLayout:
    """An OCI image layout directory: read and write blobs and ``index.json``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> "OciLayout":
        layout = cls(root)
        (layout.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (layout.root / "oci-layout").write_bytes(
            json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode())
        if not (layout.root / "index.json").exists():
            layout.write_index([])
        return layout

    def blob_path(self, digest: str) -> Path:
        return self.root / _blob_relpath(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def write_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return digest

    def read_blob(self, digest: str) -> bytes:
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise MasonError(f"OCI layout {self.root}: blob {digest} is missing") from None
        if sha256_digest(data) != digest and digest.startswith("sha256:"):
            raise MasonError(f"OCI layout {self.root}: blob {digest} is corrupt (digest mismatch)")
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        return json.loads(self.read_blob(digest))

    def index(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "index.json").read_bytes())
        except FileNotFoundError:
            raise MasonError(f"{self.root} is not an OCI image layout (no index.json)") from None

    def write_index(self, manifests: Iterable[Descriptor | Mapping[str, Any]],
                    annotations: Mapping[str, str] | None = None) -> None:
        obj: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d.to_json() if isinstance(d, Descriptor) else dict(d) for d in manifests],
        }
        if annotations:
            obj["annotations"] = dict(annotations)
        (self.root / "index.json").write_bytes(json.dumps(obj, indent=None, separators=(",", ":")).encode())

    def descriptors(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.index().get("manifests", [])]

    def find(self, tag: str) -> Descriptor:
        """The descriptor in ``index.json`` whose ``org.opencontainers.image.ref.name`` is ``tag``."""
        for d in self.descriptors():
            if d.annotations.get(ANNOTATION_REF_NAME) == tag:
                return d
        raise MasonError(f"OCI layout {self.root} has no image tagged {tag!r}")

    def walk(self, desc: Descriptor) -> list[Descriptor]:
        """Every descriptor reachable from ``desc`` (itself first; children before nothing)."""
        out = [desc]
        if is_index(desc.media_type):
            for child in self.read_json(desc.digest).get("manifests", []):
                out.extend(self.walk(Descriptor.from_json(child)))
        elif is_manifest(desc.media_type):
            m = self.read_json(desc.digest)
            out.append(Descriptor.from_json(m["config"]))
            out.extend(Descriptor.from_json(layer) for layer in m.get("layers", []))
        return out
