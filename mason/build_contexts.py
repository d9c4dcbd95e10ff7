"""``--build-context NAME=VALUE`` as buildx takes it, turned into what BuildKit's Dockerfile
frontend receives (its ``context:NAME`` options) and the client directories to send.

VALUE is ``docker-image://REF``, ``oci-layout://PATH[:TAG|@DIGEST]`` (an OCI image layout
directory: resolved to a digest here, as buildx does, and given to the solver as layout store
NAME), an ``http(s)://`` URL, a git URL (``git@…``, ``git://``, ``ssh://``, ``https://….git``),
or a directory (sent as ``local://NAME``; its own ``.dockerignore`` applies). NAME is a stage
or image name and is kept in the form BuildKit looks it up in (``docker.io/library/alpine:latest``
→ ``alpine``). Every mistake is one error naming the flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from mason.ir.errors import MasonError
from mason.ir.patterns import parse_dockerignore
from mason.ir.reference import parse_reference

__all__ = ["BuildContexts", "parse_build_contexts", "LayoutResolver"]

_URLS = ("http://", "https://", "git://", "ssh://", "git@")
_RESERVED = ("context", "dockerfile")  # the driver's own local:// names


@dataclass(frozen=True)
class BuildContexts:
    """``values``: name -> the frontend's ``context:NAME`` value; ``dirs``: local name ->
    directory to send; ``excludes``: local name -> its ``.dockerignore`` patterns;
    ``layouts``: OCI layout store -> directory."""

    values: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    excludes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)


class LayoutResolver:
    """A resolver that also answers the image config of an image in one of the OCI layouts of
    ``--build-context`` (``resolve_oci_layout``); everything else goes to ``inner``."""

    def __init__(self, inner, layouts: dict[str, str]):
        self.inner = inner
        self.layouts = layouts

    def resolve_image_config(self, ref, platform=None):
        if self.inner is None:
            raise MasonError(f"cannot resolve {ref} offline")
        return self.inner.resolve_image_config(ref, platform)

    def resolve_oci_layout(self, store: str, digest: str, platform) -> dict:
        from mason.backends.sources.ocilayout import layout_image_config

        if store not in self.layouts:
            raise MasonError(f"unknown OCI layout store {store!r}")
        return layout_image_config(self.layouts[store], digest, platform, f"--build-context {store}")

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _oci_layout(flag: str, key: str, spec: str, out: BuildContexts) -> None:
    from mason.backends.sources.ocilayout import find_in_layout
    from mason.ir.reference import validate_digest

    path, at, digest = spec.partition("@")
    tag = None
    if at:
        try:
            validate_digest(digest)
        except MasonError as e:
            raise MasonError(f"{flag}: {e.message}") from None
    else:
        i = path.rfind(":")
        if i > path.rfind("/"):
            path, tag = path[:i], path[i + 1:]
    if not path or not os.path.isdir(path):
        raise MasonError(f"{flag}: {path!r} is not a directory (an OCI image layout)")
    try:
        dgst = find_in_layout(path, tag, digest or None, flag)
    except MasonError as e:
        raise MasonError(e.message if e.message.startswith(flag) else f"{flag}: {e.message}") from None
    store = key.replace(":", "-")
    out.values[key] = f"oci-layout://{store}@{dgst}"
    out.layouts[store] = os.path.abspath(path)


def parse_build_contexts(specs: Iterable[str]) -> BuildContexts:
    out = BuildContexts()
    for spec in specs:
        name, sep, value = spec.partition("=")
        flag = f"--build-context {spec}"
        if not sep or not name or not value:
            raise MasonError(f"{flag}: expected NAME=VALUE (VALUE: a directory, docker-image://REF, "
                             "a URL or a git repository)")
        from mason.frontends.dockerfile.lower_contexts import context_key  # the builder, only for a context

        key = context_key(name)
        if key is None:
            raise MasonError(f"{flag}: {name!r} is not a valid stage or image name (lowercase letters, "
                             "digits, '.', '_', '-', '/', an optional :tag)")
        if key in _RESERVED:
            raise MasonError(f"{flag}: {key!r} is reserved (the build context is the CONTEXT argument)")
        if key in out.values:
            raise MasonError(f"{flag}: {key!r} is given twice")
        if value.startswith("docker-image://"):
            ref = value[len("docker-image://"):]
            if ref != "scratch":
                try:
                    parse_reference(ref)
                except MasonError as e:
                    raise MasonError(f"{flag}: {e.message}") from None
            out.values[key] = value
        elif value.startswith("oci-layout://"):
            _oci_layout(flag, key, value[len("oci-layout://"):], out)
        elif value.startswith(_URLS):
            out.values[key] = value
        elif "://" in value and not os.path.isdir(value):
            raise MasonError(f"{flag}: unsupported context source {value.split('://', 1)[0]!r} "
                             "(docker-image://, http(s)://, git, or a directory)")
        else:
            if not os.path.isdir(value):
                raise MasonError(f"{flag}: {value!r} is not a directory")
            out.values[key] = "local:" + key
            out.dirs[key] = os.path.abspath(value)
            ignore = os.path.join(value, ".dockerignore")
            if os.path.isfile(ignore):
                with open(ignore, encoding="utf-8", errors="surrogateescape") as f:
                    out.excludes[key] = tuple(str(p) for p in parse_dockerignore(f.read(), ignore))
    return out
