"""Sources for the solver: dispatch a SourceOp to its loader in ``backends/sources`` with the
build's leased client (``docker-image://`` with the registry client, ``local://NAME`` from the
driver's directory map, ``oci-layout://``, ``http(s)://``, ``git://``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mason.backends.sources.result import SourceResult
from mason.ir.errors import MasonError
from mason.ir.ops import SourceOp
from mason.ir.resolver import PlatformSpec

if TYPE_CHECKING:
    from mason.backends.solver.context import SolveContext


def _platform(op: SourceOp) -> PlatformSpec | None:
    p = op.platform
    if p is None:
        return None
    return PlatformSpec(p.os, p.architecture, p.variant).normalized()


def load_source(ctx: "SolveContext", op: SourceOp) -> SourceResult:
    ident = op.identifier
    attrs = dict(op.attrs)
    scheme = ident.split("://", 1)[0] if "://" in ident else ""
    c = ctx.client
    if scheme == "docker-image":
        from mason.backends.sources.image import load_image

        return load_image(c, ctx.registry, ident, attrs, _platform(op),  # made on a store miss
                          cancel=ctx.token.is_set)
    if scheme == "local":
        from mason.backends.sources.local import load_local

        name = ident[len("local://"):]
        local = ctx.opts.locals.get(name)
        if local is None:
            known = ", ".join(sorted(ctx.opts.locals)) or "none"
            raise MasonError(f"no directory for local://{name} (known: {known})", op.loc)
        if local.exclude and "local.excludepatterns" not in attrs:
            attrs["local.excludepatterns"] = json.dumps(list(local.exclude))
        return load_local(c, name, local.path, attrs, cache_dir=ctx.solver.root / "solver")
    if scheme == "oci-layout":
        from mason.backends.sources.ocilayout import load_oci_layout

        return load_oci_layout(c, ident, attrs, _platform(op), ctx.opts.oci_layouts)
    if scheme in ("http", "https"):
        try:
            from mason.backends.sources.http import load_http
        except ImportError:
            raise MasonError(f"{scheme}:// sources are not available yet", op.loc) from None
        return load_http(c, ident, attrs, tmp_dir=ctx.tmpdir, cancel=ctx.token.is_set)
    if scheme == "git":
        try:
            from mason.backends.sources.git import load_git
        except ImportError:
            raise MasonError("git:// sources are not available yet", op.loc) from None
        from mason.backends.solver.entitlements import GIT_LOCAL

        return load_git(c, ident, attrs, allow_local=GIT_LOCAL in ctx.entitlements, secret=ctx.secrets.value,
                        tmp_dir=ctx.tmpdir, cancel=ctx.token.is_set)
    raise MasonError(f"unknown source {ident!r} (docker-image://, local://, oci-layout://, http(s)://, git://)",
                     op.loc)
