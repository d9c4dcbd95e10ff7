"""``mason rebase IMAGE --run-image NEW``: move an image's layers above its base onto a new base
without running any build step — what ``pack rebase`` does, as LLB.

The graph is two ops over three ``docker-image://`` sources: ``diff(OLD_BASE, IMAGE)`` — the
layers above the old base, which the solver takes as they are (a DiffOp whose lower chain is a
prefix of the upper's yields the remaining layers, byte for byte) — merged onto ``NEW``
(``merge([NEW, diff])``). The result's config is the image's own (entrypoint, cmd, env, labels,
working directory…) with the new base's layers and history in place of the old base's; a
buildpacks image's ``io.buildpacks.lifecycle.metadata`` names the new run image.

The old base is, in order: ``--base`` when given; the base mason recorded when it built the
image (the build history's ``base``: the ``docker-image`` source the image's layer chain starts
from — a Dockerfile's ``FROM``, a buildpacks run image); the run image a buildpacks image's
lifecycle label names. None of these is an error saying so. The old base's layers must be the
first layers of the image.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mason.ir.errors import MasonError
from mason.ir.graph import Graph, Output
from mason.ir.resolver import CachingResolver, PlatformSpec, ResolvedImage

__all__ = ["RebaseRequest", "rebase", "recorded_base", "base_of_output", "LIFECYCLE_LABEL", "BASE_KEY"]

LIFECYCLE_LABEL = "io.buildpacks.lifecycle.metadata"
BASE_KEY = "base"  # a build record's key: the pinned docker-image its output's layers start from


@dataclass
class RebaseRequest:
    image: str
    run_image: str
    base: str | None = None  # the old base, when mason cannot know it
    tags: tuple[str, ...] = ()  # default: the image's own name
    outputs: tuple[str, ...] = ()
    root: str | None = None
    containerd_address: str | None = None
    insecure_registries: tuple[str, ...] = ()
    events: Any = None
    history: bool = True
    extra: dict = field(default_factory=dict)


def base_of_output(graph: Graph, output: str) -> str | None:
    """The pinned ``docker-image`` reference ``output``'s layer chain starts from, if any."""
    from mason.ir.layers import layer_chain
    from mason.ir.ops import SourceOp

    chain = layer_chain(graph.output(output).ref)
    first = chain[0] if chain else None
    if isinstance(first, SourceOp) and first.identifier.startswith("docker-image://"):
        return first.identifier[len("docker-image://"):]
    return None


def recorded_base(root: str | None, manifest_digest: str) -> str | None:
    """The base of the newest recorded build that wrote ``manifest_digest``."""
    from mason.backends.solver.history import list_builds
    from mason.driver.solvers import state_root

    for rec in reversed(list_builds(state_root(root))):
        if rec.meta.get("image") == manifest_digest and isinstance(rec.meta.get(BASE_KEY), str):
            return rec.meta[BASE_KEY]
    return None


def _label_base(cfg: dict) -> str | None:
    raw = ((cfg.get("config") or {}).get("Labels") or {}).get(LIFECYCLE_LABEL)
    if not raw:
        return None
    try:
        run = json.loads(raw).get("runImage") or {}
    except (ValueError, AttributeError):
        return None
    ref = run.get("reference") or run.get("image")
    return ref if isinstance(ref, str) and ref else None


def _diff_ids(cfg: dict) -> list[str]:
    return list((cfg.get("rootfs") or {}).get("diff_ids") or [])


def _history_above(img: dict, base: dict) -> list[dict]:
    """The image's history entries after its base's (the base's are a prefix when the image was
    built on it; else those past as many layer entries as the base has layers)."""
    h, bh = list(img.get("history") or []), list(base.get("history") or [])
    if h[:len(bh)] == bh:
        return h[len(bh):]
    layers = len(_diff_ids(base))
    for i, e in enumerate(h):
        if layers == 0:
            return h[i:]
        if not e.get("empty_layer"):
            layers -= 1
    return []


