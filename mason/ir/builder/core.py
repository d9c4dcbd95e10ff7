"""What every op the builder makes shares: the input-index bookkeeping (one place), op metadata
(custom names, descriptions, progress groups), platforms.

An op's inputs are the distinct refs it reads, in the order it first reads them; a field that
points at an input (a mount's ``input``, a file action's ``input``/``secondary_input``, a merge's
``merge_inputs``, a diff's ``lower``/``upper``) holds its position, -1 for scratch. Two refs are
the same input when they name the same output of the same op object (as BuildKit's llb, which
dedupes by vertex and output).
"""

from __future__ import annotations

import platform as _pyplatform
from typing import Mapping

from mason.ir.errors import MasonError
from mason.ir.ops import EMPTY_METADATA, OpMetadata, Platform, ProgressGroup, Ref

__all__ = ["DEFAULT_PATH", "CUSTOM_NAME", "Inputs", "default_platform", "parse_platform", "op_metadata",
           "progress_group"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CUSTOM_NAME = "llb.customname"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i686": "386", "i386": "386"}


class Inputs:
    """An op's input list being built: :meth:`index` returns a ref's position, adding it the
    first time (None, scratch, is -1)."""

    __slots__ = ("refs", "_pos")

    def __init__(self) -> None:
        self.refs: list[Ref] = []
        self._pos: dict[tuple[int, int], int] = {}

    def index(self, ref: Ref | None) -> int:
        if ref is None:
            return -1
        key = (id(ref.op), ref.index)
        i = self._pos.get(key)
        if i is None:
            i = self._pos[key] = len(self.refs)
            self.refs.append(ref)
        return i

    def __len__(self) -> int:
        return len(self.refs)

    def tuple(self) -> tuple[Ref, ...]:
        return tuple(self.refs)


def default_platform() -> Platform:
    """The host's platform, as BuildKit's client defaults to."""
    arch = _ARCH.get(_pyplatform.machine().lower(), "amd64")
    return Platform(arch, "linux", "v7" if arch == "arm" else "")


def parse_platform(p: Platform | str | None) -> Platform | None:
    """``os/arch[/variant]`` (or a :class:`Platform`, or None)."""
    if p is None or isinstance(p, Platform):
        return p
    parts = p.split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise MasonError(f"invalid platform {p!r}: expected os/arch[/variant]")
    return Platform(parts[1], parts[0], parts[2] if len(parts) > 2 else "")


def progress_group(id: str, name: str = "", weak: bool = False) -> ProgressGroup:
    """A progress group (``llb.ProgressGroup``): ops sharing ``id`` show as one group ``name``."""
    return ProgressGroup(id, name, weak)


def op_metadata(name: str | None = None, description: Mapping[str, str] | None = None,
                progress: ProgressGroup | None = None, ignore_cache: bool = False) -> OpMetadata:
    """An op's metadata: ``description`` (any keys), ``name`` as ``llb.customname`` on top."""
    if not description and name is None and progress is None and not ignore_cache:
        return EMPTY_METADATA
    if name is None:
        items = sorted(description.items()) if description else []
    else:
        d = dict(description or {})
        d[CUSTOM_NAME] = name
        items = sorted(d.items())
    return OpMetadata(ignore_cache, tuple(items), None, (), progress)
