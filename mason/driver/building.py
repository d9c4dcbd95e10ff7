"""``mason build`` / ``mason.build(...)``: a build request goes outputs parsed and checked
(before anything runs) → a history record opened → lowering (base images resolved from mason's
image store first, then registries; a frontend image runs on the build's solver) → solve →
every output written by the exporters → the record closed with the image's digest."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Mapping

from mason.driver.inputs import read_dockerfile
from mason.driver.lowering import lower_request
from mason.driver.outputs import output_specs, pick_output
from mason.driver.records import build_meta, recording
from mason.driver.requests import BuildRequest, BuildResult, LowerRequest, LowerResult
from mason.driver.resolvers import OnDemandResolver
from mason.driver.solvers import LazySolver
from mason.driver.solving import check_no_cache_filter, solve
from mason.ir.errors import MasonError
from mason.ir.resolver import CachingResolver, ImageMetaResolver


def build(request: BuildRequest | None = None, /, **kw) -> BuildResult:
    """Build a Dockerfile: check the outputs, lower (frontend + passes), solve, export, with a
    history record around it all. ``mason.build(...)`` takes a :class:`BuildRequest` or its
    fields as keywords."""
    from dataclasses import replace

    from mason.backends.exporters.outputs import SOURCE_DATE_EPOCH, check_outputs, source_date_epoch
    from mason.backends.solver.events import Warning as WarningEvent

    req = request if request is not None else BuildRequest(**kw)
    if request is not None and kw:
        req = replace(request, **kw)
    context = req.context or "."
    dockerfile = req.dockerfile if req.dockerfile is not None else str(Path(context) / "Dockerfile")
    build_args = dict(req.build_args)
    epoch = req.source_date_epoch
    if epoch is None:
        epoch = source_date_epoch(build_args)
        if epoch is not None and SOURCE_DATE_EPOCH not in build_args:
            build_args[SOURCE_DATE_EPOCH] = str(epoch)  # as buildx: the Dockerfile's ARG sees it too
    insecure = tuple(req.insecure_registries)
    # every output mistake that can be known now fails here, before any step runs
    specs = output_specs(req.outputs, req.tags, push=req.push)
    check_outputs(specs, insecure_registries=insecure)
    cache_from: tuple = ()
    cache_to: tuple = ()
    if req.cache_from or req.cache_to:
        from mason.backends.cache.spec import parse_cache_specs

        cache_from = tuple(parse_cache_specs(req.cache_from, "from"))
        cache_to = tuple(parse_cache_specs(req.cache_to, "to"))
    locals_: Mapping[str, object] = {"context": context,
                                     "dockerfile": str(Path(dockerfile).parent) if dockerfile != "-" else context}
    layouts: dict[str, str] = {}
    if req.build_contexts:  # the directories of --build-context (local://NAME) and OCI layouts
        from mason.build_contexts import parse_build_contexts

        named = parse_build_contexts(req.build_contexts)
        locals_ = {**named.dirs, **locals_}
        layouts = named.layouts
    if req.locals is not None:
        locals_ = req.locals
    lazy = LazySolver(req.root, req.containerd_address, req.solver)
    try:
        with recording(req.root, build_meta(req, context, dockerfile), req.events, req.history) as (sink, rec):
            try:
                from mason.driver.solvers import state_root
                from mason.lowering_cache import Deferred, LoweringCache

                lowering_cache = Deferred(LoweringCache(state_root(req.root)))  # kept if the build succeeds
                low = lower_for_build(req, build_args, lazy, locals_, sink, cache=lowering_cache)
                if sink is not None:
                    for w in low.warnings:
                        sink(WarningEvent(w))
                    for c in low.checks:
                        sink(WarningEvent(c.format(), c.rule, str(c.loc) if c.loc is not None else None))
                if low.checks_failed:
                    raise MasonError("lint violation found for rules: " + ", ".join(low.checks_failed))
                check_no_cache_filter(req.no_cache_filter, low.stages)
                output = str(low.platforms[0]) if low.platforms else pick_output(low.graph, req.target)
                res = solve(lazy, low.graph, specs, output=output, locals=locals_,
                             excludes=(), secrets=req.secrets, ssh=req.ssh, allow=req.allow, no_cache=req.no_cache,
                             insecure_registries=insecure, jobs=req.jobs, network_default=req.network_default,
                             source_date_epoch=epoch, events=sink, no_cache_filter=req.no_cache_filter,
                             explain=req.explain, secret_store=req.secret_store, cancel=req.cancel,
                             platforms=low.platforms, cache_from=cache_from, cache_to=cache_to,
                             oci_layouts=layouts, masked=build_args.values(), graph_records=low.graph_records,
                             limits={"memory": req.memory, "cpu_quota": req.cpu_quota, "cpu_period": req.cpu_period})
            except MasonError as e:
                if e.loc is not None and e.source_line is None and dockerfile != "-":
                    with contextlib.suppress(MasonError):
                        e.with_source(read_dockerfile(dockerfile))
                raise
            lowering_cache.commit()
            if rec is not None:
                rec.update(image=res.digest, names=list(res.names))
                if not low.platforms:  # what `mason rebase` takes as the image's base
                    from mason.rebase import BASE_KEY, base_of_output

                    rec.update(**{BASE_KEY: base_of_output(low.graph, output)})
                res.build_id = rec.id
    finally:
        lazy.close()
    res.warnings = list(low.warnings) + [c.format() for c in low.checks]
    res.timings.update({f"lower.{k}": v / 1000 for k, v in low.timings.items()})
    return res


def lower_for_build(req: BuildRequest, build_args: Mapping[str, str], lazy: LazySolver,
           locals_: Mapping[str, object] | None = None, sink=None, cache=None) -> LowerResult:
    """Lower with base images resolved from mason's image store first, then registries; a
    frontend image runs on the build's solver with its ``local://`` directories."""
    lreq = LowerRequest(context=req.context, dockerfile=req.dockerfile, target=req.target, build_args=build_args,
                        platform=req.platform, level=req.level, passes=req.passes,
                        insecure_registries=tuple(req.insecure_registries), frontend=req.frontend,
                        build_contexts=tuple(req.build_contexts), lint=True, shm_size=req.shm_size,
                        ulimits=tuple(req.ulimits))

    def registry() -> ImageMetaResolver:
        from mason.backends.sources.registry import RegistryResolver

        return RegistryResolver(insecure_registries=tuple(req.insecure_registries))

    def make() -> ImageMetaResolver:
        from mason.backends.sources.store_resolver import StoreResolver

        # the registry client (httpx, a TLS context) only when the store misses
        return StoreResolver(lambda: lazy.get().client, OnDemandResolver(registry))

    def gateway(choice, freq, path: str):
        from mason.gateway.driver import lower_with_image

        return lower_with_image(choice.image, freq, path=path, solver=lazy.get().solver, locals=locals_ or {},
                                events=sink, timeout=req.frontend_timeout, cmdline=choice.cmdline)

    inner = OnDemandResolver(make)
    try:
        return lower_request(lreq, resolver=CachingResolver(inner), gateway=gateway, cache=cache)
    finally:
        inner.close()