def rebased_config(img: dict, old: dict, new: ResolvedImage, new_name: str) -> dict:
    """The image's config on the new base (see the module docstring)."""
    cfg = copy.deepcopy(img)
    above = _diff_ids(img)[len(_diff_ids(old)):]
    cfg["rootfs"] = {"type": "layers", "diff_ids": _diff_ids(new.config) + above}
    cfg["history"] = list(copy.deepcopy(new.config.get("history") or [])) + _history_above(img, old)
    labels = (cfg.get("config") or {}).get("Labels") or {}
    if labels.get(LIFECYCLE_LABEL):
        try:
            meta = json.loads(labels[LIFECYCLE_LABEL])
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            top = _diff_ids(new.config)[-1:] or [""]
            meta["runImage"] = {"image": new_name, "reference": new.ref, "topLayer": top[0]}
            labels[LIFECYCLE_LABEL] = json.dumps(meta, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return cfg


def plan(req: RebaseRequest, resolver) -> tuple[Graph, str, str]:  # noqa: ANN001 - an ImageMetaResolver
    """(the graph, the old base, the new base) for ``req``, resolving through ``resolver``."""
    from mason.ir import builder as llb

    try:
        img = resolver.resolve_image_config(req.image, None)
    except MasonError as e:
        raise MasonError(f"rebase: {e.message}") from None
    cfg = img.config
    pspec = PlatformSpec(cfg.get("os") or "linux", cfg.get("architecture") or "amd64", cfg.get("variant") or "")
    digest = img.manifest_digest or img.digest
    old_name = req.base or recorded_base(req.root, digest) or _label_base(cfg)
    if not old_name:
        raise MasonError(f"rebase: the base of {req.image} is not known (mason did not build it, or built it "
                         "FROM scratch, and it has no io.buildpacks.lifecycle.metadata run image); "
                         "name it with --base IMAGE")
    old = resolver.resolve_image_config(old_name, pspec)
    have, base_ids = _diff_ids(cfg), _diff_ids(old.config)
    if have[:len(base_ids)] != base_ids:
        raise MasonError(f"rebase: {req.image} is not built on {old_name}: its first layers are not that "
                         "image's layers")
    new = resolver.resolve_image_config(req.run_image, pspec)
    plat = str(pspec)
    image = llb.image(img.ref, platform=plat, name=f"[rebase] {req.image}")
    lower = llb.image(old.ref, platform=plat, name=f"[rebase] old base {old_name}")
    upper = llb.image(new.ref, platform=plat, name=f"[rebase] new base {req.run_image}")
    app = llb.diff(lower, image, name="[rebase] layers above the old base")
    result = llb.merge([upper, app], name="[rebase] onto the new base")
    assert result.ref is not None
    out = Output("default", result.ref, rebased_config(cfg, old.config, new, req.run_image))
    return Graph((out,)), old.ref, new.ref


def rebase(req: RebaseRequest):  # -> mason.driver.BuildResult
    """Rebase ``req.image`` (see the module docstring); the result is stored under ``req.tags``
    (default: the image's name) and written to ``req.outputs``."""
    from mason.backends.exporters.outputs import check_outputs
    from mason.backends.sources.registry import RegistryResolver
    from mason.backends.sources.store_resolver import StoreResolver
    from mason.driver import output_specs, solve_graph
    from mason.driver.resolvers import OnDemandResolver
    from mason.driver.solvers import LazySolver

    tags: Iterable[str] = req.tags or (() if req.outputs else (req.image,))
    # output mistakes fail before anything is resolved
    check_outputs(output_specs(req.outputs, tags), insecure_registries=req.insecure_registries)
    lazy = LazySolver(req.root, req.containerd_address)
    try:
        inner = OnDemandResolver(lambda: StoreResolver(
            lambda: lazy.get().client,
            OnDemandResolver(lambda: RegistryResolver(insecure_registries=req.insecure_registries))))
        try:
            graph, old, new = plan(req, CachingResolver(inner))
        finally:
            inner.close()
        record = {"command": "rebase", "image_in": req.image, "old_base": old, BASE_KEY: new, **req.extra}
        return solve_graph(graph, output="default", tags=tags, outputs=req.outputs, root=req.root,
                           insecure_registries=req.insecure_registries, events=req.events,
                           solver=lazy.get().solver, record=record if req.history else None)
    finally:
        lazy.close()
