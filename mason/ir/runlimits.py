"""The resource options of a build as docker and buildx spell them: sizes (``--shm-size``,
``--memory``: ``64m``, ``1g``, ``1048576``; binary units, as docker's ``RAMInBytes``) and
ulimits (``--ulimit nofile=1024:2048``; docker's ``ParseUlimit``: ``NAME=SOFT[:HARD]``, the hard
limit defaulting to the soft one, ``-1`` for unlimited).

``--shm-size`` and ``--ulimit`` reach the Dockerfile frontend as BuildKit's frontend options
``shm-size`` (bytes) and ``ulimit`` (comma-separated), which put them on every RUN: a ``/dev/shm``
tmpfs mount of that size and the ExecOp's ``Meta.ulimit``. ``--memory`` and ``--cpu-quota`` are
limits of the machine that runs the steps (the step's cgroup), not part of the LLB.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mason.ir.errors import MasonError

if TYPE_CHECKING:  # the ops only where an Ulimit is made: mason build --host parses limits without them
    from mason.ir.ops import Ulimit

__all__ = ["ULIMIT_NAMES", "parse_size", "parse_ulimit", "parse_ulimits", "format_ulimits", "rlimit_type"]

# docker's ulimit names (go-units ulimitNameMapping): name -> RLIMIT_ suffix
ULIMIT_NAMES = {
    "core": "CORE", "cpu": "CPU", "data": "DATA", "fsize": "FSIZE", "locks": "LOCKS",
    "memlock": "MEMLOCK", "msgqueue": "MSGQUEUE", "nice": "NICE", "nofile": "NOFILE",
    "nproc": "NPROC", "rss": "RSS", "rtprio": "RTPRIO", "rttime": "RTTIME",
    "sigpending": "SIGPENDING", "stack": "STACK",
}
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?", re.IGNORECASE)
_INT64 = 2**63 - 1


def parse_size(text: str, what: str) -> int:
    """Bytes from ``64m``, ``1.5g``, ``1024``, ``512MiB`` (binary units, case-insensitive)."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise MasonError(f"invalid {what} {text!r}: expected a size such as 64m, 1g or 1048576 (bytes)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if not 0 < value <= _INT64:
        raise MasonError(f"invalid {what} {text!r}: out of range")
    return value


def _limit(raw: str, text: str) -> int:
    try:
        v = int(raw, 10)
    except ValueError:
        raise MasonError(f"invalid ulimit {text!r}: {raw!r} is not a number") from None
    if not -1 <= v <= _INT64:
        raise MasonError(f"invalid ulimit {text!r}: {raw!r} is out of range")
    return v


def parse_ulimit(text: str) -> Ulimit:
    """``NAME=SOFT[:HARD]`` (``-1``: unlimited) as an LLB :class:`~mason.ir.ops.Ulimit`."""
    name, eq, limits = text.strip().partition("=")
    if not eq:
        raise MasonError(f"invalid ulimit {text!r}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    if name not in ULIMIT_NAMES:
        raise MasonError(f"invalid ulimit {text!r}: unknown name {name!r} (known: {', '.join(sorted(ULIMIT_NAMES))})")
    soft_s, colon, hard_s = limits.partition(":")
    if not soft_s or (colon and not hard_s) or ":" in hard_s:
        raise MasonError(f"invalid ulimit {text!r}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    soft = _limit(soft_s, text)
    hard = _limit(hard_s, text) if colon else soft
    if hard != -1 and (soft == -1 or soft > hard):
        raise MasonError(f"invalid ulimit {text!r}: the soft limit must not be above the hard limit")
    from mason.ir.ops import Ulimit

    return Ulimit(name, soft, hard)


def parse_ulimits(items: str | tuple[str, ...] | list[str]) -> tuple[Ulimit, ...]:
    """Several ulimits (a comma-separated string, as the ``ulimit`` frontend option, or a list);
    a name given twice keeps the last."""
    parts = items.split(",") if isinstance(items, str) else [p for it in items for p in it.split(",")]
    out: dict[str, Ulimit] = {}
    for p in parts:
        if p.strip():
            u = parse_ulimit(p)
            out.pop(u.name, None)
            out[u.name] = u
    return tuple(out.values())


def format_ulimits(ulimits: tuple[Ulimit, ...]) -> str:
    """The ``ulimit`` frontend option's value for ``ulimits``."""
    return ",".join(f"{u.name}={u.soft}:{u.hard}" for u in ulimits)


def rlimit_type(name: str) -> str:
    """The OCI runtime spec's ``RLIMIT_…`` type for a ulimit name."""
    try:
        return "RLIMIT_" + ULIMIT_NAMES[name]
    except KeyError:
        raise MasonError(f"unknown ulimit {name!r} (known: {', '.join(sorted(ULIMIT_NAMES))})") from None
