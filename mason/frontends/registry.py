"""The frontend registry: the built-in frontends plus Python entry points in the group
``mason.frontends`` (a plugin installed with pip is listed and used with no change to mason).

    [project.entry-points."mason.frontends"]
    mylang = "mylang.frontend:MyLangFrontend"

An entry point names a :class:`~mason.frontends.base.Frontend` class (or a zero-argument
factory); a plugin cannot replace a built-in of the same name. :func:`select` is the one place a
frontend is chosen for a file:

1. a ``# syntax=VALUE`` directive at the top (:func:`syntax_of`) picks the frontend
   that handles VALUE — built-ins first, then plugins; none is an error located at the directive;
2. else the first frontend that claims the file (by name, extension or first line);
3. else the Dockerfile frontend (as ``docker build -f anything``).

Plugins' entry points are read only when no built-in answers, so a Dockerfile build never scans
the installed distributions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mason.frontends.base import Frontend
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["GROUP", "FrontendInfo", "available", "load", "select", "syntax_of", "DEFAULT"]

GROUP = "mason.frontends"
DEFAULT = "dockerfile"
# name -> "module:attribute"
BUILTINS: dict[str, str] = {
    "buildpacks": "mason.frontends.buildpacks.frontend:BuildpacksFrontend",
    "dockerfile": "mason.frontends.dockerfile.frontend:DockerfileFrontend",
    "mockerfile": "mason.frontends.mockerfile.frontend:MockerfileFrontend",
}

@dataclass(frozen=True)
class FrontendInfo:
    """A frontend's name, where it comes from (``built-in`` or the distribution that installs
    it), and the ``module:attribute`` that makes it."""

    name: str
    origin: str
    target: str


def syntax_of(text: str, filename: str = "Dockerfile") -> tuple[str, SourceLoc] | None:
    """The ``# syntax=`` value of ``text`` and where it is, found as BuildKit's ``DetectSyntax``
    finds it for any frontend: parser directives at the very top (after a BOM and a ``#!``
    line), ``#`` or ``//`` comments, or a JSON object's ``"syntax"`` key."""
    from mason.frontends.dockerfile.directives import detect_directive

    d = detect_directive(text, "syntax", any_format=True)
    if d is None or not d.value.strip():
        return None
    line = d.loc.line if d.loc is not None else 1
    return d.value.strip(), SourceLoc(filename, line, 1)


def _plugins() -> list[tuple[FrontendInfo, object]]:
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTINS:
            continue
        dist = getattr(ep, "dist", None)
        origin = f"plugin {dist.name} {dist.version}" if dist is not None else "plugin"
        out.append((FrontendInfo(ep.name, origin, ep.value), ep))
    return sorted(out, key=lambda p: p[0].name)


def available() -> list[FrontendInfo]:
    """Every frontend: the built-ins, then the plugins, each by name."""
    return ([FrontendInfo(n, "built-in", t) for n, t in sorted(BUILTINS.items())]
            + [info for info, _ in _plugins()])


def _make(name: str, factory: object) -> Frontend:
    fe = factory() if callable(factory) else factory
    if not isinstance(fe, Frontend):
        raise MasonError(f"frontend {name!r} ({type(fe).__name__}) does not implement the Frontend "
                         "interface (name, description, claims, handles_syntax, lower, outline, targets, lint)")
    return fe


def _builtin(name: str) -> Frontend:
    module, _, attr = BUILTINS[name].partition(":")
    return _make(name, getattr(importlib.import_module(module), attr))


def _load_plugin(info: FrontendInfo, ep) -> Frontend:
    try:
        factory = ep.load()
    except Exception as e:  # a broken plugin is the user's installation, not mason's bug
        raise MasonError(f"frontend {info.name!r} ({info.origin}) cannot be loaded from "
                         f"{info.target}: {type(e).__name__}: {e}") from None
    return _make(info.name, factory)


def load(name: str) -> Frontend:
    """The frontend called ``name``."""
    if name in BUILTINS:
        return _builtin(name)
    for info, ep in _plugins():
        if info.name == name:
            return _load_plugin(info, ep)
    names = ", ".join(i.name for i in available())
    raise MasonError(f"no frontend {name!r} (frontends: {names})")


def select(path: str, text: str, filename: str | None = None) -> Frontend:
    """The frontend for the file at ``path`` with ``text`` (see the module docstring);
    ``filename`` is how an error names the file."""
    found = syntax_of(text, filename or path)
    builtins = [_builtin(n) for n in BUILTINS]
    if found is not None:
        value, loc = found
        for fe in builtins:
            if fe.handles_syntax(value):
                return fe
        for info, ep in _plugins():
            fe = _load_plugin(info, ep)
            if fe.handles_syntax(value):
                return fe
        line = text.splitlines()[loc.line - 1] if text else None
        raise MasonError(f"unsupported frontend # syntax={value}: no installed frontend handles it "
                         f"(frontends: {', '.join(i.name for i in available())})", loc, line)
    for fe in builtins:
        if fe.name != DEFAULT and fe.claims(path, text):
            return fe
    default = next(fe for fe in builtins if fe.name == DEFAULT)
    if default.claims(path, text):
        return default
    for info, ep in _plugins():
        fe = _load_plugin(info, ep)
        if fe.claims(path, text):
            return fe
    return default
