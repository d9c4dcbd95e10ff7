"""``mason prune``'s option values: sizes (``--keep-storage``), durations and ``--filter``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mason.ir.errors import MasonError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """``500MB``, ``2GiB``, ``1.5g``, ``1024``: bytes (kB/MB/GB/TB powers of 1000, as mason
    prints sizes; KiB/MiB/GiB/TiB powers of 1024)."""
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise MasonError(f"invalid size {text!r}: expected a number of bytes with an optional unit "
                         "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 500MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_duration(text: str) -> float:
    """``24h``, ``90m``, ``1h30m``, ``7d``, ``1.5h``: seconds (units ms, s, m, h, d, w)."""
    s = text.strip()
    parts = list(_DURATION.finditer(s))
    if not s or "".join(p.group(0) for p in parts) != s:
        raise MasonError(f"invalid duration {text!r}: expected a duration such as 24h, 90m or 1h30m "
                         "(units: ms, s, m, h, d, w)")
    return sum(float(p.group(1)) * _SECONDS[p.group(2)] for p in parts)


def parse_filters(filters: Iterable[str]) -> dict[str, float]:
    """``--filter`` values (``until=DURATION``) as keyword arguments of :func:`prune`."""
    out: dict[str, float] = {}
    for f in filters:
        name, sep, value = f.partition("=")
        if not sep or name.strip() != "until":
            raise MasonError(f"invalid filter {f!r}: the supported filter is until=DURATION (e.g. until=24h)")
        out["until"] = parse_duration(value)
    return out


__all__ = ["parse_size", "parse_duration", "parse_filters"]
