"""An OCI distribution (Docker registry v2) client: resolve, pull and push, with auth.

* Pull: a reference resolves to a manifest or an index (the Accept header names the OCI and
  Docker schema2 manifest and list types); an index is narrowed to the requested platform;
  the config blob is fetched; every byte fetched is checked against its digest.
* Push: blobs that exist are skipped (HEAD), a cross-repository mount is tried when the caller
  names where the blob already lives, otherwise a monolithic (POST + PUT ?digest=) or chunked
  (POST + PATCH… + PUT) upload; then the manifest is PUT by digest or tag.
* Auth: ``GET /v2/`` once per registry learns the challenge; ``Basic`` is answered with the
  credentials (``auth.CredentialStore``: Docker's config.json), ``Bearer`` with a token from the
  challenge's realm for the request's scopes (anonymous when there are no credentials). Tokens
  are cached per scope set until they expire.
* Transport: plain HTTP only for loopback hosts (127.0.0.0/8, ::1, localhost) and hosts named in
  ``insecure_registries``; HTTPS otherwise. ``docker.io`` is served by ``registry-1.docker.io``.
  One connection pool (``httpx.Client``) per registry.

Every failure the user can cause or meet is a :class:`MasonError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import functools
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence, Union

import httpx

from mason.backends import oci
from mason.backends.oci import Descriptor, OciLayout
from mason.backends.sources.auth import Challenge, Credentials, CredentialStore, parse_challenges
from mason.ir.errors import MasonError
from mason.ir.reference import DEFAULT_DOMAIN, Reference, parse_reference
from mason.ir.resolver import PlatformSpec, ResolvedImage

DOCKER_HUB_HOST = "registry-1.docker.io"
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 16 << 20
CHUNK = 1 << 20
USER_AGENT = "mason/0.1"

Progress = Callable[[int, int], None]
BlobSource = Union[bytes, str, os.PathLike, Callable[[], Iterable[bytes]]]
BlobDest = Union[str, os.PathLike, BinaryIO, Callable[[bytes], None]]


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: building one per httpx.Client costs ~0.1 s."""
    try:
        import certifi  # httpx's own CA bundle, when present

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover
        return ssl.create_default_context()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (maybe with ``:port``, maybe ``[v6]``) is this machine's loopback."""
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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


@dataclass
class PushResult:
    """What a push did: the manifest digest, and per blob digest ``exists`` / ``mounted`` /
    ``uploaded`` (manifests pushed by digest are listed too)."""

    ref: Reference
    digest: str
    media_type: str
    size: int
    blobs: dict[str, str] = field(default_factory=dict)


class _Registry:
    """One registry host: its connection pool, scheme and auth state."""

    def __init__(self, domain: str, scheme: str, timeout: float):
        self.domain = domain
        self.host = DOCKER_HUB_HOST if domain == DEFAULT_DOMAIN else domain
        self.scheme = scheme
        self.base = f"{scheme}://{self.host}"
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT},
            verify=_tls_context(), limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )
        self.lock = threading.Lock()
        self.pinged = False
        self.challenge: Challenge | None = None
        self.tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    def url(self, path: str) -> str:
        return path if "://" in path else self.base + path


def _registry_errors(resp: httpx.Response) -> str:
    """The registry's own words from an error body: ``MANIFEST_UNKNOWN: manifest unknown``."""
    try:
        body = json.loads(resp.read() or b"{}")
        errs = body.get("errors") or []
        parts = []
        for e in errs[:3]:
            code, msg = e.get("code", ""), e.get("message", "")
            parts.append(f"{code}: {msg}" if code and msg else code or msg)
        if parts:
            return "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, httpx.HTTPError):
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}".strip()


def _network_error(host: str, exc: Exception) -> MasonError:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, httpx.TimeoutException):
        why = "timed out"
    elif "refused" in low:
        why = "connection refused"
    elif "name or service not known" in low or "nodename nor servname" in low or "temporary failure in name" in low:
        why = "unknown host"
    elif "ssl" in low or "certificate" in low or "tls" in low:
        return MasonError(f"TLS connection to registry {host} failed ({text.splitlines()[0]}); "
                          f"if it serves plain HTTP, name it as an insecure registry")
    else:
        why = text.splitlines()[0]
    return MasonError(f"cannot reach registry {host}: {why}")


