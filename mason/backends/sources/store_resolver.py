"""Image metadata from mason's image store first, then a registry: the
:class:`~mason.ir.resolver.ImageMetaResolver` the build driver lowers with, so that ``FROM NAME``
of an image that ``mason load`` brought in (or an earlier build named) resolves with no registry
at all — the same order the solver's ``docker-image://`` source uses (``image.resolvemode=default``).

A name found in the store pins to its record's target digest (a manifest or an index); an image
that is there only in part (a blob missing) or not for the wanted platform falls through to the
registry; when the registry does not have it either (or cannot be reached), the error names the
platforms the store has it for. The containerd client is opened on the first lookup, so a
Dockerfile without ``FROM`` an image never starts a daemon.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from mason.backends import oci
from mason.backends.containerd.client import Client, NotFound
from mason.backends.sources.image import choose_manifest, index_platforms, store_platform_miss
from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference
from mason.ir.resolver import ImageMetaResolver, PlatformSpec, ResolvedImage, pinned_ref

__all__ = ["StoreResolver"]


class _Miss(Exception):
    """The store does not have (all of) the image for this platform (``reason``: it has the
    image, for other platforms only)."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class StoreResolver:
    """Resolve from mason's image store (a client from ``client``, made when first needed),
    else from ``fallback`` (None: the store only)."""

    def __init__(self, client: Callable[[], Client], fallback: ImageMetaResolver | None = None):
        self._make = client
        self._client: Client | None = None
        self._lock = threading.Lock()
        self.fallback = fallback

    def _get_client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        r = parse_reference(ref)
        want = platform or PlatformSpec.default()
        try:
            return self._from_store(r, want)
        except _Miss as e:
            reason = e.reason
        if self.fallback is None:
            raise MasonError(reason or f"image {r.familiar()} is not in mason's image store")
        try:
            return self.fallback.resolve_image_config(ref, platform)
        except MasonError as e:
            if not reason:
                raise
            # the store has the image, not for this platform: say which platforms it has first
            raise MasonError(f"{reason}; the registry: {e.message}", e.loc) from None

    def _read(self, digest: str) -> bytes:
        try:
            data = self._get_client().read_blob(digest)
        except NotFound:
            raise _Miss() from None
        if digest.startswith("sha256:") and oci.sha256_digest(data) != digest:
            raise MasonError(f"content store blob {digest} is corrupt")
        return data

    def _json(self, digest: str) -> dict[str, Any]:
        try:
            obj = json.loads(self._read(digest))
        except ValueError:
            raise _Miss() from None
        if not isinstance(obj, dict):
            raise _Miss()
        return obj

    def _from_store(self, r: Reference, want: PlatformSpec) -> ResolvedImage:
        if r.digest:
            root_digest, root_mt = r.digest, ""
        else:
            try:
                img = self._get_client().get_image(str(r))
            except NotFound:
                raise _Miss() from None
            root_digest, root_mt = img.target.digest, img.target.media_type
        obj = self._json(root_digest)
        root_mt = root_mt or oci.detect_manifest_type(obj)
        mt, manifest_digest, plat = root_mt, root_digest, None
        if oci.is_index(mt):
            try:
                d = choose_manifest(obj, want, r.familiar())
            except MasonError:  # not for this platform here: maybe the registry has it
                raise _Miss(store_platform_miss(r.familiar(), want, index_platforms(obj), index=True)) from None
            manifest_digest, plat = d.digest, d.platform
            obj = self._json(d.digest)
            mt = d.media_type or oci.detect_manifest_type(obj)
        if not oci.is_manifest(mt):
            raise _Miss()
        cdesc = obj.get("config") or {}
        config_digest = str(cdesc.get("digest", ""))
        cfg = self._json(config_digest)
        have = PlatformSpec.from_json(cfg) if cfg.get("architecture") else None
        if plat is None:
            if have is not None and have.os and not want.matches(have):
                raise _Miss(store_platform_miss(r.familiar(), want, str(have), index=False))
            plat = have
        return ResolvedImage(ref=pinned_ref(r, root_digest), digest=root_digest, config=cfg,
                             manifest_digest=manifest_digest, config_digest=config_digest, platform=plat,
                             media_type=root_mt)

    def close(self) -> None:
        close = getattr(self.fallback, "close", None)
        if close is not None:
            close()
