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
import posixpath
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
_MAX_JSON = 32 << 20  # an index, manifest or config larger than this is no image's
_MAX_LINKS = 40  # links followed to reach one member's data (Linux's MAXSYMLINKS)


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
            self.members = {_norm(m.name): m for m in self.tar.getmembers() if m.isfile() or m.issym() or m.islnk()}
        except _DAMAGED as e:
            self.tar.close()
            raise MasonError(f"cannot read archive {path}: {_reason(e)}") from None

    def close(self) -> None:
        self.tar.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> tarfile.TarInfo:
        """The regular file ``name`` is, following symlinks and hardlinks among the archive's
        own members only (``docker save`` links duplicate layers): a link never reaches the
        host's files — an absolute target is taken from the archive's root, ``..`` may not
        climb above it — and a missing target, a loop or a long chain is an error."""
        m = self.members.get(name)
        if m is None:
            raise MasonError(f"archive {self.path}: {name} is missing")
        seen = name
        for _ in range(_MAX_LINKS):
            if m.isfile():
                return m
            raw = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(seen), m.linkname)
            target = posixpath.normpath(raw).lstrip("/") if raw else ""
            if target in ("", ".", "..") or target.startswith("../"):
                raise MasonError(f"archive {self.path}: {name} is a link that leads outside the archive")
            nxt = self.members.get(target)
            if nxt is None:
                raise MasonError(f"archive {self.path}: {name} is a link to {target}, which is not in the archive")
            m, seen = nxt, target
        raise MasonError(f"archive {self.path}: {name}: too many levels of links")

    def open(self, name: str):
        f = self.tar.extractfile(self._member(name))
        if f is None:  # pragma: no cover - _member returns regular files only
            raise MasonError(f"archive {self.path}: {name} is not a file")
        return f

    def read(self, name: str, limit: int | None = None) -> bytes:
        if limit is not None and self.size(name) > limit:
            raise MasonError(f"archive {self.path}: {name} is {self.size(name)} bytes, more than any image's "
                             f"metadata ({limit})")
        try:
            with self.open(name) as f:
                return f.read()
        except _DAMAGED as e:
            raise MasonError(f"cannot read archive {self.path}: {name}: {_reason(e)}") from None

    def json(self, name: str) -> Any:
        return _json(self.read(name, _MAX_JSON), f"archive {self.path}: {name}")

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            with self.open(name) as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
        except _DAMAGED as e:
            raise MasonError(f"cannot read archive {self.path}: {name}: {_reason(e)}") from None

    def size(self, name: str) -> int:
        return self._member(name).size

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        for c in self.chunks(name):
            h.update(c)
        return "sha256:" + h.hexdigest()


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:  # UnicodeDecodeError too
        raise MasonError(f"{what} is not valid JSON: {e}") from None


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise MasonError(f"{what} is not a JSON object")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise MasonError(f"{what} is not a JSON list")
    return v


