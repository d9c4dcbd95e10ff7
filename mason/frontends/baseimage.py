"""A base image for the YAML/TOML frontends: resolved and pinned (as a Dockerfile ``FROM``),
its config seeding the state's env, working directory and user."""

from __future__ import annotations

import copy
from typing import Callable

from mason.ir import builder as llb
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.imageconfig import empty_image_config
from mason.ir.reference import normalize
from mason.ir.resolver import ImageMetaResolver, PlatformSpec

__all__ = ["BaseImages"]


class BaseImages:
    """Resolves each (name) once; without a resolver, lowers unpinned with an empty config and
    warns once."""

    def __init__(self, resolver: ImageMetaResolver | None, pspec: PlatformSpec,
                 warn: Callable[[str, SourceLoc | None], None], prefix: str):
        self.resolver = resolver
        self.pspec = pspec
        self.warn = warn
        self.prefix = prefix
        self._seen: dict[str, tuple[llb.State, dict, str]] = {}
        self._warned = False

    def get(self, name: str, loc: SourceLoc | None) -> tuple[llb.State, dict, str]:
        """(state, image config, pinned reference) of ``name``."""
        hit = self._seen.get(name)
        if hit is not None:
            return hit[0], copy.deepcopy(hit[1]), hit[2]
        if self.resolver is None:
            try:
                ident = normalize(name)
            except MasonError as e:
                raise MasonError(e.message, loc) from None
            if not self._warned:
                self._warned = True
                self.warn(f"not resolving base images (--no-resolve): {name} is lowered unpinned, "
                          "with an empty image config", loc)
            cfg = empty_image_config(self.pspec.architecture, self.pspec.os, self.pspec.variant)
        else:
            try:
                res = self.resolver.resolve_image_config(name, self.pspec)
            except MasonError as e:
                raise MasonError(e.message, loc) from None
            ident, cfg = res.ref, copy.deepcopy(res.config)
        st = llb.image(ident, platform=str(self.pspec), name=f"[{self.prefix}] {name}")
        c = cfg.get("config") or {}
        for entry in c.get("Env") or ():
            k, _, v = str(entry).partition("=")
            st = st.with_env(k, v)
        if c.get("WorkingDir"):
            st = st.with_cwd(str(c["WorkingDir"]))
        if c.get("User"):
            st = st.with_user(str(c["User"]))
        self._seen[name] = (st, cfg, ident)
        return st, copy.deepcopy(cfg), ident
