"""The image-metadata resolver interface that lowering calls (BuildKit's ResolveImageConfig).

A frontend lowering ``FROM busybox`` asks an :class:`ImageMetaResolver` for the image config
(to seed ENV, WORKDIR, USER, …) and for the digest to pin the source op to. The registry
client in ``mason.backends.sources`` implements it for real; :class:`InMemoryResolver` serves
tests, and :class:`CachingResolver` makes one build ask each (ref, platform) only once.

What gets pinned. BuildKit's ``imageutil.Config`` resolves the reference to its *root*
descriptor and returns that descriptor's digest: for a multi-platform image it is the digest
of the **index** (manifest list), not of the platform's manifest; the platform travels
separately in the source op's ``platform`` field, and the puller picks the manifest from the
index again. A single-platform image pins to its manifest. A reference that already carries a
digest keeps it. :attr:`ResolvedImage.digest` / :attr:`ResolvedImage.ref` follow that rule;
:attr:`ResolvedImage.manifest_digest` is the platform's manifest, for callers that need it.

Only the standard library: ``mason.ir`` imports nothing else of mason but itself.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, TypeVar, runtime_checkable

from mason.ir.errors import MasonError
from mason.ir.reference import Reference, parse_reference

T = TypeVar("T")

# uname -m / Go-ish spellings → OCI architecture (+ variant), like containerd's platforms.Normalize.
_ARCH_ALIASES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "arm": ("arm", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "mips64le": ("mips64le", ""),
    "loongarch64": ("loong64", ""),
    "loong64": ("loong64", ""),
}
_KNOWN_OS = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
             "aix", "android", "ios", "js", "plan9", "dragonfly", "wasip1"}


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """An OCI platform: ``linux/amd64``, ``linux/arm/v7``. Normalized on :meth:`parse`."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> "PlatformSpec":
        """``linux/amd64``, ``linux/arm64/v8``, ``linux/aarch64``, ``amd64`` (OS linux), ``linux``
        (the host's architecture). Raises :class:`MasonError` for anything else."""
        parts = text.strip().lower().split("/")
        if not text.strip() or len(parts) > 3 or any(not p for p in parts):
            raise MasonError(f"invalid platform {text!r}: expected os/arch[/variant]")
        if len(parts) == 1:
            if parts[0] in _KNOWN_OS:
                host = cls.default()
                return cls(parts[0], host.architecture, host.variant)
            parts = ["linux", parts[0]]
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else ""
        if os_ not in _KNOWN_OS:
            raise MasonError(f"invalid platform {text!r}: unknown operating system {os_!r}")
        if arch not in _ARCH_ALIASES:
            raise MasonError(f"invalid platform {text!r}: unknown architecture {arch!r}")
        arch, implied = _ARCH_ALIASES[arch]
        return cls(os_, arch, _normalize_variant(arch, variant or implied))

    @classmethod
    def default(cls) -> "PlatformSpec":
        """The host's platform (``uname -m``: x86_64 → amd64, aarch64 → arm64)."""
        machine = _platform.machine().lower()
        arch, variant = _ARCH_ALIASES.get(machine, (machine, ""))
        return cls("linux", arch, _normalize_variant(arch, variant))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "PlatformSpec":
        """From an OCI ``platform`` object or an image config (``os``/``architecture``/``variant``)."""
        arch = str(obj.get("architecture", ""))
        arch_n, implied = _ARCH_ALIASES.get(arch.lower(), (arch, ""))
        return cls(str(obj.get("os", "")), arch_n,
                   _normalize_variant(arch_n, str(obj.get("variant", "") or implied)))

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def normalized(self) -> "PlatformSpec":
        arch, implied = _ARCH_ALIASES.get(self.architecture.lower(), (self.architecture, ""))
        return PlatformSpec(self.os.lower(), arch, _normalize_variant(arch, self.variant or implied))

    def matches(self, other: "PlatformSpec") -> bool:
        """Whether an image built for ``other`` serves this requested platform: same OS,
        architecture and variant once normalized (``arm64/v8`` = ``arm64``, ``arm`` = ``arm/v7``)."""
        return self.normalized() == other.normalized()

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def choose_platform(entries: Iterable[T], want: PlatformSpec,
                    platform_of: Callable[[T], "PlatformSpec | None"]) -> T | None:
    """The entry of a manifest list an image for ``want`` comes from, as containerd chooses:
    the first whose platform matches, else the first that names no platform, else None. The one
    implementation of that choice (registry, image store and the static resolver use it)."""
    entries = list(entries)
    for e in entries:
        p = platform_of(e)
        if p is not None and want.matches(p):
            return e
    return next((e for e in entries if platform_of(e) is None), None)


def _normalize_variant(arch: str, variant: str) -> str:
    variant = variant.lower()
    if arch == "arm64" and variant in ("8", "v8"):
        return ""  # containerd normalizes arm64/v8 to arm64
    if arch == "amd64" and variant in ("1", "v1"):
        return ""
    if arch == "arm":
        if variant in ("", "7"):
            return "v7"  # containerd: plain arm means arm/v7
        if variant in ("5", "6", "8"):
            return "v" + variant
    return variant


