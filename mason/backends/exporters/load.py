"""``mason load``: bring an image archive into mason's image store, like ``docker load``.

Two formats, told apart by their members:

* an **OCI archive** (``oci-layout`` + ``index.json`` + ``blobs/``; what ``type=oci``,
  ``skopeo copy … oci-archive:``, BuildKit and ``docker save`` ≥ 25 write): every blob
  reachable from ``index.json`` goes into containerd's content store, manifests and indexes
  labelled so GC keeps their children. Each ``index.json`` entry names its image by
  ``io.containerd.image.name``, else by ``org.opencontainers.image.ref.name`` when that is a
  full reference (``name:tag``; a bare tag names nothing — like ``ctr import`` without
  ``--base-name`` — unless the archive also has a Docker ``manifest.json`` with ``RepoTags``).
* a **Docker archive** (``manifest.json`` with ``Config``, ``RepoTags``, ``Layers``; what
  ``docker save`` < 25 and ``type=docker`` write): config bytes kept as they are (so the image
  ID stays the same), layers kept byte for byte (an uncompressed ``layer.tar`` becomes an
  ``application/vnd.oci.image.layer.v1.tar`` layer), and an OCI manifest written for them.

Layer blobs get ``containerd.io/uncompressed`` from the config's ``rootfs.diff_ids``, so the
sources' unpacking and ``ctr run`` can use them. Everything happens inside a lease; the image
records, created last, then hold it all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import UNCOMPRESSED, Client
from mason.backends.exporters.image import GC_REF_CONFIG, GC_REF_CONTENT, gc_layer_label, store_image
from mason.backends.exporters.oci_tar import ANNOTATION_IMAGE_NAME
from mason.ir.errors import MasonError
from mason.ir.reference import parse_reference

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoadedImage:
    name: str  # normalized
    digest: str  # the record's target (manifest or index)
    media_type: str


# what reading a damaged (possibly compressed) archive raises
_DAMAGED = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)


def _reason(e: BaseException) -> str:
    """One line saying why an archive could not be read."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Archive:
    def __init__(self, path: str):
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:*")
        except tarfile.ReadError:  # its text lists every compression tried, over several lines
            raise MasonError(f"{path} is not a tar archive (OCI or docker archive expected)") from None
        except _DAMAGED as e:
            raise MasonError(f"cannot read archive {path}: {_reason(e)}") from None
        try:
            self.members = {m.name.lstrip("./") if m.name.startswith("./") else m.name: m
                            for m in self.tar.getmembers() if m.isfile() or m.issym() or m.islnk()}
        except _DAMAGED as e:
            self.tar.close()
            raise MasonError(f"cannot read archive {path}: {_reason(e)}") from None

    def close(self) -> None:
        self.tar.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name)
        if m is None:
            raise MasonError(f"archive {self.path}: {name} is missing")
        return m

    def open(self, name: str):
        f = self.tar.extractfile(self._member(name))
        if f is None:
            raise MasonError(f"archive {self.path}: {name} is not a file")
        return f

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise MasonError(f"archive {self.path}: {name} is not valid JSON: {e}") from None

    def chunks(self, name: str) -> Iterator[bytes]:
        with self.open(name) as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def size(self, name: str) -> int:
        return self._member(name).size

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        for c in self.chunks(name):
            h.update(c)
        return "sha256:" + h.hexdigest()


