"""``--cache-to`` / ``--cache-from`` values, in buildx's syntax (CSV ``key=value`` fields).

    type=registry,ref=REG/REPO:TAG[,mode=min|max][,image-manifest=true|false][,oci-mediatypes=true|false]
                 [,compression=gzip|zstd|uncompressed][,ignore-error=true][,cache-mounts=true]
                 [,cache-mounts-max-size=SIZE][,registry.insecure=true]
    type=local,dest=DIR[,tag=TAG][,…the same options]     (export)
    type=local,src=DIR[,tag=TAG]                          (import)
    type=inline                                           (export: the cache in the image config)
    REG/REPO:TAG                                          shorthand for type=registry,ref=REG/REPO:TAG

An image exported with ``type=inline`` is imported with ``--cache-from REF`` (the registry type
reads an inline cache from an image's config). Every mistake is a :class:`MasonError` with one
line, before the build runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mason.backends.exporters.outputs import parse_attrs
from mason.ir.errors import MasonError
from mason.ir.reference import normalize

TYPES = ("registry", "local", "inline")
MODES = ("min", "max")
COMPRESSIONS = ("gzip", "zstd", "uncompressed")
DEFAULT_TAG = "latest"
DEFAULT_MOUNTS_MAX = 512 << 20  # bytes of cache-mount content exported per build, at most

_EXPORT_COMMON = ("mode", "image-manifest", "oci-mediatypes", "compression", "ignore-error", "cache-mounts",
                  "cache-mounts-max-size")
_OPTIONS = {
    ("to", "registry"): ("ref", "registry.insecure") + _EXPORT_COMMON,
    ("to", "local"): ("dest", "tag") + _EXPORT_COMMON,
    ("to", "inline"): ("mode",),
    ("from", "registry"): ("ref", "registry.insecure"),
    ("from", "local"): ("src", "tag", "digest"),
}
_SIZE_RE = re.compile(r"^(\d+)\s*([kmgt]?i?b?)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class CacheSpec:
    """One ``--cache-to`` (``direction="to"``) or ``--cache-from`` (``"from"``) value.

    ``ref`` is the normalized registry reference (registry), ``path`` the directory (local:
    ``dest`` or ``src``), ``tag`` the local layout's tag."""

    direction: str
    type: str
    ref: str | None = None
    path: str | None = None
    tag: str = DEFAULT_TAG
    digest: str | None = None
    mode: str = "min"
    image_manifest: bool = True
    oci_mediatypes: bool = True
    compression: str = "gzip"
    ignore_error: bool = False
    cache_mounts: bool = False
    cache_mounts_max: int = DEFAULT_MOUNTS_MAX
    insecure: bool = False
    spec: str = field(default="", compare=False)

    def describe(self) -> str:
        """How messages name it: the ref, ``local:DIR[:TAG]``, or ``inline``."""
        if self.type == "registry":
            return str(self.ref)
        if self.type == "local":
            return f"local:{self.path}" + (f":{self.tag}" if self.tag != DEFAULT_TAG else "")
        return "inline"