def _descriptor(d: Any, what: str) -> tuple[str, int, str]:
    """(digest, size, mediaType) of an OCI descriptor, checked."""
    d = _obj(d, what)
    digest, size, mt = d.get("digest"), d.get("size"), d.get("mediaType") or ""
    if not isinstance(digest, str):
        raise MasonError(f"{what} has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MasonError(f"{what} has an invalid size {size!r}")
    if not isinstance(mt, str):
        raise MasonError(f"{what} has an invalid mediaType {mt!r}")
    return digest, size, mt


def _blob_name(digest: str) -> str:
    if not isinstance(digest, str):
        raise MasonError(f"invalid digest {digest!r} in archive")
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

    def descriptor(self, d: Any, depth: int = 0) -> None:
        """Import the tree under descriptor ``d`` (children first, then ``d`` with GC labels)."""
        where = f"archive {self.ar.path}"
        digest, size, mt = _descriptor(d, f"{where}: a descriptor")
        if digest in self.done:
            return
        if depth > 8:
            raise MasonError(f"{where}: indexes nested too deep")
        name = _blob_name(digest)
        if oci.is_index(mt) or oci.is_manifest(mt):
            data = self.ar.read(name, _MAX_JSON)
            if oci.sha256_digest(data) != digest:
                raise MasonError(f"{where}: {name} does not match its digest")
            mt = mt or oci.detect_manifest_type(data)
            obj = _obj(_json(data, f"{where}: {name}"), f"{where}: {name}")
            labels: dict[str, str] = {}
            if oci.is_index(mt):
                for i, child in enumerate(_list(obj.get("manifests"), f"{where}: {name} manifests")):
                    cdigest = _descriptor(child, f"{where}: {name} manifests[{i}]")[0]
                    if not self.ar.has(_blob_name(cdigest)):
                        continue  # other platforms may be left out of an archive
                    self.descriptor(child, depth + 1)
                    labels[f"{GC_REF_CONTENT}.m.{i}"] = cdigest
            elif oci.is_manifest(mt):
                cdigest, csize, _ = _descriptor(obj.get("config"), f"{where}: {name} config")
                config_bytes = self.ar.read(_blob_name(cdigest), _MAX_JSON)
                self.blob(_blob_name(cdigest), cdigest, csize)
                config = _obj(_json(config_bytes, f"{where}: config {cdigest}"), f"{where}: config {cdigest}")
                diff_ids = _diff_ids(config, f"{where}: config {cdigest}")
                labels[GC_REF_CONFIG] = cdigest
                for i, la in enumerate(_list(obj.get("layers"), f"{where}: {name} layers")):
                    ldigest, lsize, _ = _descriptor(la, f"{where}: {name} layers[{i}]")
                    lab = {UNCOMPRESSED: diff_ids[i]} if i < len(diff_ids) else {}
                    if ldigest not in self.done:
                        self.blob(_blob_name(ldigest), ldigest, lsize, lab)
                    labels[gc_layer_label(i)] = ldigest
            self.client.write_blob(data, labels=labels)
            self.done.add(digest)
        else:
            self.blob(name, digest, size)


def _diff_ids(config: dict[str, Any], what: str) -> list[str]:
    rootfs = config.get("rootfs") or {}
    ids = _list(_obj(rootfs, f"{what} rootfs").get("diff_ids"), f"{what} rootfs.diff_ids")
    if not all(isinstance(i, str) for i in ids):
        raise MasonError(f"{what}: rootfs.diff_ids holds something that is no digest")
    return ids


def _name_of(entry: dict[str, Any]) -> str | None:
    ann = entry.get("annotations") or {}
    if not isinstance(ann, dict):
        raise MasonError("an index.json entry's annotations are not a JSON object")
    full = ann.get(ANNOTATION_IMAGE_NAME)
    if full:
        return str(parse_reference(str(full)))
    ref = ann.get(oci.ANNOTATION_REF_NAME)
    if isinstance(ref, str) and (":" in ref or "/" in ref or "@" in ref):
        with contextlib.suppress(MasonError):
            return str(parse_reference(ref))
    return None


def _load_oci(client: Client, ar: _Archive) -> list[LoadedImage]:
    where = f"archive {ar.path}"
    index = _obj(ar.json("index.json"), f"{where}: index.json")
    imp = _Importer(client, ar)
    docker_tags: dict[str, list[str]] = {}
    if ar.has("manifest.json"):  # docker save >= 25 writes both; its RepoTags name the images
        for m in _docker_entries(ar):
            docker_tags.setdefault(str(m.get("Config") or "").rsplit("/", 1)[-1], []).extend(_tags(m, where))
    out: list[LoadedImage] = []
    for i, entry in enumerate(_list(index.get("manifests"), f"{where}: index.json manifests")):
        digest, size, mt = _descriptor(entry, f"{where}: index.json manifests[{i}]")
        imp.descriptor(entry)
        names = [n for n in [_name_of(entry)] if n]
        if not names and docker_tags and oci.is_manifest(mt):
            manifest = _obj(ar.json(_blob_name(digest)), f"{where}: {_blob_name(digest)}")
            cfg = _descriptor(manifest.get("config"), f"{where}: {_blob_name(digest)} config")[0]
            names = [str(parse_reference(t)) for t in docker_tags.get(cfg.split(":", 1)[-1], [])]
        for n in names:
            store_image(client, n, oci.Descriptor(mt or oci.OCI_MANIFEST, digest, size))
            out.append(LoadedImage(n, digest, mt or oci.OCI_MANIFEST))
    return out


def _docker_entries(ar: _Archive) -> list[dict[str, Any]]:
    where = f"archive {ar.path}: manifest.json"
    entries = ar.json("manifest.json")
    if not isinstance(entries, list):
        raise MasonError(f"{where} is not a list")
    return [_obj(e, f"{where} entry {i}") for i, e in enumerate(entries)]


def _tags(e: dict[str, Any], where: str) -> list[str]:
    tags = _list(e.get("RepoTags"), f"{where}: manifest.json RepoTags")
    if not all(isinstance(t, str) for t in tags):
        raise MasonError(f"{where}: manifest.json RepoTags holds something that is no name")
    return tags


def _load_docker(client: Client, ar: _Archive) -> list[LoadedImage]:
    where = f"archive {ar.path}"
    out: list[LoadedImage] = []
    for e in _docker_entries(ar):
        config_name = e.get("Config")
        if not config_name or not isinstance(config_name, str):
            raise MasonError(f"{where}: a manifest.json entry has no Config")
        config_bytes = ar.read(config_name, _MAX_JSON)
        config = _obj(_json(config_bytes, f"{where}: {config_name}"), f"{where}: {config_name}")
        diff_ids = _diff_ids(config, f"{where}: {config_name}")
        layer_names = _list(e.get("Layers"), f"{where}: manifest.json Layers")
        if not all(isinstance(n, str) for n in layer_names):
            raise MasonError(f"{where}: manifest.json Layers holds something that is no file name")
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
        for tag in _tags(e, where):
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


