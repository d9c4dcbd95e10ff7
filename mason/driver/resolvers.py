"""The image-metadata resolvers a lowering asks: the registry client (for ``mason lower``), and
:class:`OnDemandResolver`, which makes its resolver on the first ask."""

from __future__ import annotations

from mason.ir.resolver import CachingResolver, ImageMetaResolver, PlatformSpec


def registry_resolver(resolve: bool, insecure_registries: tuple[str, ...]
                      ) -> tuple[ImageMetaResolver | None, object | None]:
    """The caching registry resolver and the client to close after (both None with ``resolve``
    off: lowering without asking registries)."""
    if not resolve:
        return None, None
    from mason.backends.sources.registry import RegistryResolver

    inner = RegistryResolver(insecure_registries=insecure_registries)
    return CachingResolver(inner), inner


class OnDemandResolver:
    """A resolver made on the first ask: a Dockerfile with no image to resolve (``FROM
    scratch``, stages only) never imports the registry client or opens a connection."""

    def __init__(self, make):
        self._make = make
        self._inner = None

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None):
        if self._inner is None:
            self._inner = self._make()
        return self._inner.resolve_image_config(ref, platform)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