def _flag(what: str, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", ""):
        return True
    if v in ("false", "0"):
        return False
    raise MasonError(f"{what}: {key} must be true or false, not {value!r}")


def parse_size(text: str, what: str = "size") -> int:
    """``512MiB``, ``1g``, ``100000`` → bytes."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise MasonError(f"{what}: invalid size {text!r} (e.g. 512MiB, 2GB, 100000)")
    unit = (m.group(2) or "").lower().replace("i", "").replace("b", "")
    return int(m.group(1)) * _UNITS[unit or ""]


def parse_cache_spec(text: str, direction: str) -> CacheSpec:
    """Parse one ``--cache-to`` (``direction="to"``) or ``--cache-from`` (``"from"``) value."""
    if direction not in ("to", "from"):
        raise ValueError(direction)
    flag = f"--cache-{direction}"
    raw = text.strip()
    if not raw:
        raise MasonError(f"invalid {flag} '': expected type=registry|local|inline[,KEY=VALUE...] or a reference")
    if "\0" in text:
        raise MasonError(f"invalid {flag} {text!r}: contains a NUL byte")
    if "=" not in raw:  # buildx's shorthand: a registry reference
        if "," in raw:
            raise MasonError(f"invalid {flag} {text!r}: expected type=TYPE[,KEY=VALUE...] or a reference")
        raw = f"type=registry,ref={raw}"
    attrs = parse_attrs(raw, f"invalid {flag} {text!r}")
    t = attrs.pop("type", "registry" if "ref" in attrs else None)
    if t is None:
        raise MasonError(f"invalid {flag} {text!r}: type is missing")
    t = t.lower()
    if t not in TYPES:
        raise MasonError(f"{flag}: unknown cache type {t!r} (valid: {', '.join(TYPES)})")
    what = f"{flag} type={t}"
    if (direction, t) not in _OPTIONS:
        raise MasonError(f"{what} cannot be imported: an inline cache is read from the image itself "
                         "(--cache-from type=registry,ref=IMAGE)")
    allowed = _OPTIONS[(direction, t)]
    for key in attrs:
        if key not in allowed:
            raise MasonError(f"{what}: unknown option {key!r} (valid: {', '.join(allowed)})")
    kw: dict = {}
    if t == "registry":
        ref = attrs.get("ref", "")
        if not ref:
            raise MasonError(f"{what} needs ref=REGISTRY/REPOSITORY[:TAG]")
        try:
            kw["ref"] = normalize(ref)
        except MasonError as e:
            raise MasonError(f"{what}: {e.message}") from None
        if "registry.insecure" in attrs:
            kw["insecure"] = _flag(what, "registry.insecure", attrs["registry.insecure"])
    elif t == "local":
        key = "dest" if direction == "to" else "src"
        path = attrs.get(key, "")
        if not path:
            raise MasonError(f"{what} needs {key}=DIR")
        kw["path"] = path
        tag = attrs.get("tag", DEFAULT_TAG)
        if not tag or any(c in tag for c in "/\0\n"):
            raise MasonError(f"{what}: invalid tag {tag!r}")
        kw["tag"] = tag
        if attrs.get("digest"):
            d = attrs["digest"]
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
                raise MasonError(f"{what}: invalid digest {d!r}")
            kw["digest"] = d
    mode = attrs.get("mode", "min").lower()
    if mode not in MODES:
        raise MasonError(f"{what}: mode must be min or max, not {attrs['mode']!r}")
    if t == "inline" and mode != "min":
        raise MasonError(f"{what}: an inline cache holds only the image's own layers (mode=min)")
    kw["mode"] = mode
    if "image-manifest" in attrs:
        kw["image_manifest"] = _flag(what, "image-manifest", attrs["image-manifest"])
    if "oci-mediatypes" in attrs:
        kw["oci_mediatypes"] = _flag(what, "oci-mediatypes", attrs["oci-mediatypes"])
    if kw.get("image_manifest", True) and not kw.get("oci_mediatypes", True) and direction == "to" and t != "inline":
        if "image-manifest" in attrs:
            raise MasonError(f"{what}: image-manifest=true needs oci-mediatypes=true")
        kw["image_manifest"] = False  # Docker media types: the index shape, as BuildKit writes it
    if "compression" in attrs:
        c = attrs["compression"].lower()
        if c not in COMPRESSIONS:
            raise MasonError(f"{what}: compression must be one of {', '.join(COMPRESSIONS)}, not {c!r}")
        kw["compression"] = c
    if "ignore-error" in attrs:
        kw["ignore_error"] = _flag(what, "ignore-error", attrs["ignore-error"])
    if "cache-mounts" in attrs:
        kw["cache_mounts"] = _flag(what, "cache-mounts", attrs["cache-mounts"])
    if "cache-mounts-max-size" in attrs:
        kw["cache_mounts_max"] = parse_size(attrs["cache-mounts-max-size"], f"{what}: cache-mounts-max-size")
    return CacheSpec(direction, t, spec=text, **kw)


def parse_cache_specs(values: Sequence[str], direction: str) -> list[CacheSpec]:
    """Every value of a repeatable flag; an exact duplicate is dropped."""
    out: list[CacheSpec] = []
    for v in values:
        s = parse_cache_spec(v, direction)
        if s not in out:
            out.append(s)
    return out
