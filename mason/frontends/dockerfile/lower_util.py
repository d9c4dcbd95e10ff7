"""Small pure helpers of the Dockerfile lowering: Go-compatible formatting (the history texts
BuildKit writes with ``%q``, ``%v`` and ``time.Duration``), JSON as Go's ``encoding/json`` writes
it, and LLB path normalization (``llb``'s ``normalizePath``).
"""

from __future__ import annotations

from mason.ir.golang import go_json, go_quote, go_quote_rune, path_clean

__all__ = [
    "go_quote", "go_quote_rune", "go_list_q", "go_list_v", "go_duration", "go_json",
    "normalize_path", "join_abs", "clean",
]

def go_list_q(items) -> str:
    """``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(s) for s in items) + "]"


def go_list_v(items) -> str:
    """``%v`` of a ``[]string``: ``[a b]``."""
    return "[" + " ".join(items) + "]"


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of ``v / 10**prec`` without trailing zeros, and the rest."""
    digits = []
    printed = False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits.append(str(d))
        v //= 10
    frac = ("." + "".join(reversed(digits))) if printed else ""
    return frac, v


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` (``30s``, ``1m30s``, ``1.5s``, ``500ms``, ``0s``)."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        if u < 1_000:
            out = f"{u}ns"
        elif u < 1_000_000:
            frac, whole = _fmt_frac(u, 3)
            out = f"{whole}{frac}µs"
        else:
            frac, whole = _fmt_frac(u, 6)
            out = f"{whole}{frac}ms"
    else:
        frac, secs = _fmt_frac(u, 9)
        out = ""
        if secs >= 3600:
            out = f"{secs // 3600}h{(secs // 60) % 60}m{secs % 60}{frac}s"
        elif secs >= 60:
            out = f"{secs // 60}m{secs % 60}{frac}s"
        else:
            out = f"{secs}{frac}s"
    return "-" + out if neg else out


clean = path_clean  # Go's path.Clean


def join_abs(*parts: str) -> str:
    """Go's ``path.Join("/", parts…)``: an absolute, clean path."""
    return clean("/" + "/".join(p for p in parts if p))


def normalize_path(parent: str, p: str, keep_slash: bool) -> str:
    """``llb``'s ``normalizePath``: clean ``p``, resolve it against ``parent`` when relative,
    and with ``keep_slash`` keep a trailing ``/`` (or ``/.``) of the original."""
    orig = p
    p = clean(p)
    if not p.startswith("/"):
        p = join_abs(parent, p)
    if keep_slash:
        if orig.endswith("/") and not p.endswith("/"):
            p += "/"
        elif orig.endswith("/."):
            if p != "/":
                p += "/"
            p += "."
    return p