@dataclass(frozen=True)
class ResolvedImage:
    """What resolving ``ref`` for a platform gave.

    ``ref`` is the pinned, normalized name ``domain/path:tag@digest`` (the tag kept, as BuildKit
    pins; no tag when the reference named only a digest);
    ``digest`` is the root digest (the index for a multi-platform image, see the module
    docstring); ``manifest_digest`` the chosen platform's manifest; ``config`` the OCI image
    config JSON (``architecture``, ``os``, ``config``: ``Env``, ``Cmd``…, ``rootfs``, ``history``).
    """

    ref: str
    digest: str
    config: dict[str, Any]
    manifest_digest: str = ""
    config_digest: str = ""
    platform: PlatformSpec | None = None
    media_type: str = ""


@runtime_checkable
class ImageMetaResolver(Protocol):
    """Resolves an image reference to its config and pinned digest (BuildKit's
    ``ResolveImageConfig``). ``platform=None`` means the host's platform."""

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        ...


def pinned_ref(ref: str | Reference, digest: str) -> str:
    """``busybox`` + digest → ``docker.io/library/busybox:latest@sha256:…`` (BuildKit's pin:
    ``TagNameOnly`` then ``WithDigest``; a tag given stays, a digest given is replaced)."""
    r = ref if isinstance(ref, Reference) else parse_reference(ref)
    return str(r.with_digest(digest))


def _fake_digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass
class _Entry:
    config: dict[str, Any]
    platform: PlatformSpec | None
    manifest_digest: str


class InMemoryResolver:
    """A resolver over a dict, for tests: ``InMemoryResolver({"busybox": config})``.

    Images added without a platform serve any platform. Several images added for one reference
    with different platforms form a multi-platform image: they share one (made-up) index
    digest, which is what resolving pins to, like BuildKit. Digests are derived from the
    contents, so they are stable across runs; pass ``digest=`` to choose one.
    """

    def __init__(self, images: Mapping[str, Mapping[str, Any]] | None = None):
        self._images: dict[str, list[_Entry]] = {}
        self._digests: dict[str, str] = {}
        self.calls: list[tuple[str, PlatformSpec | None]] = []
        for ref, config in (images or {}).items():
            self.add(ref, config)

    def add(self, ref: str, config: Mapping[str, Any], platform: PlatformSpec | str | None = None,
            digest: str | None = None) -> None:
        r = parse_reference(ref)
        if isinstance(platform, str):
            platform = PlatformSpec.parse(platform)
        key = str(r.trim().with_tag(r.tag or "latest"))
        cfg = json.loads(json.dumps(dict(config)))
        entries = self._images.setdefault(key, [])
        entries.append(_Entry(cfg, platform, _fake_digest(key, cfg, str(platform))))
        if digest is not None:
            self._digests[key] = digest
        elif len(entries) == 1:
            self._digests[key] = entries[0].manifest_digest
        else:
            self._digests[key] = _fake_digest(key, [e.manifest_digest for e in entries])

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        self.calls.append((ref, platform))
        r = parse_reference(ref)
        want = platform or PlatformSpec.default()
        if r.digest is not None:
            keys = [k for k, d in self._digests.items()
                    if d == r.digest and parse_reference(k).repository == r.repository]
        else:
            keys = [str(r)] if str(r) in self._images else []
        if not keys:
            raise MasonError(f"image not found: {r.familiar()}")
        key = keys[0]
        entries = self._images[key]
        entry = choose_platform(entries, want, lambda e: e.platform)
        if entry is None:
            have = ", ".join(str(e.platform) for e in entries)
            raise MasonError(f"image {r.familiar()} has no manifest for platform {want} (it has {have})")
        digest = r.digest or self._digests[key]
        return ResolvedImage(
            ref=pinned_ref(r, digest),
            digest=digest,
            config=json.loads(json.dumps(entry.config)),
            manifest_digest=entry.manifest_digest,
            platform=entry.platform or want,
        )


class CachingResolver:
    """Wraps a resolver so each (normalized ref, platform) is asked once; thread-safe, and
    concurrent asks for the same key wait for the first instead of asking again. Errors are
    not cached."""

    def __init__(self, inner: ImageMetaResolver):
        self.inner = inner
        self._lock = threading.Lock()
        self._results: dict[tuple[str, PlatformSpec], ResolvedImage] = {}
        self._inflight: dict[tuple[str, PlatformSpec], threading.Lock] = {}

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        key = (str(parse_reference(ref)), platform or PlatformSpec.default())
        with self._lock:
            if key in self._results:
                return self._results[key]
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._results:
                    return self._results[key]
            result = self.inner.resolve_image_config(ref, key[1])
            with self._lock:
                self._results[key] = result
                self._inflight.pop(key, None)
            return result

    def clear(self) -> None:
        with self._lock:
            self._results.clear()


class FixedResolver:
    """Every reference resolves to one fixed image config and digest; a reference that already
    carries a digest keeps its own (like ``df2llb -image-config C -image-digest D``, BuildKit's
    deterministic stand-in for a registry). ``mason lower --fixed-base-config`` uses it to
    reproduce BuildKit's reference LLB without a registry."""

    def __init__(self, config: Mapping[str, Any], digest: str):
        from mason.ir.reference import validate_digest

        self.config = json.loads(json.dumps(dict(config)))
        self.digest = validate_digest(digest)
        self.calls: list[tuple[str, PlatformSpec | None]] = []

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        self.calls.append((ref, platform))
        r = parse_reference(ref)
        digest = r.digest or self.digest
        cfg = json.loads(json.dumps(self.config))
        return ResolvedImage(ref=pinned_ref(r, digest), digest=digest, config=cfg, manifest_digest=digest,
                             platform=PlatformSpec.from_json(cfg) if cfg.get("os") else platform)
