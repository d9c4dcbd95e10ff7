"""An OCI distribution (Docker registry v2) client: resolve, pull and push, with auth.

* Pull: a reference resolves to a manifest or an index (the Accept header names the OCI and
  Docker schema2 manifest and list types); an index is narrowed to the requested platform;
  the config blob is fetched; every byte fetched is checked against its digest (and size).
* Push: ``registry_push`` (skip existing, cross-repository mount, monolithic or chunked upload,
  manifest PUT).
* Transport, scheme rule and auth: ``transport``.
* :class:`RegistryResolver`: the registry-backed :class:`~mason.ir.resolver.ImageMetaResolver`.
  It pins like BuildKit: to the digest of what the reference names (the index of a
  multi-platform image), see ``mason.ir.resolver``.

Every failure the user can cause or meet is a :class:`MasonError` with a one-line message.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Sequence, Union

import httpx

from mason.backends import oci
from mason.backends.oci import Descriptor
from mason.backends.sources.auth import Credentials, CredentialStore
from mason.backends.sources.cancel import Streams
from mason.backends.sources.registry_push import PushResult, RegistryPushMixin
from mason.backends.sources.transport import Transport, error_detail, is_loopback, network_error
from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference
from mason.ir.resolver import PlatformSpec, ResolvedImage

MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 16 << 20
CHUNK = 1 << 20

Progress = Callable[[int, int], None]
BlobDest = Union[str, os.PathLike, BinaryIO, Callable[[bytes], None]]

__all__ = ["Manifest", "PushResult", "RegistryClient", "RegistryResolver", "ResolvedManifest", "is_loopback"]


def _as_ref(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(ref)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: its descriptor, its exact bytes and the parsed JSON."""

    descriptor: Descriptor
    data: bytes
    json: dict[str, Any]

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def is_index(self) -> bool:
        return oci.is_index(self.media_type)

    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_json(self.json["config"])

    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.json.get("layers", [])]

    def children(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.json.get("manifests", [])]


@dataclass(frozen=True)
class ResolvedManifest:
    """A reference resolved for a platform: ``root`` is what the reference names (an index or
    a manifest), ``manifest`` the platform's image manifest (the same object when ``root`` is
    a manifest), ``platform`` the platform it was chosen for (or the config's, for a plain
    manifest)."""

    ref: Reference
    root: Manifest
    manifest: Manifest
    platform: PlatformSpec | None

    @property
    def pinned(self) -> Reference:
        """The reference pinned to the root digest, as BuildKit pins ``FROM``."""
        return self.ref.with_digest(self.root.digest)


