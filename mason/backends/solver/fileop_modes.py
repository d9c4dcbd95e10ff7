"""chmod(1) mode strings (``COPY --chmod=u+x,g-w``, ``a=rX``, octal) as functions of a file's mode."""

from __future__ import annotations

import re
from collections.abc import Callable

from mason.ir.errors import MasonError

_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)")
_OP = re.compile(r"([-+=])([ugo]|[rwxXst]*)")
_SHIFT = {"u": 6, "g": 3, "o": 0}
_SPECIAL = {"u": 0o4000, "g": 0o2000, "o": 0}


def parse_mode_str(text: str) -> Callable[[int, bool], int]:
    """A chmod(1) mode (``u+x,g-w``, ``a=rX``, or octal) as a function
    ``(mode, is_dir) -> mode``; the umask is not applied (no ``who`` means ``a``)."""
    if re.fullmatch(r"[0-7]{1,4}", text):
        m = int(text, 8)
        return lambda mode, is_dir: (mode & ~0o7777) | m
    ops: list[tuple[str, str, str]] = []
    for clause in text.split(","):
        cm = _CLAUSE.fullmatch(clause)
        if cm is None:
            raise MasonError(f"invalid mode string {text!r}")
        who = cm.group(1).replace("a", "ugo") or "ugo"
        ops.extend((who, op, perm) for op, perm in _OP.findall(cm.group(2)))

    def apply(mode: int, is_dir: bool) -> int:
        for who, op, perm in ops:
            bits = 0
            if perm in _SHIFT:
                src = (mode >> _SHIFT[perm]) & 7
                for w in set(who):
                    bits |= src << _SHIFT[w]
            else:
                for w in set(who):
                    v = (4 if "r" in perm else 0) | (2 if "w" in perm else 0) | (
                        1 if "x" in perm or ("X" in perm and (is_dir or mode & 0o111)) else 0)
                    bits |= v << _SHIFT[w]
                    if "s" in perm:
                        bits |= _SPECIAL[w]
                if "t" in perm and "o" in who:
                    bits |= 0o1000
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                clear = 0
                for w in set(who):
                    clear |= (7 << _SHIFT[w]) | (0 if is_dir else _SPECIAL[w])
                mode = (mode & ~clear) | bits
        return mode

    return apply


__all__ = ["parse_mode_str"]
