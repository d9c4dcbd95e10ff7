"""Lowering: :func:`lower_request` runs the chosen frontend on the build file with an
image-metadata resolver (the registry client, or none with ``resolve=False``), then the pass
pipeline (``-O1`` by default; ``--target T`` becomes ``prune{targets=T}``). Several platforms
lower once each and become one graph (``dedupe`` shares what does not depend on the platform)."""

from __future__ import annotations

from typing import Any, Callable, TextIO

from mason.driver.frontend import choose_frontend
from mason.driver.inputs import parse_platforms, pipeline_for
from mason.driver.outputs import pick_output
from mason.driver.requests import LowerRequest, LowerResult
from mason.driver.resolvers import registry_resolver
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.resolver import ImageMetaResolver

# runs a frontend image: (the resolution's Choice, the request, the build file's path) -> FrontendResult
GatewayHook = Callable[[Any, Any, str], Any]


def lower_request(req: LowerRequest, *, resolver: ImageMetaResolver | None = None,
                  err: TextIO | None = None, gateway: GatewayHook | None = None, cache=None) -> LowerResult:
    """Lower ``req``'s Dockerfile to a graph and run the passes. ``resolver`` overrides the
    registry resolver (tests pass an in-memory one); IR dumps go to ``err``. ``gateway`` runs a
    frontend image when the choice is one (:func:`build` passes one; without it, a frontend image
    is an error: it needs containerd).

    With several platforms (``platform="linux/amd64,linux/arm64"``) the Dockerfile is lowered
    once per platform and the results become one graph whose outputs are named after the
    platforms (``linux/arm64``); ``dedupe`` then shares every op that does not depend on the
    target platform (a ``FROM --platform=$BUILDPLATFORM`` stage is one op chain for all)."""
    from dataclasses import replace

    platforms = parse_platforms(req.platform)
    if len(platforms) <= 1:
        one = replace(req, platform=str(platforms[0]) if platforms else None)
        return _lower_one(one, resolver=resolver, err=err, gateway=gateway, cache=cache)

    from mason.ir.graph import Output
    from mason.passes import run_pipeline

    owned = None
    if resolver is None:
        resolver, owned = registry_resolver(req.resolve, req.insecure_registries)
    try:
        lows = [_lower_one(replace(req, platform=str(p), lint=req.lint and i == 0), resolver=resolver, err=err,
                           gateway=gateway, cache=cache)
                for i, p in enumerate(platforms)]
    finally:
        if owned is not None:
            owned.close()  # type: ignore[attr-defined]
    outs = []
    for p, low in zip(platforms, lows, strict=True):
        o = low.graph.output(pick_output(low.graph, req.target))
        outs.append(Output(str(p), o.ref, o.image_config, o.metadata))
    graph = run_pipeline(Graph(tuple(outs)), "dedupe", verify_each=req.verify_each, out=err)
    warnings: list[str] = []
    for low in lows:
        warnings += [w for w in low.warnings if w not in warnings]
    timings: dict[str, float] = {}
    for low in lows:
        for k, v in low.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    first = lows[0]
    return LowerResult(graph, warnings, first.frontend, first.pipeline + ",dedupe", timings, first.stages,
                       tuple(platforms), first.checks, first.checks_failed)



def _lower_one(req: LowerRequest, *, resolver: ImageMetaResolver | None, err: TextIO | None,
               gateway: GatewayHook | None = None, cache=None) -> LowerResult:
    """One platform's lowering; ``cache`` (a :class:`mason.lowering_cache.LoweringCache`) gives
    back the last identical lowering, and keeps this one."""
    from dataclasses import replace

    from mason.frontends.base import answers

    choice, freq, path = choose_frontend(req)
    if choice.frontend is None and gateway is None:
        raise MasonError(f"frontend image {choice.image} (chosen by {choice.how}) runs on containerd: "
                         "use mason build", choice.loc).with_source(freq.text)
    owned = None
    if resolver is None:
        resolver, owned = registry_resolver(req.resolve, req.insecure_registries)
    checks: list = []  # LintWarning
    failed: list[str] = []
    try:
        freq = replace(freq, resolver=resolver)
        if req.build_contexts:  # the image configs of --build-context oci-layout:// images
            from mason.build_contexts import LayoutResolver, parse_build_contexts

            layouts = parse_build_contexts(req.build_contexts).layouts
            if layouts:
                freq = replace(freq, resolver=LayoutResolver(resolver, layouts))
        key = _cache_key(cache, req, freq, path, choice)
        if key is not None:
            from mason.lowering_cache import GraphRecords

            hit = cache.get(key, freq.resolver)
            if hit is not None:
                cache.touch(key)
                return LowerResult(hit.graph, list(hit.warnings), hit.frontend, hit.pipeline, {"cached": 1.0},
                                   hit.stages, checks=hit.checks, checks_failed=hit.checks_failed,
                                   graph_records=GraphRecords(cache, key))
            from mason.lowering_cache import RecordingResolver

            recorder = RecordingResolver(freq.resolver)
            freq = replace(freq, resolver=recorder)
        fe = choice.frontend
        if fe is not None:
            low = fe.lower(freq)
            if req.lint and answers(fe, "lint"):
                report = fe.lint(replace(freq, for_build=True))
                checks = list(report.warnings)
                if report.failed:
                    failed = list(dict.fromkeys(w.rule for w in report.warnings))
        else:
            assert gateway is not None
            low = gateway(choice, freq, path)
    finally:
        if owned is not None:
            owned.close()  # type: ignore[attr-defined]
    graph = low.graph
    warnings = [w.format() for w in low.warnings]
    target = req.target if choice.frontend is not None else None  # an image applies --target itself
    if target is not None and target not in graph.names():
        names = ", ".join(n for n in graph.names() if n != "default")
        raise MasonError(f"target stage {req.target!r} could not be found (stages: {names})")
    stages = low.stages
    pipeline = pipeline_for(req.level, req.passes, target)
    timings = dict(low.timings)
    import time

    from mason.passes import run_pipeline

    t0 = time.perf_counter()
    graph = run_pipeline(graph, pipeline, print_after=req.print_after,
                         print_after_all=req.print_after_all, verify_each=req.verify_each,
                         time_passes=req.time_passes, out=err)
    timings["passes"] = (time.perf_counter() - t0) * 1000
    records = None
    if key is not None and cache.put(key, recorder, graph, warnings=warnings, frontend=choice.name,
                                     pipeline=pipeline, stages=stages, checks=checks, checks_failed=failed):
        records = GraphRecords(cache, key)
    return LowerResult(graph, warnings, choice.name, pipeline, timings, stages, checks=tuple(checks),
                       checks_failed=tuple(failed), graph_records=records)


def _cache_key(cache, req: LowerRequest, freq, path: str, choice) -> str | None:
    """The lowering cache's key for this request, None when it is not cached: no cache, a
    frontend other than the built-in Dockerfile one, IR dumps or per-pass checks asked for."""
    if cache is None or req.print_after or req.print_after_all or req.verify_each or req.time_passes:
        return None
    from dataclasses import fields

    from mason.frontends.dockerfile.frontend import DockerfileFrontend

    if type(choice.frontend) is not DockerfileFrontend:
        return None
    return cache.key(frontend=choice.name, how=choice.how, path=path, request=req,
                     frontend_request={f.name: getattr(freq, f.name) for f in fields(freq) if f.name != "resolver"})

