"""Value parsers of the Dockerfile instructions layer: instruction flags (BuildKit's ``BFlags``
semantics), ``--chmod`` modes, Go durations, ints and bools, ``EXPOSE`` port specs, stop signals
and tmpfs sizes. The lowering reuses them on values it has expanded.

Parsers that can fail append ``(message, needles)`` problems to a list instead of raising, so
that the caller can report every mistake of an instruction: ``needles`` are source snippets
(searched in order, each after the previous) that locate the mistake in the instruction's text.
"""

from __future__ import annotations

import difflib
import re

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


def parse_go_int(value: str, bits: int = 64) -> int | None:
    """Go's ``strconv.ParseInt(value, 10, bits)`` (an optional sign, ASCII digits; no spaces or
    underscores, unlike Python's int()), or None if invalid or out of range."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not (digits.isascii() and digits.isdigit()):
        return None
    n = int(value, 10)
    limit = 1 << (bits - 1)
    return n if -limit <= n < limit else None


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
    n = parse_go_int(value)
    if n is not None:
        return n != 0
    name = value.upper()
    if name.startswith("SIG"):
        name = name[3:]
    return name in _SIGNALS