def _blob_name(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    if not alg or not hexpart or "/" in hexpart or ".." in digest:
        raise MasonError(f"invalid digest {digest!r} in archive")
    return f"blobs/{alg}/{hexpart}"


class _Importer:
    def __init__(self, client: Client, archive: _Archive):
        self.client = client
        self.ar = archive
        self.done: set[str] = set()

    def blob(self, name: str, digest: str, size: int, labels: dict[str, str] | None = None) -> None:
        if self.ar.size(name) != size:
            raise MasonError(f"archive {self.ar.path}: {name} has {self.ar.size(name)} bytes, "
                             f"its descriptor says {size}")
        self.client.write_blob(self.ar.chunks(name), digest=digest, size=size, labels=labels)
        self.done.add(digest)

    def descriptor(self, d: dict[str, Any]) -> None:
        """Import the tree under descriptor ``d`` (children first, then ``d`` with GC labels)."""
        digest, size, mt = d["digest"], int(d["size"]), d.get("mediaType", "")
        if digest in self.done:
            return
        name = _blob_name(digest)
        if oci.is_index(mt) or oci.is_manifest(mt):
            data = self.ar.read(name)
            if oci.sha256_digest(data) != digest:
                raise MasonError(f"archive {self.ar.path}: {name} does not match its digest")
            mt = mt or oci.detect_manifest_type(data)
            obj = json.loads(data)
            labels: dict[str, str] = {}
            if oci.is_index(mt):
                for i, child in enumerate(obj.get("manifests") or ()):
                    if not self.ar.has(_blob_name(child["digest"])):
                        continue  # other platforms may be left out of an archive
                    self.descriptor(child)
                    labels[f"{GC_REF_CONTENT}.m.{i}"] = child["digest"]
            elif oci.is_manifest(mt):
                cfg = obj["config"]
                config_bytes = self.ar.read(_blob_name(cfg["digest"]))
                self.blob(_blob_name(cfg["digest"]), cfg["digest"], int(cfg["size"]))
                diff_ids = (json.loads(config_bytes).get("rootfs") or {}).get("diff_ids") or []
                labels[GC_REF_CONFIG] = cfg["digest"]
                for i, la in enumerate(obj.get("layers") or ()):
                    lab = {UNCOMPRESSED: diff_ids[i]} if i < len(diff_ids) else {}
                    if la["digest"] not in self.done:
                        self.blob(_blob_name(la["digest"]), la["digest"], int(la["size"]), lab)
                    labels[gc_layer_label(i)] = la["digest"]
            self.client.write_blob(data, labels=labels)
            self.done.add(digest)
        else:
            self.blob(name, digest, size)


def _name_of(entry: dict[str, Any]) -> str | None:
    ann = entry.get("annotations") or {}
    full = ann.get(ANNOTATION_IMAGE_NAME)
    if full:
        return str(parse_reference(full))
    ref = ann.get(oci.ANNOTATION_REF_NAME)
    if ref and (":" in ref or "/" in ref or "@" in ref):
        with contextlib.suppress(MasonError):
            return str(parse_reference(ref))
    return None


def _load_oci(client: Client, ar: _Archive) -> list[LoadedImage]:
    index = ar.json("index.json")
    imp = _Importer(client, ar)
    docker_tags: dict[str, list[str]] = {}
    if ar.has("manifest.json"):  # docker save >= 25 writes both; its RepoTags name the images
        for m in ar.json("manifest.json") or ():
            docker_tags.setdefault(m.get("Config", "").rsplit("/", 1)[-1], []).extend(m.get("RepoTags") or ())
    out: list[LoadedImage] = []
    for entry in index.get("manifests") or ():
        imp.descriptor(entry)
        names = [n for n in [_name_of(entry)] if n]
        if not names and docker_tags and oci.is_manifest(entry.get("mediaType", "")):
            cfg = json.loads(ar.read(_blob_name(entry["digest"])))["config"]["digest"]
            names = [str(parse_reference(t)) for t in docker_tags.get(cfg.split(":", 1)[1], [])]
        for n in names:
            store_image(client, n, oci.Descriptor(entry.get("mediaType") or oci.OCI_MANIFEST, entry["digest"],
                                                  int(entry["size"])))
            out.append(LoadedImage(n, entry["digest"], entry.get("mediaType") or oci.OCI_MANIFEST))
    return out


def _load_docker(client: Client, ar: _Archive) -> list[LoadedImage]:
    entries = ar.json("manifest.json")
    if not isinstance(entries, list):
        raise MasonError(f"archive {ar.path}: manifest.json is not a list")
    out: list[LoadedImage] = []
    for e in entries:
        config_name = e.get("Config")
        if not config_name:
            raise MasonError(f"archive {ar.path}: a manifest.json entry has no Config")
        config_bytes = ar.read(config_name)
        config = json.loads(config_bytes)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_names = e.get("Layers") or []
        if len(layer_names) != len(diff_ids):
            raise MasonError(f"archive {ar.path}: {len(layer_names)} layers but {len(diff_ids)} diff_ids in the config")
        layers = []
        for ln, diff_id in zip(layer_names, diff_ids, strict=False):
            with ar.open(ln) as f:
                head = f.read(2)
            digest = diff_id if head != b"\x1f\x8b" else ar.sha256(ln)
            if head != b"\x1f\x8b" and ar.sha256(ln) != diff_id:
                raise MasonError(f"archive {ar.path}: layer {ln} does not match diff_id {diff_id}")
            mt = oci.OCI_LAYER_GZIP if head == b"\x1f\x8b" else oci.OCI_LAYER
            size = ar.size(ln)
            client.write_blob(ar.chunks(ln), digest=digest, size=size, labels={UNCOMPRESSED: diff_id})
            layers.append({"mediaType": mt, "digest": digest, "size": size})
        client.write_blob(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                    "config": oci.Descriptor.of(oci.OCI_CONFIG, config_bytes).to_json(), "layers": layers}
        data = oci.canonical_json(manifest)
        labels = {GC_REF_CONFIG: oci.sha256_digest(config_bytes)}
        labels.update({gc_layer_label(i): la["digest"] for i, la in enumerate(layers)})
        info = client.write_blob(data, labels=labels)
        for tag in e.get("RepoTags") or ():
            n = store_image(client, tag, oci.Descriptor(oci.OCI_MANIFEST, info.digest, info.size))
            out.append(LoadedImage(n, info.digest, oci.OCI_MANIFEST))
    return out


def load_archive(client: Client, path: str | os.PathLike[str]) -> list[LoadedImage]:
    """Import the OCI or Docker archive at ``path``; returns the images it named (an image
    without a name is imported but not recorded)."""
    ar = _Archive(os.fspath(path))
    try:
        with client.lease(expire=3600) if not client.lease_id else contextlib.nullcontext(client) as lc:
            if ar.has("index.json") and (ar.has("oci-layout") or not ar.has("manifest.json")):
                loaded = _load_oci(lc, ar)
                if not loaded and ar.has("manifest.json"):
                    loaded = _load_docker(lc, ar)
            elif ar.has("manifest.json"):
                loaded = _load_docker(lc, ar)
            else:
                raise MasonError(f"{os.fspath(path)} is neither an OCI archive (index.json) nor a Docker "
                                 "archive (manifest.json)")
    finally:
        ar.close()
    return loaded