class RegistryClient:
    """A client for OCI distribution registries. Thread-safe; close it (or use ``with``)."""

    def __init__(self, *, insecure_registries: Sequence[str] = (),
                 credentials: CredentialStore | Mapping[str, Credentials] | None = None,
                 timeout: float = 60.0, chunk_size: int | None = None):
        self.insecure = {h.lower() for h in insecure_registries}
        if isinstance(credentials, CredentialStore):
            self.credentials = credentials
        else:
            self.credentials = CredentialStore(explicit=credentials)
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._registries: dict[str, _Registry] = {}
        self._token_client = httpx.Client(timeout=timeout, follow_redirects=True,
                                          headers={"User-Agent": USER_AGENT}, verify=_tls_context())

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for reg in self._registries.values():
                reg.client.close()
            self._registries.clear()
        self._token_client.close()

    # ---------------------------------------------------------------- plumbing

    def _registry(self, domain: str) -> _Registry:
        with self._lock:
            reg = self._registries.get(domain)
            if reg is None:
                plain = is_loopback(domain) or domain.lower() in self.insecure
                reg = _Registry(domain, "http" if plain else "https", self.timeout)
                self._registries[domain] = reg
            return reg

    def _ping(self, reg: _Registry) -> None:
        if reg.pinged:
            return
        resp = self._raw(reg, "GET", "/v2/", {})
        if resp.status_code == 401:
            reg.challenge = self._pick_challenge(resp)
        elif resp.status_code >= 400 and resp.status_code != 404:
            raise MasonError(f"registry {reg.domain} answered /v2/ with {_registry_errors(resp)}")
        reg.pinged = True

    @staticmethod
    def _pick_challenge(resp: httpx.Response) -> Challenge | None:
        chs = parse_challenges(resp.headers.get("www-authenticate", ""))
        for scheme in ("bearer", "basic"):
            for ch in chs:
                if ch.scheme == scheme:
                    return ch
        return None

    def _raw(self, reg: _Registry, method: str, url: str, headers: Mapping[str, str],
             content: Any = None, stream: bool = False) -> httpx.Response:
        try:
            req = reg.client.build_request(method, reg.url(url), headers=dict(headers), content=content)
            resp = reg.client.send(req, stream=stream)
        except httpx.HTTPError as e:
            raise _network_error(reg.domain, e) from None
        return resp

    def _auth_header(self, reg: _Registry, scopes: tuple[str, ...], force: bool = False) -> str | None:
        ch = reg.challenge
        if ch is None:
            return None
        creds = self.credentials.get(reg.domain)
        if ch.scheme == "basic":
            return creds.basic_header() if creds is not None else None
        if ch.scheme != "bearer":
            return None
        key = tuple(sorted(set(scopes)))
        with reg.lock:
            hit = reg.tokens.get(key)
        if hit and not force and hit[1] > time.monotonic():
            return "Bearer " + hit[0]
        token, ttl = self._fetch_token(reg, ch, key, creds)
        with reg.lock:
            reg.tokens[key] = (token, time.monotonic() + max(ttl - 10, 1))
        return "Bearer " + token

    def _fetch_token(self, reg: _Registry, ch: Challenge, scopes: tuple[str, ...],
                     creds: Credentials | None) -> tuple[str, float]:
        realm = ch.params.get("realm")
        if not realm:
            raise MasonError(f"registry {reg.domain} asked for a bearer token without naming a realm")
        service = ch.params.get("service")
        try:
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": "mason", "scope": " ".join(scopes)}
                if service:
                    form["service"] = service
                resp = self._token_client.post(realm, data=form)
            else:
                params: list[tuple[str, str]] = []
                if service:
                    params.append(("service", service))
                params.extend(("scope", s) for s in scopes)
                headers = {}
                if creds is not None:
                    headers["Authorization"] = creds.basic_header()
                    params.append(("account", creds.username))
                resp = self._token_client.get(realm, params=params, headers=headers)
        except httpx.HTTPError as e:
            raise MasonError(f"cannot get a token for registry {reg.domain} from {realm}: "
                             f"{_network_error(realm, e).message}") from None
        if resp.status_code in (401, 403):
            raise MasonError(f"unauthorized: the token server of {reg.domain} rejected "
                             f"{'the credentials' if creds else 'anonymous access'}")
        if resp.status_code != 200:
            raise MasonError(f"token server of {reg.domain} answered {_registry_errors(resp)}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
            ttl = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
            ttl = 0.0
        if not token:
            raise MasonError(f"token server of {reg.domain} sent no token")
        return str(token), ttl

    def _request(self, ref: Reference, method: str, url: str, *, scopes: Sequence[str] = (),
                 headers: Mapping[str, str] | None = None,
                 body: Callable[[], Any] | None = None, stream: bool = False) -> httpx.Response:
        """Send with auth; on 401, refresh the challenge/token once and resend."""
        reg = self._registry(ref.domain)
        self._ping(reg)
        scopes_t = tuple(scopes) or (f"repository:{ref.path}:pull",)
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            auth = self._auth_header(reg, scopes_t, force=attempt > 0)
            if auth:
                hdrs["Authorization"] = auth
            resp = self._raw(reg, method, url, hdrs, content=body() if body else None, stream=stream)
            if resp.status_code != 401:
                return resp
            resp.close()
            ch = self._pick_challenge(resp)
            if attempt > 0 or ch is None:
                break
            if ch.scheme == "basic":
                already_sent = reg.challenge is not None and reg.challenge.scheme == "basic"
                reg.challenge = ch
                if already_sent or self.credentials.get(reg.domain) is None:
                    break
            elif ch.scheme == "bearer":
                # The challenge may name the scope it wants (e.g. a mount's source repository).
                extra = tuple(s for s in ch.params.get("scope", "").split(" ") if s and s not in scopes_t)
                scopes_t += extra
                reg.challenge = ch
            else:
                break
        creds = self.credentials.get(reg.domain)
        raise MasonError(f"unauthorized: {method} {ref.repository} on {reg.domain} was refused"
                         + (" (credentials rejected)" if creds else " (no credentials for this registry)"))

    # ---------------------------------------------------------------- pull

    def get_manifest(self, ref: str | Reference, digest: str | None = None) -> Manifest:
        """Fetch the manifest or index ``ref`` names (or ``digest`` in ``ref``'s repository)."""
        r = _as_ref(ref)
        obj = digest or r.object
        resp = self._request(r, "GET", f"/v2/{r.path}/manifests/{obj}",
                             headers={"Accept": ", ".join(oci.MANIFEST_ACCEPT)})
        if resp.status_code == 404:
            raise MasonError(f"image not found: {r.familiar() if not digest else r.trim().familiar() + '@' + digest}"
                             f" ({_registry_errors(resp)})")
        if resp.status_code != 200:
            raise MasonError(f"cannot fetch manifest of {r.familiar()}: {_registry_errors(resp)}")
        data = resp.content
        if len(data) > MAX_MANIFEST_SIZE:
            raise MasonError(f"manifest of {r.familiar()} is larger than {MAX_MANIFEST_SIZE} bytes")
        actual = oci.sha256_digest(data)
        want = digest or r.digest
        said = resp.headers.get("docker-content-digest", "")
        if want and want.startswith("sha256:") and actual != want:
            raise MasonError(f"digest mismatch for manifest {want} of {r.trim().familiar()}: content is {actual}")
        if said.startswith("sha256:") and said != actual:
            raise MasonError(f"digest mismatch for manifest of {r.familiar()}: registry said {said}, content is {actual}")
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
        resp = self._request(r, "HEAD", f"/v2/{r.path}/manifests/{r.object}",
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
        usable = [d for d in children
                  if d.annotations.get("vnd.docker.reference.type") != "attestation-manifest"]
        for d in usable:
            if d.platform is not None and want.matches(d.platform):
                return d
        for d in usable:
            if d.platform is None:
                return d
        have = ", ".join(sorted({str(d.platform) for d in usable if d.platform})) or "none"
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
        write = dest.write if hasattr(dest, "write") else dest  # type: ignore[union-attr]
        return self._fetch_blob_into(r, desc, write, progress)

    def fetch_blob_bytes(self, ref: str | Reference, desc: Descriptor, max_size: int | None = None) -> bytes:
        r = _as_ref(ref)
        if max_size is not None and desc.size > max_size:
            raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is too large ({desc.size} bytes)")
        chunks: list[bytes] = []
        self._fetch_blob_into(r, desc, chunks.append, None)
        return b"".join(chunks)

    def _fetch_blob_into(self, r: Reference, desc: Descriptor, write: Callable[[bytes], Any],
                         progress: Progress | None) -> int:
        alg = desc.digest.split(":", 1)[0]
        if alg not in ("sha256", "sha512"):
            raise MasonError(f"unsupported digest algorithm in {desc.digest}")
        resp = self._request(r, "GET", f"/v2/{r.path}/blobs/{desc.digest}", stream=True)
        try:
            if resp.status_code == 404:
                raise MasonError(f"blob {desc.digest} not found in {r.trim().familiar()}")
            if resp.status_code != 200:
                resp.read()
                raise MasonError(f"cannot fetch blob {desc.digest} of {r.trim().familiar()}: "
                                 f"{_registry_errors(resp)}")
            h = hashlib.new(alg)
            n = 0
            try:
                for chunk in resp.iter_bytes(CHUNK):
                    n += len(chunk)
                    if desc.size >= 0 and n > desc.size:
                        raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is larger than "
                                         f"its descriptor says ({desc.size} bytes)")
                    h.update(chunk)
                    write(chunk)
                    if progress:
                        progress(n, desc.size)
            except httpx.HTTPError as e:
                raise MasonError(f"download of blob {desc.digest} from {r.domain} broke off: "
                                 f"{_network_error(r.domain, e).message}") from None
        finally:
            resp.close()
        actual = f"{alg}:{h.hexdigest()}"
        if n != desc.size:
            raise MasonError(f"blob {desc.digest} of {r.trim().familiar()} is {n} bytes, "
                             f"its descriptor says {desc.size}")
        if actual != desc.digest:
            raise MasonError(f"digest mismatch for blob {desc.digest} of {r.trim().familiar()}: content is {actual}")
        return n

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

    # ---------------------------------------------------------------- push

    def blob_exists(self, ref: str | Reference, digest: str) -> bool:
        r = _as_ref(ref)
        resp = self._request(r, "HEAD", f"/v2/{r.path}/blobs/{digest}", scopes=self._push_scopes(r))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise MasonError(f"cannot check blob {digest} in {r.trim().familiar()}: HTTP {resp.status_code}")

    def manifest_exists(self, ref: str | Reference, digest: str) -> bool:
        r = _as_ref(ref)
        resp = self._request(r, "HEAD", f"/v2/{r.path}/manifests/{digest}", scopes=self._push_scopes(r),
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
            resp = self._request(r, "POST", f"/v2/{r.path}/blobs/uploads/?mount={desc.digest}&from={repo}",
                                 scopes=scopes, body=lambda: b"")
            if resp.status_code == 201:
                return "mounted"
            if resp.status_code == 202 and resp.headers.get("location"):
                location = resp.headers["location"]
                break
        scopes = self._push_scopes(r)
        if location is None:
            resp = self._request(r, "POST", f"/v2/{r.path}/blobs/uploads/", scopes=scopes, body=lambda: b"")
            if resp.status_code not in (201, 202) or not resp.headers.get("location"):
                raise MasonError(f"registry {r.domain} refused to start an upload to {r.trim().familiar()}: "
                                 f"{_registry_errors(resp)}")
            location = resp.headers["location"]
        location = self._absolute(r, location)
        if self.chunk_size and desc.size > self.chunk_size:
            location = self._upload_chunks(r, desc, source, location, scopes, progress)
            resp = self._request(r, "PUT", _with_param(location, "digest", desc.digest), scopes=scopes,
                                 headers={"Content-Length": "0"}, body=lambda: b"")
        else:
            def body() -> Any:
                return _counting(_chunks(source), desc.size, progress)
            resp = self._request(r, "PUT", _with_param(location, "digest", desc.digest), scopes=scopes,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(desc.size)}, body=body)
        if resp.status_code not in (201, 204):
            why = _registry_errors(resp)
            if "DIGEST_INVALID" in why:
                raise MasonError(f"digest mismatch pushing blob {desc.digest} to {r.trim().familiar()}: "
                                 f"the registry computed another digest")
            raise MasonError(f"upload of blob {desc.digest} to {r.trim().familiar()} failed: {why}")
        said = resp.headers.get("docker-content-digest")
        if said and said != desc.digest:
            raise MasonError(f"digest mismatch pushing blob {desc.digest}: registry stored {said}")
        return "uploaded"

    def _absolute(self, r: Reference, location: str) -> str:
        reg = self._registry(r.domain)
        return str(httpx.URL(reg.base + "/").join(location))

    def _upload_chunks(self, r: Reference, desc: Descriptor, source: BlobSource, location: str,
                       scopes: tuple[str, ...], progress: Progress | None) -> str:
        assert self.chunk_size
        offset = 0
        buf = b""

        def send(piece: bytes, loc: str, start: int) -> str:
            resp = self._request(r, "PATCH", loc, scopes=scopes, body=lambda: piece, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(len(piece)),
                "Content-Range": f"{start}-{start + len(piece) - 1}"})
            if resp.status_code != 202:
                raise MasonError(f"chunked upload of blob {desc.digest} to {r.trim().familiar()} failed: "
                                 f"{_registry_errors(resp)}")
            return self._absolute(r, resp.headers.get("location") or loc)

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
        resp = self._request(r, "PUT", f"/v2/{r.path}/manifests/{obj}", scopes=self._push_scopes(r),
                             headers={"Content-Type": media_type}, body=lambda: data)
        if resp.status_code not in (200, 201, 202):
            raise MasonError(f"push of manifest to {r.trim().familiar()}:{obj} failed: {_registry_errors(resp)}")
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
