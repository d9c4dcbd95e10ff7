"""Which frontend builds a file: the driver's choice, made in one place.

In this order (as BuildKit and buildx decide it):

1. ``--frontend NAME`` — a built-in or plugin name (``dockerfile.v0`` is the Dockerfile
   frontend), an image reference (a *frontend image*), or ``gateway`` (``gateway.v0``): use the
   ``# syntax=`` value (or ``BUILDKIT_SYNTAX``) as a frontend image even when it names a built-in;
2. the build arg ``BUILDKIT_SYNTAX``;
3. the first-line directive in any form BuildKit's ``DetectSyntax`` accepts: ``# syntax=``,
   ``#syntax=``, ``// syntax=``, a JSON first line ``{"syntax": …}``, after a ``#!`` line;
4. the file name (the frontend that claims it), else the Dockerfile frontend.

A syntax value names a built-in when one handles it (``docker/dockerfile:*`` with any tag, the
``-labs`` ones too, is the built-in Dockerfile frontend; ``mason/mockerfile``, ``r2d4/mocker``),
then a plugin, else it is a frontend image reference. A value that is neither (no frontend
handles it and it is no image reference) is one clear error listing what is available.

A named build context keyed by the syntax reference (``--build-context
docker/dockerfile:1=docker-image://REF``) replaces it, as in BuildKit: the frontend image is then
REF, also for a name a built-in would handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from mason.frontends import registry
from mason.frontends.base import Frontend
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["Choice", "choose", "SYNTAX_ARG", "GATEWAY", "ALIASES"]

SYNTAX_ARG = "BUILDKIT_SYNTAX"
GATEWAY = ("gateway", "gateway.v0")
ALIASES = {"dockerfile.v0": "dockerfile"}


@dataclass(frozen=True)
class Choice:
    """A frontend (built-in or plugin) or a frontend image, and what chose it (``--frontend``,
    ``BUILDKIT_SYNTAX``, ``# syntax``, ``file name``)."""

    frontend: Frontend | None = None
    image: str | None = None
    how: str = "file name"
    loc: SourceLoc | None = None
    # what follows the image in the directive (BuildKit passes it as "cmdline"); None for an image
    # named by --frontend, which gets no cmdline option and so may forward to its file's # syntax=
    cmdline: str | None = ""

    @property
    def name(self) -> str:
        return self.frontend.name if self.frontend is not None else f"image {self.image}"


def _available() -> str:
    return ", ".join(i.name for i in registry.available())


def _is_image_ref(value: str) -> bool:
    """An image reference as ``# syntax=`` takes it: it parses and names a repository
    (``a/b``, ``host/a``, a tag or digest); a bare word is no image."""
    from mason.ir.reference import parse_reference

    if not any(c in value for c in "/:@"):
        return False
    try:
        parse_reference(value)
    except MasonError:
        return False
    return True


def _by_name(name: str) -> Frontend | None:
    name = ALIASES.get(name, name)
    if name in {i.name for i in registry.available()}:
        return registry.load(name)
    return None


def frontend_for_syntax(value: str) -> Frontend | None:
    """The built-in or plugin that answers ``# syntax=value`` (or is named ``value``), if any."""
    return _by_syntax(value)


def _by_syntax(value: str) -> Frontend | None:
    fe = _by_name(value)
    if fe is not None:
        return fe
    for info in registry.available():
        cand = registry.load(info.name)
        if cand.handles_syntax(value):
            return cand
    return None


def _unknown(what: str, value: str, loc: SourceLoc | None = None, line: str | None = None) -> MasonError:
    return MasonError(f"unknown frontend {what}{value!r}: no frontend of that name and no image reference "
                      f"(frontends: {_available()}; or give an image, e.g. docker.io/docker/dockerfile:1 "
                      f"with --frontend gateway)", loc, line)


def _replaced(value: str, named: Mapping[str, str]) -> str | None:
    """The frontend image a named context keyed by the syntax reference ``value`` gives."""
    if not named:
        return None
    from mason.frontends.dockerfile.lower_contexts import context_key

    ref = value.partition(" ")[0]
    key = context_key(ref)
    if key is None or key not in named:
        return None
    given = named[key]
    if not given.startswith("docker-image://"):
        raise MasonError(f"--build-context {key}={given}: only a docker-image:// context can replace the frontend "
                         f"image {ref}")
    return given[len("docker-image://"):]


def choose(path: str, text: str, filename: str | None = None, *, frontend: str | None = None,
           build_args: Mapping[str, str] | None = None, named_contexts: Mapping[str, str] | None = None) -> Choice:
    """The frontend for the file at ``path`` with ``text`` (see the module docstring);
    ``named_contexts`` are the ``--build-context`` values by key."""
    args = build_args or {}
    named = named_contexts or {}
    syntax: tuple[str, str, SourceLoc | None] | None = None
    if args.get(SYNTAX_ARG, "").strip():
        syntax = (args[SYNTAX_ARG].strip(), "BUILDKIT_SYNTAX", None)
    else:
        found = registry.syntax_of(text, filename or path)
        if found is not None:
            syntax = (found[0], "# syntax", found[1])
    if frontend is not None:
        name = frontend.strip()
        if not name:
            raise MasonError("--frontend needs a name")
        if name in GATEWAY:
            if syntax is None:
                raise MasonError(f"--frontend {name} needs a frontend image: a # syntax= line or the build arg "
                                 f"{SYNTAX_ARG}")
            ref, _, cmdline = syntax[0].partition(" ")
            ref = _replaced(syntax[0], named) or ref
            if not _is_image_ref(ref):
                raise _unknown("image ", syntax[0])
            return Choice(image=ref, how="--frontend", loc=syntax[2], cmdline=cmdline.strip())
        fe = _by_name(name)
        if fe is not None:
            return Choice(fe, how="--frontend")
        if _is_image_ref(name):
            fe = _by_syntax(name)
            return Choice(fe, how="--frontend") if fe is not None else Choice(image=name, how="--frontend",
                                                                                  cmdline=None)
        raise _unknown("", name)
    if syntax is not None:
        value, how, loc = syntax
        image = _replaced(value, named)
        if image is not None:
            return Choice(image=image, how=f"{how} and --build-context", loc=loc,
                          cmdline=value.partition(" ")[2].strip())
        fe = _by_syntax(value)
        if fe is not None:
            return Choice(fe, how=how, loc=loc)
        ref, _, cmdline = value.partition(" ")
        if _is_image_ref(ref):
            return Choice(image=ref, how=how, loc=loc, cmdline=cmdline.strip())
        line = text.splitlines()[loc.line - 1] if loc is not None and text else None
        raise _unknown(f"{'# syntax=' if how == '# syntax' else SYNTAX_ARG + '='}", value, loc, line)
    return Choice(registry.select(path, text, filename), how="file name")
