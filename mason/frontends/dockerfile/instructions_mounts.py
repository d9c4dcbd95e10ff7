"""``RUN --mount`` specs → typed mount values (BuildKit's ``parseMount`` semantics: CSV fields,
case-insensitive keys, per-type options and defaults).

Without an expander, values containing ``$`` stay strings (and a ``type`` with a variable gives
a :class:`DeferredMount`); :func:`expand_mount` is for the lowering, which knows ARG/ENV values:
it expands every option and checks the mount again.
"""

from __future__ import annotations

from typing import Callable

from mason.frontends.dockerfile.instructions_types import (
    BindMount,
    CacheMount,
    DeferredMount,
    Mount,
    SecretMount,
    SshMount,
    TmpfsMount,
)
from mason.frontends.dockerfile.instructions_values import (
    Problems,
    parse_go_bool,
    parse_size,
    parse_uint,
    suggest,
)
from mason.ir.errors import MasonError, MasonErrors, SourceLoc

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
MOUNT_KEYS = frozenset((
    "type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro",
    "readwrite", "rw", "id", "sharing", "required", "mode", "uid", "gid", "size", "env",
))
_BARE_KEYS = frozenset(("readonly", "ro", "readwrite", "rw", "required"))
_SHARING = frozenset(("shared", "private", "locked"))
_FILEINFO_TYPES = frozenset(("cache", "secret", "ssh"))
_AT_WORKDIR = frozenset(("bind", "cache", "tmpfs"))


def split_csv(value: str) -> list[str] | None:
    """One record of Go's ``encoding/csv`` (quotes with ``""`` escapes), or None if invalid."""
    if '"' not in value:
        return value.split(",")
    fields: list[str] = []
    i, n = 0, len(value)
    while True:
        if i < n and value[i] == '"':
            i += 1
            buf = []
            while True:
                j = value.find('"', i)
                if j < 0:
                    return None
                buf.append(value[i:j])
                if value[j + 1:j + 2] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            if i < n and value[i] != ",":
                return None
            fields.append("".join(buf))
        else:
            j = value.find(",", i)
            end = n if j < 0 else j
            if '"' in value[i:end]:
                return None
            fields.append(value[i:end])
            i = end
        if i >= n:
            return fields
        i += 1  # the comma


def parse_mount(spec: str, probs: Problems, word: str = "",
                loc: SourceLoc | None = None,
                expand: Callable[[str], str] | None = None) -> Mount | None:
    """One ``--mount`` value → a typed mount (None on problems, which go to ``probs``).
    Without ``expand``, values containing ``$`` stay strings (a ``type`` with a variable gives
    a :class:`DeferredMount`); with it, every value is expanded first."""
    before = len(probs)
    if not spec:
        probs.append(("empty --mount value", (word,)))
        return None
    fields = split_csv(spec)
    if fields is None:
        probs.append((f"invalid --mount value {spec!r}: bad quoting", (word,)))
        return None
    options: list[tuple[str, str]] = []
    for f in fields:
        k, eq, v = f.partition("=")
        key = k.lower()
        if not eq:
            if key in _BARE_KEYS:
                options.append((key, "true"))
            else:
                probs.append((f"invalid --mount field {f!r}: must be a key=value pair",
                              (word, f)))
            continue
        if key not in MOUNT_KEYS:
            probs.append((f"unexpected key {key!r} in --mount" + suggest(key, MOUNT_KEYS),
                          (word, f)))
            continue
        if expand is not None:
            v = expand(v)
        elif key == "from" and "$" in v:
            probs.append(("--mount from= doesn't support variable expansion, define an alias "
                          "stage instead", (word, f)))
            continue
        options.append((key, v))
    if len(probs) != before:
        return None
    return _build_mount(tuple(options), probs, word, loc, expanded=expand is not None)


_CANONICAL = {
    "target": "target", "dst": "target", "destination": "target", "source": "source",
    "src": "source", "readonly": "ro", "ro": "ro", "readwrite": "rw", "rw": "rw",
    **{k: k for k in ("type", "from", "id", "sharing", "required", "mode", "uid", "gid",
                      "size", "env")},
}


