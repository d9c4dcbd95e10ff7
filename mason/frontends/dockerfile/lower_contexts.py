"""Named build contexts (``--build-context NAME=VALUE``) in the Dockerfile lowering, as BuildKit's
Dockerfile frontend takes its ``context:NAME`` options.

The values arrive in that option's form (the driver turns what the user wrote into it, see
:mod:`mason.build_contexts`): ``docker-image://REF`` (``scratch``: the empty filesystem),
``oci-layout://STORE@DIGEST`` (an image in the OCI layout the solver knows as STORE),
``local:NAME`` (a client directory the driver sends as ``local://NAME``), an ``http(s)://`` URL
(one file, named ``context``), a git URL. A context replaces

* a stage whose name is NAME (the stage's instructions are not lowered at all),
* ``FROM NAME`` and ``COPY --from=NAME`` / ``RUN --mount=from=NAME`` where NAME is no stage.

NAME is matched as BuildKit does: the reference's familiar form without ``:latest``
(``FROM docker.io/library/alpine`` finds ``alpine``); ``scratch`` and ``context`` are never
replaced. Ops get BuildKit's names (``[context NAME] REF``, ``[context NAME] load from client``).
A ``docker-image://`` context is not pinned (BuildKit resolves only its config); a ``local:``
directory follows the paths ``COPY --from=NAME`` reads, or all of it when anything else uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from mason.ir.builder import State, git, http, image, local, oci_layout, placeholder, scratch
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.reference import parse_reference
from mason.ir.resolver import PlatformSpec

if TYPE_CHECKING:  # pragma: no cover
    from mason.ir.ops import Ref

__all__ = ["context_key", "NamedContexts"]


def context_key(name: str) -> str | None:
    """The key BuildKit looks a name up under (``docker.io/library/alpine:latest`` → ``alpine``),
    None for a name that is no reference (it is never a context)."""
    try:
        fam = parse_reference(name).familiar()
    except MasonError:
        return None
    return fam[: -len(":latest")] if fam.endswith(":latest") else fam


@dataclass
class _Local:
    key: str
    local_name: str
    state: State  # a placeholder, replaced once every stage is lowered
    paths: dict[int, set[str]] = field(default_factory=dict)  # stage index -> paths COPY reads


class NamedContexts:
    """The named contexts of one lowering: ``contexts`` maps names to option values,
    ``excludes`` a ``local:`` directory's ``.dockerignore`` patterns by local name."""

    def __init__(self, contexts: Mapping[str, str], excludes: Mapping[str, tuple[str, ...]], lowerer: Any):
        self.contexts = dict(contexts)
        self.excludes = excludes
        self.lw = lowerer
        self._made: dict[tuple[str, PlatformSpec], tuple[State, dict | None]] = {}
        self._locals: dict[str, _Local] = {}  # by local name
        self._by_key: dict[str, _Local] = {}

    def __bool__(self) -> bool:
        return bool(self.contexts)

    def lookup(self, name: str, pspec: PlatformSpec, loc: SourceLoc | None,
               stage: int | None = None, paths: tuple[str, ...] | None = None) -> tuple[State, dict | None] | None:
        """The state (and image config, None for a non-image) of the context replacing ``name``,
        or None. ``stage`` uses it; ``paths``: what a COPY reads from it (None: all of it)."""
        if not self.contexts or name.lower() in ("scratch", "context"):
            return None
        key = context_key(name)
        if key is None or key not in self.contexts:
            return None
        made = self._made.get((key, pspec))
        if made is None:
            made = self._made[(key, pspec)] = self._make(key, self.contexts[key], pspec, loc)
        lc = self._by_key.get(key)
        if lc is not None and stage is not None:
            seen = lc.paths.setdefault(stage, set())
            seen.update(paths if paths is not None else ("/",))
        return made

    def _make(self, key: str, value: str, pspec: PlatformSpec, loc: SourceLoc | None) -> tuple[State, dict | None]:
        from mason.frontends.dockerfile.lower_state import to_platform

        platform = to_platform(pspec)
        scheme, sep, rest = value.partition(":")
        if scheme.startswith("git@"):
            scheme = "git"
        if not sep:
            raise MasonError(f"invalid context specifier {value} for {key}", loc)
        if scheme == "docker-image":
            ref = rest[2:] if rest.startswith("//") else rest
            if ref == "scratch":
                return scratch(platform=platform), None
            name = f"[context {key}] {ref}"
            try:
                st = image(ref, platform=platform, name=name, loc=loc)
            except MasonError as e:
                raise MasonError(f"--build-context {key}: {e.message}", loc) from None
            return st, self._config(key, ref, pspec, loc)
        if scheme == "oci-layout":
            return self._oci_layout(key, rest[2:] if rest.startswith("//") else rest, pspec, loc)
        if scheme == "local":
            if rest not in self._locals:
                self._locals[rest] = _Local(key, rest, placeholder("local://" + rest, platform=platform))
            self._by_key[key] = self._locals[rest]
            return self._locals[rest].state.with_platform(platform), None
        if scheme in ("http", "https") or scheme == "git":
            from mason.frontends.dockerfile.lower_copy import is_git_url

            if is_git_url(value):
                url, _, fragment = value.partition("#")
                ref, _, subdir = fragment.partition(":")
                return git(url, ref, subdir=subdir, platform=platform,
                           name="[internal] load git source " + value, loc=loc), None
            if scheme == "git":
                raise MasonError(f"invalid git context {value}", loc)
            return http(value, filename="context", platform=platform, name=f"[context {key}] {value}", loc=loc), None
        raise MasonError(f"unsupported context source {scheme} for {key}", loc)

    def _oci_layout(self, key: str, spec: str, pspec: PlatformSpec, loc: SourceLoc | None) -> tuple[State, dict]:
        """BuildKit's: ``STORE@DIGEST`` (the driver resolved any tag) as an image named like
        the context, with the digest; its config from the layout (``resolve_oci_layout``)."""
        from mason.frontends.dockerfile.lower import _empty_config
        from mason.frontends.dockerfile.lower_state import to_platform

        store, at, digest = spec.partition("@")
        if not at or not store:
            raise MasonError(f"oci-layout reference {spec!r} has no digest", loc)
        try:
            ref = str(parse_reference(key, default_tag=False).with_digest(digest))
        except MasonError as e:
            raise MasonError(f"could not parse oci-layout reference {key!r}: {e.message}", loc) from None
        st = oci_layout(ref, store=store, platform=to_platform(pspec),
                        name=f"[context {key}] OCI load from client", loc=loc)
        resolve = getattr(self.lw.resolver, "resolve_oci_layout", None)
        if resolve is None:
            self.lw.warn(f"build context {key}: no OCI layout resolver, so an empty image config", loc)
            return st, _empty_config(pspec)
        try:
            cfg = dict(resolve(store, digest, pspec))
        except MasonError as e:
            raise MasonError(e.message, loc) from None
        cfg.pop("created", None)
        return st, cfg

    def _config(self, key: str, ref: str, pspec: PlatformSpec, loc: SourceLoc | None) -> dict:
        import copy

        from mason.frontends.dockerfile.lower import _empty_config

        resolver = self.lw.resolver
        if resolver is None:
            self.lw.warn(f"not resolving base images (--no-resolve): build context {key} ({ref}) gets "
                         "an empty image config", loc)
            return _empty_config(pspec)
        try:
            res = resolver.resolve_image_config(ref, pspec)
        except MasonError as e:
            raise MasonError(f"--build-context {key}: {e.message}", loc) from None
        cfg = copy.deepcopy(res.config)
        cfg.pop("created", None)  # BuildKit drops it: the stage's image is new
        return cfg

    def finish(self, refs: list["Ref"], wanted: set[int]) -> list["Ref"]:
        """``refs`` with each ``local:`` placeholder replaced by its ``local://`` source, which
        follows the paths the wanted stages copy from it (all of it if one uses it otherwise)."""
        from mason.ir.builder import substitute

        for lc in self._locals.values():
            paths: set[str] = set()
            for i, p in lc.paths.items():
                if i in wanted:
                    paths |= p
            follow = sorted(p.lstrip("/") or "." for p in paths) if paths and "/" not in paths else ()
            real = local(lc.local_name, follow_paths=follow, exclude=self.excludes.get(lc.local_name, ()),
                         shared_key_hint=f"context:{lc.key}-", custom_name=f"[context {lc.key}] load from client")
            refs = substitute(refs, lc.state, real)
        return refs
