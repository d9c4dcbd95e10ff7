"""HTTP transport to OCI distribution registries: one connection pool per registry, the
scheme rule, the auth handshake, and turning network failures into one-line errors.

* Scheme: plain HTTP only for loopback hosts (127.0.0.0/8, ::1, localhost) and hosts named in
  ``insecure_registries``; HTTPS otherwise. ``docker.io`` is served by ``registry-1.docker.io``.
* Auth: ``GET /v2/`` once per registry learns the challenge; ``Basic`` is answered with the
  credentials (``auth.CredentialStore``: Docker's config.json), ``Bearer`` with a token from the
  challenge's realm for the request's scopes (anonymous when there are no credentials; an
  ``identitytoken`` uses the OAuth2 refresh-token POST). Tokens are cached per scope set until
  they expire. A 401 refreshes the challenge (which may name more scopes) and resends once.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import ssl
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import httpx

from mason.backends.sources.auth import Challenge, Credentials, CredentialStore, parse_challenges, scoped_store
from mason.backends.sources.cancel import Streams
from mason.ir.errors import MasonError
from mason.ir.reference import DEFAULT_DOMAIN, Reference

DOCKER_HUB_HOST = "registry-1.docker.io"
USER_AGENT = "mason/0.1"


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


def error_detail(resp: httpx.Response) -> str:
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
    except (ValueError, AttributeError, httpx.HTTPError, httpx.StreamError):
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}".strip()


def network_error(host: str, exc: Exception) -> MasonError:
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


class Transport:
    """Authenticated requests to registries, by reference. Thread-safe."""

    def __init__(self, *, insecure_registries: Sequence[str] = (),
                 credentials: CredentialStore | Mapping[str, Credentials] | None = None,
                 timeout: float = 60.0):
        self.insecure = {h.lower() for h in insecure_registries}
        scoped = scoped_store() if credentials is None else None
        if isinstance(credentials, CredentialStore):
            self.credentials = credentials
        elif scoped is not None:
            self.credentials = scoped
        else:
            self.credentials = CredentialStore(explicit=credentials)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._registries: dict[str, _Registry] = {}
        self._token_client = httpx.Client(timeout=timeout, follow_redirects=True,
                                          headers={"User-Agent": USER_AGENT}, verify=_tls_context())
        self._watch: Streams | None = None

    def watched(self, streams: Streams) -> "Transport":
        """This transport (the same pools, auth state and tokens) reporting the connections of
        every request it sends to ``streams``, so a cancel can shut them down. Do not close it."""
        t = copy.copy(self)
        t._watch = streams
        return t

    def _ext(self) -> dict[str, Any] | None:
        return {"trace": self._watch.trace} if self._watch is not None else None

    def _watch_response(self, resp: httpx.Response) -> None:
        if self._watch is not None:
            self._watch.add_response(resp)

    def close(self) -> None:
        with self._lock:
            for reg in self._registries.values():
                reg.client.close()
            self._registries.clear()
        self._token_client.close()

    def absolute(self, ref: Reference, location: str) -> str:
        """An upload ``Location`` (maybe relative) as an absolute URL."""
        return str(httpx.URL(self._registry(ref.domain).base + "/").join(location))

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
            raise MasonError(f"registry {reg.domain} answered /v2/ with {error_detail(resp)}")
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
            req = reg.client.build_request(method, reg.url(url), headers=dict(headers), content=content,
                                           extensions=self._ext())
            resp = reg.client.send(req, stream=stream)
            self._watch_response(resp)
        except httpx.HTTPError as e:
            raise network_error(reg.domain, e) from None
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
                resp = self._token_client.post(realm, data=form, extensions=self._ext())
            else:
                params: list[tuple[str, str]] = []
                if service:
                    params.append(("service", service))
                params.extend(("scope", s) for s in scopes)
                headers = {}
                if creds is not None:
                    headers["Authorization"] = creds.basic_header()
                    params.append(("account", creds.username))
                resp = self._token_client.get(realm, params=params, headers=headers, extensions=self._ext())
        except httpx.HTTPError as e:
            raise MasonError(f"cannot get a token for registry {reg.domain} from {realm}: "
                             f"{network_error(realm, e).message}") from None
        if resp.status_code in (401, 403):
            raise MasonError(f"unauthorized: the token server of {reg.domain} rejected "
                             f"{'the credentials' if creds else 'anonymous access'}")
        if resp.status_code != 200:
            raise MasonError(f"token server of {reg.domain} answered {error_detail(resp)}")
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

    def request(self, ref: Reference, method: str, url: str, *, scopes: Sequence[str] = (),
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