def _build_mount(options: tuple[tuple[str, str], ...], probs: Problems, word: str,
                 loc: SourceLoc | None, expanded: bool = False) -> Mount | None:
    before = len(probs)
    mtype = "bind"
    for key, v in options:
        if key == "type":
            mtype = v
    if not expanded and "$" in mtype:
        return DeferredMount(options, loc)
    mtype = mtype.lower()
    if mtype not in MOUNT_TYPES:
        probs.append((f"unsupported mount type {mtype!r}" + suggest(mtype, MOUNT_TYPES),
                      (word, "type=")))
        return None
    target = source = from_ = mid = env = None
    readonly: bool | str | None = None
    required: bool | str = False
    sharing = "shared"
    mode = uid = gid = size = None  # int | str | None
    for key, v in options:
        canon = _CANONICAL[key]
        if canon == "target":
            target = v
            continue
        if canon == "type":
            continue
        if canon == "id":
            mid = v
            continue
        static = expanded or "$" not in v
        at = (word, key + "=")
        if canon == "source":
            if mtype == "tmpfs" or mtype == "ssh":
                probs.append((f"{key} is not allowed for {mtype} mounts", at))
            source = v
        elif canon == "from":
            if mtype != "bind" and mtype != "cache":
                probs.append((f"from is not allowed for {mtype} mounts", at))
            from_ = v
        elif canon == "ro" or canon == "rw":
            b: bool | str | None = parse_go_bool(v) if static else v
            if b is None:
                probs.append((f"invalid value for --mount {key}: {v!r}", at))
            elif b.__class__ is bool and canon == "rw":
                readonly = not b
            else:
                readonly = b  # a str: not known before expansion (see expand_mount)
        elif canon == "required":
            if mtype != "secret" and mtype != "ssh":
                probs.append((f"unexpected key 'required' for mount type {mtype!r}", at))
                continue
            b = parse_go_bool(v) if static else v
            if b is None:
                probs.append((f"invalid value for --mount required: {v!r}", at))
            else:
                required = b
        elif canon == "sharing":
            if mtype != "cache":
                probs.append((f"sharing is only valid for cache mounts, not {mtype}", at))
            elif static and v.lower() not in _SHARING:
                probs.append((f"unsupported sharing value {v!r} (expected shared, private or "
                              "locked)", at))
            else:
                sharing = v.lower() if static else v
        elif canon == "size":
            if mtype != "tmpfs":
                probs.append((f"size is only valid for tmpfs mounts, not {mtype}", at))
                continue
            size = parse_size(v) if static else v
            if size is None:
                probs.append((f"invalid value {v!r} for --mount size", at))
        elif canon == "env":
            if mtype != "secret":
                probs.append((f"env is only valid for secret mounts, not {mtype}", at))
            env = v
        else:  # mode, uid, gid
            if mtype not in _FILEINFO_TYPES:
                probs.append((f"{key} is not allowed for {mtype} mounts", at))
                continue
            n = parse_uint(v, 8 if key == "mode" else 10) if static else v
            if n is None:
                probs.append((f"invalid value {v!r} for --mount {key}", at))
            elif key == "mode":
                mode = n
            elif key == "uid":
                uid = n
            else:
                gid = n
    if len(probs) != before:
        return None
    # a bind, cache or tmpfs mount without a target is mounted at the working directory
    # (BuildKit joins the empty target onto it)
    target = target or ("" if mtype in _AT_WORKDIR else None)
    if mtype == "bind":
        rw = False if readonly is None else (not readonly if readonly.__class__ is bool
                                             else readonly)
        return BindMount(target, source or None, from_ or None, rw,  # type: ignore[arg-type]
                         options, loc)
    if mtype == "cache":
        return CacheMount(target, mid or None, False if readonly is None else readonly,
                          sharing, from_ or None, source or None, mode, uid, gid, options, loc)
    if mtype == "tmpfs":
        return TmpfsMount(target, size, options, loc)  # type: ignore[arg-type]
    if mtype == "secret":
        if mid and source:
            probs.append(("secret mount: both source and id can't be set", (word,)))
            return None
        mid = mid or source
        if not mid and not target and not env:
            probs.append(("secret mount needs an id, a target or an env", (word,)))
            return None
        return SecretMount(mid or None, target, env or None, required, mode, uid, gid,
                           options, loc)
    return SshMount(mid or None, target, required, mode, uid, gid, options, loc)


def expand_mount(mount: Mount, expand: Callable[[str], str]) -> Mount:
    """The mount with every option value expanded by ``expand`` and checked again (for the
    lowering, which knows ARG/ENV values). Raises :class:`MasonErrors` located at the mount."""
    probs: Problems = []
    options = tuple((k, expand(v)) for k, v in mount.options)
    built = _build_mount(options, probs, "", mount.loc, expanded=True)
    if built is None or isinstance(built, DeferredMount):
        if not probs:
            probs.append((f"unsupported mount type {dict(options).get('type', '')!r}", ()))
        errs = [MasonError(msg, mount.loc) for msg, _ in probs]
        raise MasonErrors(errs)
    return built
