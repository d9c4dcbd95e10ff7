"""Which checks run and whether a warning fails the build: the ``# check=`` directive and the
``BUILDKIT_DOCKERFILE_CHECK`` build arg.

Both take ``skip=A,B|all;error=true|false;experimental=C,D|all`` (parts separated by ``;``, in
any order, each optional). The build arg, when given, is used instead of the directive, as in
BuildKit. Rule names are case-sensitive; an unknown name is ignored (BuildKit does the same), an
unknown part or a bad boolean is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from mason.frontends.dockerfile.checks.rules import RULES
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["CheckConfig", "parse_check_config", "BUILD_ARG"]

BUILD_ARG = "BUILDKIT_DOCKERFILE_CHECK"

_TRUE = ("1", "t", "true", "y", "yes", "on")
_FALSE = ("0", "f", "false", "n", "no", "off")


@dataclass(frozen=True, slots=True)
class CheckConfig:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = frozenset()
    experimental_all: bool = False

    def enabled(self, name: str) -> bool:
        rule = RULES[name]
        if rule.experimental:
            return self.experimental_all or name in self.experimental
        if name in self.experimental:  # asked for by name: runs even with skip=all
            return True
        return not self.skip_all and name not in self.skip


def parse_check_config(value: str, loc: SourceLoc | None = None, what: str = "# check") -> CheckConfig:
    """``skip=…;error=…;experimental=…`` → :class:`CheckConfig`; a malformed value is a
    :class:`MasonError` at ``loc`` naming ``what`` (the directive or the build arg)."""
    skip: set[str] = set()
    experimental: set[str] = set()
    skip_all = experimental_all = error = False
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not eq:
            raise MasonError(f"invalid {what} value {part!r}: expected key=value "
                             "(skip=…, error=…, experimental=…)", loc)
        if key == "skip":
            names = {n.strip() for n in val.split(",") if n.strip()}
            skip_all = skip_all or "all" in names
            skip |= names - {"all"}
        elif key == "experimental":
            names = {n.strip() for n in val.split(",") if n.strip()}
            experimental_all = experimental_all or "all" in names
            experimental |= names - {"all"}
        elif key == "error":
            if val.lower() in _TRUE:
                error = True
            elif val.lower() in _FALSE:
                error = False
            else:
                raise MasonError(f"invalid {what} value: error={val!r} is not a boolean", loc)
        else:
            raise MasonError(f"invalid {what} option {key!r}: expected skip, error or "
                             "experimental", loc)
    return CheckConfig(frozenset(skip), skip_all, error, frozenset(experimental), experimental_all)
