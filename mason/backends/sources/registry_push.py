"""Pushing to an OCI distribution registry (the half of the client exporters use).

Blobs that exist are skipped (HEAD); a cross-repository mount is tried when the caller names
repositories on the same registry that may hold the blob; otherwise a monolithic (POST, then
PUT ``?digest=``) or, with ``chunk_size``, a chunked (POST, PATCH…, PUT) upload. Manifests are
PUT by tag or digest, and the registry's ``Docker-Content-Digest`` is checked against ours.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import httpx

from mason.backends import oci
from mason.backends.oci import Descriptor, OciLayout
from mason.backends.sources.transport import Transport, error_detail
from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference

CHUNK = 1 << 20

Progress = Callable[[int, int], None]
BlobSource = Union[bytes, str, os.PathLike, Callable[[], Iterable[bytes]]]


def _as_ref(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


@dataclass
class PushResult:
    """What a push did: the manifest digest, and per blob digest ``exists`` / ``mounted`` /
    ``uploaded`` (manifests pushed by digest are listed too)."""

    ref: Reference
    digest: str
    media_type: str
    size: int
    blobs: dict[str, str] = field(default_factory=dict)


class RegistryPushMixin:
    """Push methods of :class:`~mason.backends.sources.registry.RegistryClient`."""

    transport: Transport
    chunk_size: int | None

    def blob_exists(self, ref: str | Reference, digest: str) -> bool:
        r = _as_ref(ref)
        resp = self.transport.request(r, "HEAD", f"/v2/{r.path}/blobs/{digest}", scopes=self._push_scopes(r))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise MasonError(f"cannot check blob {digest} in {r.trim().familiar()}: HTTP {resp.status_code}")

    def manifest_exists(self, ref: str | Reference, digest: str) -> bool:
        r = _as_ref(ref)
        resp = self.transport.request(r, "HEAD", f"/v2/{r.path}/manifests/{digest}", scopes=self._push_scopes(r),
                                      headers={"Accept": ", ".join(oci.MANIFEST_ACCEPT)})
        return resp.status_code == 200

    @staticmethod
    def _push_scopes(r: Reference, mount_from: Iterable[str] = ()) -> tuple[str, ...]:
        return (f"repository:{r.path}:pull,push",) + tuple(f"repository:{m}:pull" for m in mount_from)

    def push_blob(self, ref: str | Reference, desc: Descriptor, source: BlobSource,
                  mount_from: Sequence[str] = (), progress: Progress | None = None) -> str:
        """Make blob ``desc`` exist in ``ref``'s repository. ``source``: bytes, a file path, or a
        function returning an iterable of chunks (called again if a request must be resent).
        ``mount_from``: repository paths on the same registry that may hold it already.
        Returns ``"exists"``, ``"mounted"`` or ``"uploaded"``."""
        r = _as_ref(ref)
        if self.blob_exists(r, desc.digest):
            return "exists"
        location = None
        for repo in mount_from:
            if repo == r.path:
                continue
            scopes = self._push_scopes(r, [repo])
            resp = self.transport.request(r, "POST", f"/v2/{r.path}/blobs/uploads/?mount={desc.digest}&from={repo}",
                                          scopes=scopes, body=lambda: b"")
            if resp.status_code == 201:
                return "mounted"
            if resp.status_code == 202 and resp.headers.get("location"):
                location = resp.headers["location"]
                break
        scopes = self._push_scopes(r)
        if location is None:
            resp = self.transport.request(r, "POST", f"/v2/{r.path}/blobs/uploads/", scopes=scopes, body=lambda: b"")
            if resp.status_code not in (201, 202) or not resp.headers.get("location"):
                raise MasonError(f"registry {r.domain} refused to start an upload to {r.trim().familiar()}: "
                                 f"{error_detail(resp)}")
            location = resp.headers["location"]
        location = self.transport.absolute(r, location)
        if self.chunk_size and desc.size > self.chunk_size:
            location = self._upload_chunks(r, desc, source, location, scopes, progress)
            resp = self.transport.request(r, "PUT", _with_param(location, "digest", desc.digest), scopes=scopes,
                                          headers={"Content-Length": "0"}, body=lambda: b"")
        else:
            def body() -> Any:
                return _counting(_chunks(source), desc.size, progress)
            resp = self.transport.request(r, "PUT", _with_param(location, "digest", desc.digest), scopes=scopes,
                                          headers={"Content-Type": "application/octet-stream",
                                                   "Content-Length": str(desc.size)}, body=body)
        if resp.status_code not in (201, 204):
            why = error_detail(resp)
            if "DIGEST_INVALID" in why:
                raise MasonError(f"digest mismatch pushing blob {desc.digest} to {r.trim().familiar()}: "
                                 f"the registry computed another digest")
            raise MasonError(f"upload of blob {desc.digest} to {r.trim().familiar()} failed: {why}")
        said = resp.headers.get("docker-content-digest")
        if said and said != desc.digest:
            raise MasonError(f"digest mismatch pushing blob {desc.digest}: registry stored {said}")
        return "uploaded"

    def _upload_chunks(self, r: Reference, desc: Descriptor, source: BlobSource, location: str,
                       scopes: tuple[str, ...], progress: Progress | None) -> str:
        assert self.chunk_size
        offset = 0
        buf = b""

        def send(piece: bytes, loc: str, start: int) -> str:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(piece)),
                       "Content-Range": f"{start}-{start + len(piece) - 1}"}
            resp = self.transport.request(r, "PATCH", loc, scopes=scopes, body=lambda: piece, headers=headers)
            if resp.status_code != 202:
                raise MasonError(f"chunked upload of blob {desc.digest} to {r.trim().familiar()} failed: "
                                 f"{error_detail(resp)}")
            return self.transport.absolute(r, resp.headers.get("location") or loc)

        for chunk in _chunks(source):
            buf += chunk
            while len(buf) >= self.chunk_size:
                piece, buf = buf[:self.chunk_size], buf[self.chunk_size:]
                location = send(piece, location, offset)
                offset += len(piece)
                if progress:
                    progress(offset, desc.size)
        if buf:
            location = send(buf, location, offset)
            offset += len(buf)
            if progress:
                progress(offset, desc.size)
        if offset != desc.size:
            raise MasonError(f"blob {desc.digest}: the source has {offset} bytes, the descriptor says {desc.size}")
        return location

    def push_manifest(self, ref: str | Reference, data: bytes, media_type: str,
                      tag: str | None = None) -> str:
        """PUT a manifest or index under ``tag`` (default: ``ref``'s tag, else its digest).
        Returns its digest."""
        r = _as_ref(ref)
        digest = oci.sha256_digest(data)
        obj = tag or r.tag or digest
        resp = self.transport.request(r, "PUT", f"/v2/{r.path}/manifests/{obj}", scopes=self._push_scopes(r),
                                      headers={"Content-Type": media_type}, body=lambda: data)
        if resp.status_code not in (200, 201, 202):
            raise MasonError(f"push of manifest to {r.trim().familiar()}:{obj} failed: {error_detail(resp)}")
        said = resp.headers.get("docker-content-digest")
        if said and said != digest:
            raise MasonError(f"digest mismatch pushing manifest to {r.familiar()}: registry stored {said}, "
                             f"content is {digest}")
        return digest

    def push_image(self, ref: str | Reference, manifest: bytes, media_type: str,
                   blobs: Mapping[str, BlobSource], mount_from: Sequence[str] = ()) -> PushResult:
        """Push one image manifest (its config and layers from ``blobs``, keyed by digest), then
        the manifest by ``ref``'s tag (or digest)."""
        r = _as_ref(ref)
        m = json.loads(manifest)
        result = PushResult(r, oci.sha256_digest(manifest), media_type, len(manifest))
        for d in [Descriptor.from_json(m["config"])] + [Descriptor.from_json(x) for x in m.get("layers", [])]:
            if d.digest not in blobs:
                raise MasonError(f"push {r.familiar()}: no content for blob {d.digest}")
            result.blobs[d.digest] = self.push_blob(r, d, blobs[d.digest], mount_from)
        self.push_manifest(r, manifest, media_type)
        return result

    def push_layout(self, layout: OciLayout | str | os.PathLike[str], ref: str | Reference,
                    tag: str | None = None, mount_from: Sequence[str] = ()) -> PushResult:
        """Push the image (manifest or index) tagged ``tag`` in an OCI layout (default: the
        layout's only image) to ``ref``: blobs first, child manifests by digest, the root by
        ``ref``'s tag."""
        lay = layout if isinstance(layout, OciLayout) else OciLayout(layout)
        r = _as_ref(ref)
        if tag is not None:
            root = lay.find(tag)
        else:
            descs = lay.descriptors()
            if len(descs) != 1:
                raise MasonError(f"OCI layout {lay.root} holds {len(descs)} images; name the tag to push")
            root = descs[0]
        result = PushResult(r, root.digest, root.media_type, root.size)

        def push_node(desc: Descriptor, top: bool) -> None:
            data = lay.read_blob(desc.digest)
            if oci.is_index(desc.media_type):
                for child in json.loads(data).get("manifests", []):
                    push_node(Descriptor.from_json(child), False)
            else:
                m = json.loads(data)
                for d in [Descriptor.from_json(m["config"])] + [Descriptor.from_json(x) for x in m.get("layers", [])]:
                    if d.digest not in result.blobs:
                        result.blobs[d.digest] = self.push_blob(r, d, lay.blob_path(d.digest), mount_from)
            if top:
                self.push_manifest(r, data, desc.media_type)
            elif self.manifest_exists(r, desc.digest):
                result.blobs[desc.digest] = "exists"
            else:
                self.push_manifest(r, data, desc.media_type, tag=desc.digest)
                result.blobs[desc.digest] = "uploaded"

        push_node(root, True)
        return result


def _with_param(url: str, key: str, value: str) -> str:
    return str(httpx.URL(url).copy_merge_params({key: value}))


def _chunks(source: BlobSource) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        except OSError as e:
            raise MasonError(f"cannot read blob source {os.fspath(source)}: {e.strerror}") from None
    else:
        yield from source()


def _counting(chunks: Iterator[bytes], total: int, progress: Progress | None) -> Iterator[bytes]:
    n = 0
    for c in chunks:
        n += len(c)
        yield c
        if progress:
            progress(n, total)
