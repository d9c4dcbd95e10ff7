"""``--output`` / ``-o`` specs: parsed and checked before a build runs.

    type=image[,name=NAME[,NAME…]][,push=true]     mason's image store (what -t does)
    type=registry,name=NAME                       push
    type=oci,dest=out.tar[,name=NAME]             OCI archive ("-" = stdout)
    type=docker,dest=out.tar[,name=NAME]          archive for `docker load`
    type=local,dest=DIR[,preserve-owner=true]      the final root filesystem, owned by the calling
                                                  user (preserve-owner: the image's owners; root only)
    type=tar,dest=out.tar                         the same, as a tar ("-" = stdout)
    DIR                                           shorthand for type=local,dest=DIR ("-": tar to stdout)

Specs are CSV like buildx's (``"name=a,b"`` quotes a value holding commas). Every mistake
that can be known before the build — unknown type or option, missing dest or name, a bad
image name, a destination that cannot be written — is a :class:`MasonError` from
:func:`parse_output` / :func:`check_outputs`.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from mason.ir.errors import MasonError
from mason.ir.reference import normalize

TYPES = ("docker", "image", "local", "oci", "registry", "tar")
_OPTIONS = {
    "image": ("name", "push", "registry.insecure", "unpack"),
    "registry": ("name", "registry.insecure"),
    "oci": ("dest", "name", "tar"),
    "docker": ("dest", "name", "tar"),
    "local": ("dest", "preserve-owner"),
    "tar": ("dest",),
}
_NEEDS_DEST = ("oci", "docker", "local", "tar")
_STDOUT_OK = ("oci", "docker", "tar")
IMAGE_TYPES = ("image", "registry", "oci", "docker")  # outputs made from the image writer


@dataclass(frozen=True)
class OutputSpec:
    """One output: ``type``, image ``names`` (normalized), ``dest`` path (``-``: stdout),
    ``push``, ``insecure`` (plain HTTP allowed for the push), ``preserve_owner`` (``type=local``:
    keep the image's owners instead of the calling user's), and the raw options."""

    type: str
    names: tuple[str, ...] = ()
    dest: str | None = None
    push: bool = False
    insecure: bool = False
    preserve_owner: bool = False
    attrs: Mapping[str, str] = field(default_factory=dict, compare=False)
    spec: str = field(default="", compare=False)

    @property
    def needs_image(self) -> bool:
        return self.type in IMAGE_TYPES

    @property
    def pushes(self) -> bool:
        return self.type == "registry" or (self.type == "image" and self.push)


def _bool(t: str, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", ""):
        return True
    if v in ("false", "0"):
        return False
    raise MasonError(f"output type={t}: {key} must be true or false, not {value!r}")


def _names(t: str, value: str) -> tuple[str, ...]:
    out: list[str] = []
    for n in value.split(","):
        n = n.strip()
        if not n:
            continue
        try:
            norm = normalize(n)
        except MasonError as e:
            raise MasonError(f"output type={t}: {e.message}") from None
        if norm not in out:
            out.append(norm)
    return tuple(out)


def parse_attrs(text: str, what: str) -> dict[str, str]:
    """``KEY=VALUE`` fields of one CSV line, as buildx reads ``--output`` and ``--cache-to``:
    keys lower-cased, each once; errors start with ``what``."""
    try:
        fields = next(csv.reader([text], skipinitialspace=True))
    except (csv.Error, StopIteration) as e:
        raise MasonError(f"{what}: {e}") from None
    attrs: dict[str, str] = {}
    for f in fields:
        key, eq, value = f.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise MasonError(f"{what}: {f!r} is not KEY=VALUE")
        if key in attrs:
            raise MasonError(f"{what}: {key} given twice")
        attrs[key] = value.strip()
    return attrs


def parse_output(spec: str) -> OutputSpec:
    """Parse one ``--output`` value."""
    text = spec.strip()
    if not text:
        raise MasonError("invalid output '': expected type=TYPE[,KEY=VALUE...] or a directory")
    if "\0" in spec:
        raise MasonError(f"invalid output {spec!r}: contains a NUL byte")
    if "=" not in text:  # buildx's shorthand: a directory, or "-" for a tar on stdout
        if "," in text:  # buildx: the shorthand is one CSV field; "a,b" is a mistake
            raise MasonError(f"invalid output {spec!r}: expected type=TYPE[,KEY=VALUE...] or a directory "
                             "(quote a directory whose name holds a comma: '\"a,b\"')")
        return OutputSpec("tar", dest="-", spec=spec) if text == "-" else OutputSpec("local", dest=text, spec=spec)
    attrs = parse_attrs(text, f"invalid output {spec!r}")
    t = attrs.pop("type", None)
    if t is None:
        raise MasonError(f"invalid output {spec!r}: type is missing")
    t = t.lower()
    if t not in TYPES:
        raise MasonError(f"unknown output type {t!r} (valid: {', '.join(TYPES)})")
    for key in attrs:
        if key not in _OPTIONS[t]:
            raise MasonError(f"output type={t}: unknown option {key!r} (valid: {', '.join(_OPTIONS[t])})")
    dest = attrs.get("dest")
    if t in _NEEDS_DEST and not dest:
        raise MasonError(f"output type={t} needs dest=PATH")
    if dest == "-" and t not in _STDOUT_OK:
        raise MasonError(f"output type={t} cannot write to stdout (dest=-)")
    if t in ("oci", "docker") and "tar" in attrs and not _bool(t, "tar", attrs["tar"]):
        raise MasonError(f"output type={t}: tar=false (an unpacked layout) is not supported")
    names = _names(t, attrs.get("name", ""))
    if t == "registry" and not names:
        raise MasonError("output type=registry needs name=NAME")
    push = _bool(t, "push", attrs["push"]) if "push" in attrs else False
    if t == "image" and push and not names:
        raise MasonError("output type=image,push=true needs name=NAME")
    insecure = _bool(t, "registry.insecure", attrs["registry.insecure"]) if "registry.insecure" in attrs else False
    preserve = _bool(t, "preserve-owner", attrs["preserve-owner"]) if "preserve-owner" in attrs else False
    if preserve and os.geteuid() != 0:
        raise MasonError(f"output type={t}: preserve-owner=true needs root (only root can give files "
                         "other owners); run as root or drop the option")
    return OutputSpec(t, names, dest, push, insecure, preserve, attrs, spec)


def parse_outputs(specs: Sequence[str], tags: Sequence[str] = ()) -> list[OutputSpec]:
    """Parse every ``--output`` and fold ``-t`` tags in: without outputs, ``-t`` means
    ``type=image``; otherwise the tags name the image-made outputs that name nothing."""
    outs = [parse_output(s) for s in specs]
    names: list[str] = []
    for t in tags:  # one name per -t (a comma is no separator there, as in docker build)
        try:
            n = normalize(t.strip())
        except MasonError as e:
            raise MasonError(f"invalid -t {t!r}: {e.message}") from None
        if n not in names:
            names.append(n)
    if not outs:
        return [OutputSpec("image", tuple(names), spec="-t")] if names else []
    if names:
        outs = [replace(o, names=tuple(names)) if o.needs_image and not o.names else o for o in outs]
    return outs


def _check_file(o: OutputSpec, path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise MasonError(f"output type={o.type}: dest {path} is a directory")
    if not os.path.isdir(parent):
        why = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise MasonError(f"output type={o.type}: cannot write {path}: {parent} {why}")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".mason-check-")
    except OSError as e:
        raise MasonError(f"output type={o.type}: cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def _check_dir(o: OutputSpec, path: str) -> None:
    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        raise MasonError(f"output type={o.type}: dest {path} is not a directory")
    probe = p
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise MasonError(f"output type={o.type}: cannot create {path}: {probe} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".mason-check-")
    except OSError as e:
        raise MasonError(f"output type={o.type}: cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def check_outputs(outputs: Sequence[OutputSpec], *, insecure_registries: Sequence[str] = (),
                  probe_registries: bool = True) -> None:
    """Fail now for what would fail after the build: unwritable destinations, two outputs
    writing the same path, and (``probe_registries``) registries that do not answer."""
    seen: dict[str, str] = {}
    for o in outputs:
        if o.dest == "-":
            if "-" in seen:
                raise MasonError(f"outputs {seen['-']} and type={o.type} both write to stdout (dest=-)")
            seen["-"] = f"type={o.type}"
        elif o.dest:
            key = os.path.abspath(o.dest)
            if key in seen:
                raise MasonError(f"outputs {seen[key]} and type={o.type} both write {o.dest}")
            seen[key] = f"type={o.type}"
            (_check_dir if o.type == "local" else _check_file)(o, o.dest)
        if probe_registries and o.pushes:
            for n in o.names:
                probe_registry(n, insecure_registries=tuple(insecure_registries) + (
                    (n.split("/", 1)[0],) if o.insecure else ()), what=f"output type={o.type}")


def probe_registry(name: str, *, insecure_registries: Sequence[str] = (), what: str = "push",
                   timeout: float = 10.0) -> None:
    """Check that the registry of image ``name`` answers ``/v2/`` (any HTTP answer, 401
    included, counts: credentials are the push's business)."""
    import httpx

    from mason.backends.sources.transport import is_loopback
    from mason.ir.reference import parse_reference

    domain = parse_reference(name).domain
    host = "registry-1.docker.io" if domain == "docker.io" else domain
    plain = is_loopback(domain) or domain.lower() in {h.lower() for h in insecure_registries}
    url = f"{'http' if plain else 'https'}://{host}/v2/"
    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as e:
        reason = str(e) or type(e).__name__
        raise MasonError(f"{what}: registry {domain} is unreachable: {reason}") from None


SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


def source_date_epoch(build_args: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` from the build args (``--build-arg``), else the environment, as
    BuildKit takes it; None when unset or empty. A value that is not a non-negative integer
    is a MasonError."""
    env = os.environ if environ is None else environ
    raw = (build_args or {}).get(SOURCE_DATE_EPOCH)
    if raw is None:
        raw = env.get(SOURCE_DATE_EPOCH)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise MasonError(f"invalid SOURCE_DATE_EPOCH {raw!r}: expected seconds since 1970 (a non-negative integer)")
    return value
