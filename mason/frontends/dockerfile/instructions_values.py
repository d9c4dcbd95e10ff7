"""Value parsers of the Dockerfile instructions layer: instruction flags (BuildKit's ``BFlags``
semantics), ``RUN --mount`` specs, ``--chmod`` modes, Go durations, ``EXPOSE`` port specs, stop
signals and tmpfs sizes.

Parsers that can fail append ``(message, needles)`` problems to a list instead of raising, so
that the caller can report every mistake of an instruction: ``needles`` are source snippets
(searched in order, each after the previous) that locate the mistake in the instruction's text.
:func:`expand_mount` is for the lowering: it re-checks a mount after variable expansion.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

from mason.frontends.dockerfile.instructions_types import (
    BindMount, CacheMount, DeferredMount, Mount, SecretMount, SshMount, TmpfsMount,
)
from mason.ir.errors import MasonError, MasonErrors, SourceLoc

Problems = list[tuple[str, tuple[str, ...]]]

# ---------------------------------------------------------------------------------------------
# Flags

BOOL, STRING, STRINGS = 0, 1, 2  # like BFlags' AddBool / AddString / AddStrings

_FLAG_OWNERS = {
    "from": "COPY and ADD", "parents": "COPY and ADD", "exclude": "COPY and ADD",
    "chown": "COPY and ADD", "chmod": "COPY and ADD", "link": "COPY and ADD",
    "checksum": "ADD", "keep-git-dir": "ADD", "unpack": "ADD",
    "mount": "RUN", "network": "RUN", "security": "RUN", "device": "RUN",
    "platform": "FROM",
    "interval": "HEALTHCHECK", "timeout": "HEALTHCHECK", "start-period": "HEALTHCHECK",
    "start-interval": "HEALTHCHECK", "retries": "HEALTHCHECK",
}


def suggest(word: str, choices, prefix: str = "") -> str:
    """`` (did you mean X?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def parse_flags(flags: tuple[str, ...], spec: dict[str, int], instr: str,
                probs: Problems) -> dict[str, object]:
    """Flag words (``--name=value``) → {name: value}; bool flags give bools, string flags
    strings, repeatable (STRINGS) flags lists. Unknown, repeated, value-less string and
    non-boolean bool flags are problems."""
    out: dict[str, object] = {}
    for word in flags:
        if word[:2] != "--":
            probs.append((f"{instr} flag {word!r} must start with '--'", (word,)))
            continue
        if word == "--":  # end of flags, as in BuildKit
            break
        name, eq, value = word[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            owner = _FLAG_OWNERS.get(name)
            if owner is not None:
                msg = f"--{name} is only valid on {owner}, not on {instr}"
            elif not spec:
                msg = f"unknown flag --{name}: {instr} takes no flags"
            else:
                msg = f"unknown flag --{name} for {instr}" + suggest(name, spec, "--")
            probs.append((msg, (word,)))
            continue
        if kind == STRINGS:
            if not eq:
                probs.append((f"missing a value on flag --{name}", (word,)))
                continue
            lst = out.get(name)
            if lst is None:
                out[name] = [value]
            else:
                lst.append(value)  # type: ignore[union-attr]
            continue
        if name in out:
            probs.append((f"duplicate flag specified: --{name}", (word, word)))
            continue
        if kind == BOOL:
            if not eq:
                out[name] = True
                continue
            v = value.lower()
            if v == "true":
                out[name] = True
            elif v == "false":
                out[name] = False
            else:
                probs.append((f"expecting boolean value for flag --{name}, not: {value!r}",
                              (word,)))
        else:
            if not eq:
                probs.append((f"missing a value on flag --{name}", (word,)))
                continue
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# Small scalar parsers (also used by the lowering after expansion)

_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def parse_go_bool(value: str) -> bool | None:
    """Go's ``strconv.ParseBool``: the bool, or None if invalid."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def parse_uint(value: str, base: int = 10, bits: int = 32) -> int | None:
    """Go's ``strconv.ParseUint(value, base, bits)`` for base 8 or 10: None if invalid."""
    # isdigit() on an ASCII string means 0-9 only (no other Unicode digits, no sign).
    if not (value.isascii() and value.isdigit()) or (base == 8 and value.strip("01234567")):
        return None
    n = int(value, base)
    return n if n < (1 << bits) else None


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str) -> int | None:
    """A tmpfs size as docker's ``units.RAMInBytes`` reads it (``64m``, ``1.5GiB``, ``100``;
    binary multiples), or None if invalid."""
    m = _SIZE_RE.match(value)
    if m is None:
        return None
    try:
        number = float(m.group(1))
    except ValueError:
        return None
    unit = m.group(2)
    return int(number * _SIZE_UNITS[unit.lower()]) if unit else int(number)


_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


def parse_duration(value: str) -> int | None:
    """Go's ``time.ParseDuration`` (``1h30m``, ``1.5s``, ``500ms``, ``-2s``, ``0``) in
    nanoseconds, or None if invalid."""
    s = value
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    i, n = 0, len(s)
    while i < n:
        start = i
        while i < n and s[i].isdigit() and s[i].isascii():
            i += 1
        whole = s[start:i]
        frac = ""
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            while i < n and s[i].isdigit() and s[i].isascii():
                i += 1
            frac = s[fstart:i]
        if not whole and not frac:
            return None
        ustart = i
        while i < n and s[i] != "." and not (s[i].isdigit() and s[i].isascii()):
            i += 1
        unit = _DURATION_UNITS.get(s[ustart:i])
        if unit is None:
            return None
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // (10 ** len(frac))
        if total > _MAX_DURATION:
            return None
    return -total if neg else total


def check_chmod(value: str) -> str | None:
    """None if ``value`` is a valid ``--chmod`` (octal 0-7777, or symbolic like ``u+x,g=r``),
    else what is wrong. Values with variables are checked after expansion."""
    if "$" in value:
        return None
    if value.isdigit() and value.isascii():
        n = parse_uint(value, 8)
        if n is None or n > 0o7777:
            return f"invalid --chmod value {value!r}: an octal mode must be 0-7777"
        return None
    for clause in value.split(","):
        i, n = 0, len(clause)
        while i < n and clause[i] in "ugoa":
            i += 1
        if i == n:
            return (f"invalid --chmod value {value!r}: expected octal digits or symbolic "
                    "clauses like u+x,g=r")
        while i < n:
            if clause[i] not in "+-=":
                return f"invalid --chmod value {value!r}: unexpected {clause[i]!r}"
            i += 1
            if i < n and clause[i] in "ugo":
                i += 1
                continue
            while i < n and clause[i] in "rwxXst":
                i += 1
    return None


def parse_port_spec(spec: str) -> tuple[int, int, str] | None:
    """An ``EXPOSE`` port spec (``80``, ``80/udp``, ``8000-8002/tcp``; an ``ip:host:`` prefix is
    tolerated as docker's ``nat.ParsePortSpec`` does) → (first, last, protocol), or None."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        return None
    container = port.rpartition(":")[2]
    first, dash, last = container.partition("-")
    lo = parse_uint(first, 10, 16)
    hi = parse_uint(last, 10, 16) if dash else lo
    if lo is None or hi is None or hi < lo:
        return None
    return lo, hi, proto


_SIGNALS = frozenset(
    "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
    "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ UNUSED "
    "RTMIN RTMAX".split()
    + [f"RTMIN+{i}" for i in range(1, 16)] + [f"RTMAX-{i}" for i in range(1, 15)]
)


def check_signal(value: str) -> bool:
    """Whether ``value`` is a signal docker's ``signal.ParseSignal`` accepts on Linux."""
    try:
        return int(value, 10) != 0
    except ValueError:
        pass
    name = value.upper()
    if name.startswith("SIG"):
        name = name[3:]
    return name in _SIGNALS


# ---------------------------------------------------------------------------------------------
# RUN --mount

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
MOUNT_KEYS = frozenset((
    "type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro",
    "readwrite", "rw", "id", "sharing", "required", "mode", "uid", "gid", "size", "env",
))
_BARE_KEYS = frozenset(("readonly", "ro", "readwrite", "rw", "required"))
_SHARING = frozenset(("shared", "private", "locked"))
_FILEINFO_TYPES = frozenset(("cache", "secret", "ssh"))
_NEEDS_TARGET = frozenset(("bind", "cache", "tmpfs"))


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
    target = target or None
    if not target and mtype in _NEEDS_TARGET:
        probs.append((f"--mount type={mtype} needs a target", (word,)))
        return None
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
