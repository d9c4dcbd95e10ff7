"""Registry credentials and auth challenges.

Credentials come from Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): ``auths`` entries with a base64 ``auth`` ("user:password") or
``username``/``password`` (or an ``identitytoken``), and ``credHelpers`` / ``credsStore``
helpers (``docker-credential-NAME get``). Keys are matched on the host: ``https://host/v2/``,
``http://host`` and ``host`` are the same; Docker Hub's key is ``https://index.docker.io/v1/``.

``WWW-Authenticate`` challenges (RFC 7235) are parsed into scheme + parameters; the client in
``registry.py`` answers ``Basic`` with the credentials and ``Bearer`` with a token from the
realm (Docker's token flow).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from mason.ir.errors import MasonError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                   "registry-1.docker.io", "registry.hub.docker.com")


@dataclass(frozen=True)
class Credentials:
    """A username and password, or an identity (refresh) token for the OAuth2 flow."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _host_of(key: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000``."""
    key = key.strip()
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key)
    return key.split("/", 1)[0].lower()


def _is_docker_hub(host: str) -> bool:
    return host in {_host_of(k) for k in DOCKER_HUB_KEYS}


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


class CredentialStore:
    """Looks up credentials for a registry host (as written in references: ``docker.io``,
    ``127.0.0.1:5000``). ``explicit`` entries win over Docker's config file."""

    def __init__(self, explicit: Mapping[str, Credentials] | None = None,
                 config_path: str | os.PathLike[str] | None = None, use_docker_config: bool = True):
        self.explicit = {_host_of(k): v for k, v in (explicit or {}).items()}
        self.config_path = Path(config_path) if config_path is not None else None
        self.use_docker_config = use_docker_config
        self._config: dict | None = None

    def _load(self) -> dict:
        if self._config is None:
            path = self.config_path or docker_config_path()
            try:
                text = path.read_text()
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                self._config = {}
                return self._config
            try:
                cfg = json.loads(text) if text.strip() else {}
            except json.JSONDecodeError as e:
                raise MasonError(f"cannot read Docker config {path}: {e}") from None
            self._config = cfg if isinstance(cfg, dict) else {}
        return self._config

    def get(self, host: str) -> Credentials | None:
        host = _host_of(host)
        hub = _is_docker_hub(host)
        for k, v in self.explicit.items():
            if k == host or (hub and _is_docker_hub(k)):
                return v
        if not self.use_docker_config:
            return None
        cfg = self._load()
        helpers = cfg.get("credHelpers") or {}
        for key, helper in helpers.items():
            if _host_of(key) == host or (hub and _is_docker_hub(_host_of(key))):
                return _run_helper(str(helper), "https://index.docker.io/v1/" if hub else host)
        for key, entry in (cfg.get("auths") or {}).items():
            k = _host_of(key)
            if (k == host or (hub and _is_docker_hub(k))) and isinstance(entry, dict):
                creds = _from_auth_entry(entry, key)
                if creds is not None:
                    return creds
        store = cfg.get("credsStore")
        if store:
            return _run_helper(str(store), "https://index.docker.io/v1/" if hub else host)
        return None


_SCOPED: contextvars.ContextVar[CredentialStore | None] = contextvars.ContextVar("mason_credentials", default=None)


@contextlib.contextmanager
def scoped_credentials(store: CredentialStore) -> Iterator[None]:
    """Registry clients made in this context (and in the solver's workers, which run in a copy
    of it) use ``store`` instead of this process's Docker config: ``mason serve`` gives each
    build the credentials its client's session offers."""
    token = _SCOPED.set(store)
    try:
        yield
    finally:
        _SCOPED.reset(token)


def scoped_store() -> CredentialStore | None:
    return _SCOPED.get()


def _from_auth_entry(entry: Mapping[str, object], key: str) -> Credentials | None:
    token = str(entry.get("identitytoken") or "")
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"]), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise MasonError(f"Docker config: the 'auth' of {key!r} is not valid base64") from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise MasonError(f"Docker config: the 'auth' of {key!r} is not 'user:password'")
        return Credentials(user, password, token)
    if entry.get("username") or entry.get("password"):
        return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""), token)
    if token:
        return Credentials("<token>", "", token)
    return None


def _run_helper(helper: str, server: str) -> Credentials | None:
    exe = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=30)
    except FileNotFoundError:
        raise MasonError(f"Docker config names credential helper {helper!r} but {exe} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise MasonError(f"credential helper {exe} did not answer in 30 s") from None
    if proc.returncode != 0:
        out = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in out.lower():
            return None
        raise MasonError(f"credential helper {exe} failed: {out or 'exit ' + str(proc.returncode)}")
    try:
        obj = json.loads(proc.stdout)
        user, secret = str(obj.get("Username", "")), str(obj.get("Secret", ""))
    except (json.JSONDecodeError, AttributeError):
        raise MasonError(f"credential helper {exe} printed something that is not JSON") from None
    if user == "<token>":
        return Credentials(user, "", secret)
    return Credentials(user, secret)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "basic", "bearer"
    params: Mapping[str, str]


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))\s*(,)?")
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$|,)")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value: ``Bearer realm="…",service="…",scope="…"``;
    several challenges may follow each other, comma-separated."""
    out: list[Challenge] = []
    pos = 0
    n = len(header)
    while pos < n:
        while pos < n and header[pos] in " ,":
            pos += 1
        m = _SCHEME_RE.match(header, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < n:
            pm = _PARAM_RE.match(header, pos)
            if not pm:
                break
            value = pm.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else pm.group(3)
            params[pm.group(1).lower()] = value
            pos = pm.end()
            if not pm.group(4):
                break
        out.append(Challenge(scheme, params))
    return out
