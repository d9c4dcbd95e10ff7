"""Entitlements: what a build may do beyond the sandbox, granted with ``--allow``.

* ``network.host`` — an ExecOp on the host's network (``RUN --network=host``);
* ``security.insecure`` — a privileged ExecOp (``RUN --security=insecure``);
* ``git.local`` — a ``git://`` source whose remote is on this machine (``file://…`` or a plain
  path in ``git.fullurl``): without it a hand-made Definition could read the host's
  repositories.

Like BuildKit, which validates a Definition's entitlements when it loads it (before the solver
looks at its cache), :func:`check` looks at *every* op of the graph before any source is loaded
or any cache key looked up: a result cached by a build that had the grant is no way around it
(CVE-2024-23653 was a frontend getting an insecure container without the grant; here the cache
would be the way).
"""

from __future__ import annotations

from collections.abc import Iterable

from mason.ir.errors import MasonError
from mason.ir.ops import ExecOp, NetMode, Op, SecurityMode, SourceOp

NETWORK_HOST = "network.host"
SECURITY_INSECURE = "security.insecure"
GIT_LOCAL = "git.local"
ENTITLEMENTS = (NETWORK_HOST, SECURITY_INSECURE, GIT_LOCAL)

__all__ = ["ENTITLEMENTS", "NETWORK_HOST", "SECURITY_INSECURE", "GIT_LOCAL", "parse_allow", "required", "check"]


def parse_allow(items: Iterable[str]) -> frozenset[str]:
    """``--allow`` values (repeatable, comma-separated) as a set; an unknown name is an error."""
    out = set()
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in ENTITLEMENTS:
                raise MasonError(f"unknown entitlement {part!r} for --allow (valid: {', '.join(ENTITLEMENTS)})")
            out.add(part)
    return frozenset(out)


def required(op: Op) -> list[tuple[str, str]]:
    """(entitlement, what needs it) for one op."""
    out: list[tuple[str, str]] = []
    if isinstance(op, ExecOp):
        if op.network == NetMode.HOST:
            out.append((NETWORK_HOST, 'network mode "host"'))
        if op.security == SecurityMode.INSECURE:
            out.append((SECURITY_INSECURE, 'security mode "insecure"'))
    elif isinstance(op, SourceOp) and op.identifier.startswith("git://"):
        from mason.backends.sources.git import is_local

        if is_local(op.identifier, dict(op.attrs)):
            out.append((GIT_LOCAL, "a git source on this machine"))
    return out


def check(ops: Iterable[Op], entitlements: Iterable[str]) -> None:
    """Raise for the first op (in the given order) that needs an entitlement not granted."""
    have = set(entitlements)
    for op in ops:
        for ent, what in required(op):
            if ent not in have:
                raise MasonError(f"{what} needs the {ent} entitlement (--allow {ent})", op.loc)
