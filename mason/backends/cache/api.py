"""The entry points the driver calls with parsed ``--cache-from`` / ``--cache-to`` specs.

* :func:`import_caches` before the solve: loads each cache's manifest and config (no layer
  blob) into a :class:`~.importer.RemoteCache` for ``SolveOptions.remote_cache``. A cache that
  is missing, unreadable, corrupt or refused is a warning and the build goes on without it.
* :func:`export_caches` after the solve (and the image outputs): writes every registry / local
  cache. A failure is an error, or a warning with ``ignore-error=true``.
* :func:`inline_hook` for ``--cache-to type=inline``: the image config key that carries the
  cache of the image's own layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mason.backends.cache.format import INLINE_KEY, encode_inline
from mason.backends.cache.spec import CacheSpec
from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec

Warn = Callable[[str], None]


class CacheRegistry:
    """One registry client for a build's caches, made on first use and closed at the end."""

    def __init__(self, insecure_registries: Sequence[str] = ()):
        self.insecure = tuple(insecure_registries)
        self._client: Any = None

    def get(self) -> Any:
        if self._client is None:
            from mason.backends.sources.registry import RegistryClient

            self._client = RegistryClient(insecure_registries=self.insecure)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def import_caches(specs: Sequence[CacheSpec], registry: CacheRegistry, warn: Warn,
                  platform: PlatformSpec | None = None) -> Any:
    """A RemoteCache of every ``--cache-from`` that loads, or None when none does."""
    from mason.backends.cache.importer import RemoteCache
    from mason.backends.cache.sources import LocalSource, RegistrySource

    items = []
    for s in specs:
        try:
            src: Any
            if s.type == "local":
                assert s.path is not None
                src = LocalSource(s.path, s.tag, s.digest)
            else:
                assert s.ref is not None
                src = RegistrySource(registry.get(), s.ref, platform)
            items.append((src, src.load()))
        except MasonError as e:
            warn(f"--cache-from {s.describe()}: {e.message}; building without it")
    if not items:
        return None
    rc = RemoteCache.from_loaded(items, warn)
    for imp, line in zip(rc.imports, rc.summary(), strict=True):
        if imp.buildkit:  # read in full, but its keys are BuildKit's: say so instead of missing quietly
            warn(f"--cache-from {line}")
    return rc


def export_caches(session: Any, specs: Sequence[CacheSpec], finals: Sequence[Any], registry: CacheRegistry,
                  warn: Warn, source_date_epoch: int | None = None) -> list[str]:
    """Write every registry / local ``--cache-to``; ``finals``: the results the build exports
    (one per platform). Returns one status line per cache written."""
    from mason.backends.cache.exporter import collect, write_local, write_registry

    done = []
    vertices = None
    mounts: dict[int, list[tuple[str, Any]]] = {}  # cache-mounts-max-size -> the mounts' layers

    def mount_layers(max_bytes: int) -> list[tuple[str, Any]]:
        if max_bytes not in mounts:
            from mason.backends.cache.mounts import mount_layers as layers

            cm = session.ctx.cache_mounts
            mounts[max_bytes] = layers(session.client, session.cache_mount_ids(), cm.path_of, max_bytes=max_bytes,
                                       warn=warn, remote=session.ctx.opts.remote_cache,
                                       source_date_epoch=source_date_epoch)
        return mounts[max_bytes]

    for s in specs:
        if s.type == "inline":
            continue
        try:
            if vertices is None:
                vertices = session.vertices()
            c = collect(session.client, vertices, finals, mode=s.mode, source_date_epoch=source_date_epoch,
                        mounts=mount_layers(s.cache_mounts_max) if s.cache_mounts else (),
                        compression=s.compression)
            if s.type == "local":
                digest = write_local(c, s)
            else:
                digest = write_registry(c, s, registry.get())
        except MasonError as e:
            if not s.ignore_error:
                raise MasonError(f"--cache-to {s.describe()}: {e.message}") from None
            warn(f"--cache-to {s.describe()}: {e.message} (ignored: ignore-error=true)")
            continue
        done.append(f"exported cache to {s.describe()} ({len(c.config.records)} records, "
                    f"{len(c.config.layers)} layers, mode={s.mode}"
                    + (f", compression={s.compression}" if s.compression != "gzip" else "") + f") {digest}")
    return done


def inline_hook(session: Any, final: Any, source_date_epoch: int | None
                ) -> Callable[[Sequence[Any]], Mapping[str, Any]]:
    """``config_hook`` for the image exporter: the inline cache of the image's own layers."""
    from mason.backends.cache.exporter import collect

    def hook(layers: Sequence[Any]) -> Mapping[str, Any]:
        c = collect(session.client, session.vertices(), [final], mode="min", source_date_epoch=source_date_epoch)
        image = {la.digest for la in layers}
        if any(la.blob not in image for la in c.config.layers):
            return {}  # the records name a layer the image does not carry
        return {INLINE_KEY: encode_inline(c.config)}
    return hook


__all__ = ["CacheRegistry", "export_caches", "import_caches", "inline_hook"]
