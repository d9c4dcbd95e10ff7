"""Image references: parsing and normalization like Docker's (distribution/reference).

    busybox                          -> docker.io/library/busybox:latest
    127.0.0.1:5000/library/busybox   -> 127.0.0.1:5000/library/busybox:latest
    host:5000/a/b:v1@sha256:...      -> kept as is (a digest wins over the tag when pulling)

Pinning (``with_digest``) keeps the tag, as BuildKit does: ``busybox:1.36@sha256:…``.

A first path component is a registry domain when it contains ``.`` or ``:``, is
``localhost``, or has upper-case letters (repository names never do); otherwise the image is
on Docker Hub (``docker.io``), where one-component names live under ``library/``.
``index.docker.io`` is spelled ``docker.io``. A reference without tag or digest gets the
tag ``latest`` (Docker's ``TagNameOnly``); one with only a digest gets no tag.

Pure and fast: regular expressions compiled once, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mason.ir.errors import MasonError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference, written out.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG, re.ASCII)  # Go's \w: [0-9A-Za-z_], never a Unicode letter
_DIGEST_RE = re.compile(_DIGEST)
_HEX64_RE = re.compile(r"[a-f0-9]{64}")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
_SHA512_RE = re.compile(r"sha512:[a-f0-9]{128}")


def _bad(text: str, why: str) -> MasonError:
    return MasonError(f"invalid image reference {text!r}: {why}")


def validate_digest(digest: str, text: str | None = None) -> str:
    """Check an ``algorithm:hex`` digest (sha256 and sha512 are checked strictly) and return it."""
    what = digest if text is None else text
    if not _DIGEST_RE.fullmatch(digest):
        raise _bad(what, f"invalid digest {digest!r}")
    algo = digest.split(":", 1)[0]
    if algo == "sha256" and not _SHA256_RE.fullmatch(digest):
        raise _bad(what, f"invalid digest {digest!r}: sha256 needs 64 lower-case hex digits")
    if algo == "sha512" and not _SHA512_RE.fullmatch(digest):
        raise _bad(what, f"invalid digest {digest!r}: sha512 needs 128 lower-case hex digits")
    if algo not in ("sha256", "sha512"):
        raise _bad(what, f"unsupported digest algorithm {algo!r}")
    return digest


def split_domain(name: str) -> tuple[str, str]:
    """Split a repository name into (domain, path), normalized like Docker's ``splitDockerDomain``."""
    first, sep, rest = name.partition("/")
    if not sep or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalized image reference. ``str()`` is the full form, ``familiar()`` the short one."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: bool = True) -> "Reference":
        """Parse and normalize ``text``; add the tag ``latest`` when there is neither tag nor
        digest (unless ``default_tag`` is false). Raises :class:`MasonError` naming the problem."""
        return parse_reference(text, default_tag=default_tag)

    @property
    def repository(self) -> str:
        """``domain/path``: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        return self.repository

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def __str__(self) -> str:
        out = self.repository
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``busybox``, ``user/app``, ``host:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
                path = path[len(OFFICIAL_REPO_PREFIX):]
            # ``docker.io/docker.io/x`` has the path ``docker.io/x``: shown short, it would read
            # back as another repository, so the short form is used only when it reads back.
            if split_domain(path) == (self.domain, self.path):
                return path
        return self.repository

    def familiar(self) -> str:
        """The short form with tag and digest: ``busybox:latest``, ``host:5000/x@sha256:…``."""
        out = self.familiar_name()
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_digest(self, digest: str) -> "Reference":
        """The reference pinned to ``digest``, its tag kept (distribution's ``WithDigest``), as
        BuildKit pins ``FROM``: ``busybox:1.36`` → ``docker.io/library/busybox:1.36@sha256:…``,
        ``busybox`` → ``…/busybox:latest@sha256:…`` (the implicit tag stays, BuildKit v0.12+);
        a digest the reference already had is replaced."""
        validate_digest(digest, f"{self.repository}@{digest}")
        return replace(self, digest=digest)

    def with_tag(self, tag: str) -> "Reference":
        """The same repository with ``tag`` and no digest."""
        if not _TAG_RE.fullmatch(tag):
            raise _bad(f"{self.repository}:{tag}", f"invalid tag {tag!r}")
        return replace(self, tag=tag, digest=None)

    def trim(self) -> "Reference":
        """Only the repository: no tag, no digest."""
        return replace(self, tag=None, digest=None)

    @property
    def object(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize an image reference (see the module docstring)."""
    if not isinstance(text, str):
        raise MasonError(f"invalid image reference {text!r}: not a string")
    if text == "":
        raise MasonError("invalid image reference: empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _bad(text, "contains white space")
    if _HEX64_RE.fullmatch(text):
        raise _bad(text, "cannot specify 64-byte hexadecimal strings (an image ID is not a name)")

    rest, at, digest = text.partition("@")
    if at:
        if not digest:
            raise _bad(text, "empty digest after '@'")
        validate_digest(digest, text)
    else:
        digest = None

    # A tag follows the last ':' after the last '/' (a ':' before a '/' is a port).
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not tag:
            raise _bad(text, "empty tag after ':'")
        if not _TAG_RE.fullmatch(tag):
            raise _bad(text, f"invalid tag {tag!r}")

    if not rest:
        raise _bad(text, "missing repository name")
    domain, path = split_domain(rest)
    if not _DOMAIN_RE.fullmatch(domain):
        raise _bad(text, f"invalid registry domain {domain!r}")
    if not path:
        raise _bad(text, "missing repository path after the registry domain")
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise _bad(text, "repository name must be lowercase")
        for component in path.split("/"):
            if not component:
                raise _bad(text, "empty path component in repository name")
            if not _PATH_COMPONENT_RE.fullmatch(component.lower()):
                raise _bad(text, f"invalid repository path component {component!r}")
        raise _bad(text, "invalid repository name")  # pragma: no cover - caught above
    full = f"{domain}/{path}"
    if len(full) > NAME_TOTAL_LENGTH_MAX:
        raise _bad(text, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def normalize(text: str) -> str:
    """``busybox`` → ``docker.io/library/busybox:latest``."""
    return str(parse_reference(text))


def familiar(text: str) -> str:
    """``docker.io/library/busybox:latest`` → ``busybox:latest``."""
    return parse_reference(text).familiar()