class RegistryClient(RegistryPushMixin):
    """A client for OCI distribution registries. Thread-safe; close it (or use ``with``).
    ``chunk_size``: push blobs larger than this in chunks (default: one PUT)."""

    def __init__(self, *, insecure_registries: Sequence[str] = (),
                 credentials: CredentialStore | Mapping[str, Credentials] | None = None,
                 timeout: float = 60.0, chunk_size: int | None = None):
        self.transport = Transport(insecure_registries=insecure_registries, credentials=credentials,
                                   timeout=timeout)
        self.chunk_size = chunk_size

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def watched(self, streams: Streams) -> "RegistryClient":
        """This client (the same connections and auth state) reporting every request's
        connection to ``streams``, so a cancel can shut them down. Do not close it."""
        c = copy.copy(self)
        c.transport = self.transport.watched(streams)
        return c

    # ---------------------------------------------------------------- pull

    def get_manifest(self, ref: str | Reference, digest: str | None = None) -> Manifest:
        """Fetch the manifest or index ``ref`` names (or ``digest`` in ``ref``'s repository)."""
        r = _as_ref(ref)
        obj = digest or r.object
        resp = self.transport.request(r, "GET", f"/v2/{r.path}/manifests/{obj}",
                                      headers={"Accept": ", ".join(oci.MANIFEST_ACCEPT)})
        if resp.status_code == 404:
            raise MasonError(f"image not found: {r.familiar() if not digest else r.trim().familiar() + '@' + digest}"
                             f" ({error_detail(resp)})")
        if resp.status_code != 200:
            raise MasonError(f"cannot fetch manifest of {r.familiar()}: {error_detail(resp)}")
        data = resp.content
        if len(data) > MAX_MANIFEST_SIZE:
            raise MasonError(f"manifest of {r.familiar()} is larger than {MAX_MANIFEST_SIZE} bytes")
        actual = oci.sha256_digest(data)
        want = digest or r.digest
        said = resp.headers.get("docker-content-digest", "")
        if want and want.startswith("sha256:") and actual != want:
            raise MasonError(f"digest mismatch for manifest {want} of {r.trim().familiar()}: content is {actual}")
        if said.startswith("sha256:") and said != actual:
            raise MasonError(f"digest mismatch for manifest of {r.familiar()}: registry said {said}, "
                             f"content is {actual}")
        try:
            parsed = json.loads(data)
        except ValueError:
            raise MasonError(f"manifest of {r.familiar()} is not valid JSON") from None
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        mt = ctype if ctype in oci.MANIFEST_ACCEPT else oci.detect_manifest_type(parsed)
        if mt in (oci.DOCKER_SCHEMA1, oci.DOCKER_SCHEMA1_SIGNED):
            raise MasonError(f"{r.familiar()} has a Docker schema 1 manifest, which mason does not support")
        if mt not in oci.MANIFEST_ACCEPT:
            raise MasonError(f"{r.familiar()}: unsupported manifest media type {mt!r}")
        return Manifest(Descriptor(mt, actual, len(data)), data, parsed)

    def head_manifest(self, ref: str | Reference) -> Descriptor | None:
        """The descriptor ``ref`` names, without fetching the body (None if it does not exist).
        Falls back to a GET when the registry sends no digest header."""
        r = _as_ref(ref)
        resp = self.transport.request(r, "HEAD", f"/v2/{r.path}/manifests/{r.object}",
                                      headers={"Accept": ", ".join(oci.MANIFEST_ACCEPT)})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise MasonError(f"cannot look up {r.familiar()}: HTTP {resp.status_code}")
        said = resp.headers.get("docker-content-digest", "")
        size = resp.headers.get("content-length", "")
        mt = resp.headers.get("content-type", "").split(";")[0].strip()
        if said and size.isdigit() and mt in oci.MANIFEST_ACCEPT:
            return Descriptor(mt, said, int(size))
        return self.get_manifest(r).descriptor

    def resolve(self, ref: str | Reference, platform: PlatformSpec | None = None) -> ResolvedManifest:
        """Resolve ``ref`` to its root object and the image manifest for ``platform`` (default:
        the host's)."""
        r = _as_ref(ref)
        want = platform or PlatformSpec.default()
        root = self.get_manifest(r)
        node, chosen = root, None
        for _ in range(4):  # an index may name an index; stop at a sane depth
            if not node.is_index:
                break
            desc = self._choose(r, node, want)
            chosen = desc.platform or chosen
            node = self.get_manifest(r, desc.digest)
            if node.media_type != desc.media_type and desc.media_type:
                raise MasonError(f"{r.familiar()}: index says {desc.digest} is {desc.media_type}, "
                                 f"registry served {node.media_type}")
        if node.is_index:
            raise MasonError(f"{r.familiar()}: indexes nested too deeply")
        return ResolvedManifest(r, root, node, chosen)

    @staticmethod
    def _choose(r: Reference, index: Manifest, want: PlatformSpec) -> Descriptor:
        children = index.children()
        chosen = oci.choose_manifest(children, want)
        if chosen is not None:
            return chosen
        have = ", ".join(sorted({str(d.platform) for d in oci.usable_manifests(children) if d.platform})) or "none"
        raise MasonError(f"image {r.familiar()} has no manifest for platform {want} (it has {have})")

    def fetch_blob(self, ref: str | Reference, desc: Descriptor, dest: BlobDest,
                   progress: Progress | None = None) -> int:
        """Stream blob ``desc`` from ``ref``'s repository into ``dest`` (a path, written
        atomically; a binary file; or a callback per chunk), verifying size and digest.
        A path is only created when the content is right. Returns the size."""
        r = _as_ref(ref)
        if isinstance(dest, (str, os.PathLike)):
            path = Path(dest)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mason-blob-")
            try:
                with os.fdopen(fd, "wb") as f:
                    n = self._fetch_blob_into(r, desc, f.write, progress)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
            return n
        write = dest.write if hasattr(dest, "write") else dest
        return self._fetch_blob_into(r, desc, write, progress)

    def fetch_blob_bytes(self, ref: str | Reference, desc: Descriptor, max_size: int | None = None) -> bytes:
        r = _as_ref(ref)
        if max_size is not None and desc.size > max_size:
            raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is too large ({desc.size} bytes)")
        chunks: list[bytes] = []
        self._fetch_blob_into(r, desc, chunks.append, None)
        return b"".join(chunks)

    def stream_blob(self, ref: str | Reference, desc: Descriptor, progress: Progress | None = None) -> Iterator[bytes]:
        """Blob ``desc`` of ``ref``'s repository in chunks, verified: the last chunk is handed
        out only after the size and digest checked out, so a consumer that commits on the end of
        the stream (containerd's content writer) never commits a corrupt blob."""
        return self._blob_chunks(_as_ref(ref), desc, progress)

    def _fetch_blob_into(self, r: Reference, desc: Descriptor, write: Callable[[bytes], Any],
                         progress: Progress | None) -> int:
        n = 0
        for chunk in self._blob_chunks(r, desc, progress):
            n += len(chunk)
            write(chunk)
        return n

    def _blob_chunks(self, r: Reference, desc: Descriptor, progress: Progress | None) -> Iterator[bytes]:
        alg = desc.digest.split(":", 1)[0]
        if alg not in ("sha256", "sha512"):
            raise MasonError(f"unsupported digest algorithm in {desc.digest}")
        resp = self.transport.request(r, "GET", f"/v2/{r.path}/blobs/{desc.digest}", stream=True)
        try:
            if resp.status_code == 404:
                raise MasonError(f"blob {desc.digest} not found in {r.trim().familiar()}")
            if resp.status_code != 200:
                resp.read()
                raise MasonError(f"cannot fetch blob {desc.digest} of {r.trim().familiar()}: "
                                 f"{error_detail(resp)}")
            h = hashlib.new(alg)
            n = 0
            held: bytes | None = None
            try:
                for chunk in resp.iter_bytes(CHUNK):
                    n += len(chunk)
                    if desc.size >= 0 and n > desc.size:
                        raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is larger than "
                                         f"its descriptor says ({desc.size} bytes)")
                    h.update(chunk)
                    if held is not None:
                        yield held
                    held = chunk
                    if progress:
                        progress(n, desc.size)
            except httpx.HTTPError as e:
                raise MasonError(f"download of blob {desc.digest} from {r.domain} broke off: "
                                 f"{network_error(r.domain, e).message}") from None
        finally:
            resp.close()
        actual = f"{alg}:{h.hexdigest()}"
        if n != desc.size:
            raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is {n} bytes, "
                             f"its descriptor says {desc.size}")
        if actual != desc.digest:
            raise MasonError(f"digest mismatch for blob {desc.digest} of {r.trim().familiar()}: content is {actual}")
        if held is not None:
            yield held

    def get_config(self, ref: str | Reference, manifest: Manifest) -> tuple[Descriptor, dict[str, Any]]:
        r = _as_ref(ref)
        desc = manifest.config_descriptor()
        data = self.fetch_blob_bytes(r, desc, MAX_CONFIG_SIZE)
        try:
            cfg = json.loads(data)
        except ValueError:
            raise MasonError(f"image config {desc.digest} of {r.familiar()} is not valid JSON") from None
        if not isinstance(cfg, dict):
            raise MasonError(f"image config {desc.digest} of {r.familiar()} is not a JSON object")
        return desc, cfg

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        """The :class:`~mason.ir.resolver.ImageMetaResolver` call: pinned to the root digest."""
        res = self.resolve(ref, platform)
        cdesc, cfg = self.get_config(res.ref, res.manifest)
        plat = res.platform
        if plat is None and cfg.get("architecture"):
            plat = PlatformSpec.from_json(cfg)
        return ResolvedImage(
            ref=str(res.pinned),
            digest=res.root.digest,
            config=cfg,
            manifest_digest=res.manifest.digest,
            config_digest=cdesc.digest,
            platform=plat,
            media_type=res.root.media_type,
        )


class RegistryResolver:
    """The registry-backed :class:`~mason.ir.resolver.ImageMetaResolver`. Wrap it in
    :class:`~mason.ir.resolver.CachingResolver` to ask once per build."""

    def __init__(self, client: RegistryClient | None = None, **client_options: Any):
        self._own = client is None
        self.client = client or RegistryClient(**client_options)

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        return self.client.resolve_image_config(ref, platform)

    def close(self) -> None:
        if self._own:
            self.client.close()

    def __enter__(self) -> "RegistryResolver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
