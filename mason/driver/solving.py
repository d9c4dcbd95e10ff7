"""Solving and exporting: :func:`solve` runs one output of a graph (or one per platform) on the
solver and writes the (already checked) output specs through the exporters, importing and
exporting remote caches around it; :func:`solve_graph` is ``mason solve``: an LLB graph, its
outputs checked, the solve recorded in the build history."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Mapping, Sequence

from mason.driver.outputs import describe_push, output_specs, pick_output
from mason.driver.records import attach_graph, recording
from mason.driver.requests import BuildResult
from mason.driver.solvers import LazySolver
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.resolver import PlatformSpec


def entitlements(allow: Iterable[str]) -> frozenset[str]:
    from mason.backends.solver.entitlements import parse_allow

    return parse_allow(allow)


def solve(lazy: LazySolver, graph: Graph, specs: list, *, output: str, locals: Mapping[str, object],
           excludes: Iterable[str], secrets: Iterable[str], ssh: Iterable[str], allow: Iterable[str],
           no_cache: bool, insecure_registries: tuple[str, ...], jobs: int, network_default: str,
           source_date_epoch: int | None, events, no_cache_filter: tuple[str, ...] = (),
           explain: bool = False, secret_store=None, cancel=None,
           platforms: Sequence[PlatformSpec] = (), cache_from: tuple = (),
           cache_to: tuple = (), oci_layouts: Mapping[str, str] | None = None,
           masked: Iterable[str] = (), limits: Mapping[str, int | None] | None = None,
           graph_records=None) -> BuildResult:
    """Solve ``output`` of ``graph`` (with ``platforms``: the output of each, one image per
    platform under an index) and write the (already checked) output ``specs``; import the
    ``cache_from`` caches first, export the ``cache_to`` ones last (parsed CacheSpecs)."""
    import time

    from mason.backends.exporters.export import run_outputs
    from mason.backends.solver.events import Status, null_sink
    from mason.backends.solver.events import Warning as WarningEvent
    from mason.backends.solver.results import to_export_chain
    from mason.backends.solver.secrets import Secrets, parse_secret, parse_ssh
    from mason.backends.solver.solver import LocalDir, SolveOptions
    from mason.ir.imageconfig import empty_image_config

    sink = events or null_sink
    ents = entitlements(allow)
    if network_default == "host":  # the user chose the host network: the grant (as buildx --network=host)
        ents |= {"network.host"}
    if secret_store is not None:
        sec = secret_store
    else:
        ssh_map: dict[str, list[str]] = {}
        for s in ssh:
            sid, paths = parse_ssh(s)
            ssh_map[sid] = paths
        sec = Secrets([parse_secret(s) for s in secrets], ssh_map)
    excl = tuple(excludes)
    local_dirs = {k: v if isinstance(v, LocalDir) else LocalDir(str(v), excl if k == "context" else ())
                  for k, v in locals.items()}
    timings: dict[str, float] = {}
    solver = lazy.get().solver

    def warn(message: str) -> None:
        sink(WarningEvent(message))

    cache_registry = None  # the remote cache machinery loads only for a build that uses one
    remote = None
    if cache_from or cache_to:
        from mason.backends.cache.api import CacheRegistry, import_caches

        cache_registry = CacheRegistry(insecure_registries)
        remote = import_caches(cache_from, cache_registry, warn) if cache_from and not no_cache else None
    # a result only pushed needs no files: a remote cache hit then stays unfetched
    only_pushed = bool(specs) and all(o.type == "registry" for o in specs) and not cache_to
    opts = SolveOptions(jobs=jobs, no_cache=no_cache, entitlements=ents, locals=local_dirs, secrets=sec,
                        insecure_registries=insecure_registries, network_default=network_default,
                        no_cache_filter=tuple(no_cache_filter), explain=explain, cancel=cancel,
                        remote_cache=remote, materialize_outputs=not only_pushed, oci_layouts=dict(oci_layouts or {}),
                        memory=(limits or {}).get("memory"), cpu_quota=(limits or {}).get("cpu_quota"),
                        cpu_period=(limits or {}).get("cpu_period"))
    t0 = time.perf_counter()
    image = None
    names: tuple[str, ...] = ()
    written: list = []
    wanted = [str(p) for p in platforms] or [output]
    attach_graph(sink, graph, wanted, masked, graph_records)
    with (contextlib.closing(cache_registry) if cache_registry is not None else contextlib.nullcontext(),
          solver.session(opts, sink) as session):
        solved_all = session.solve(graph, wanted)
        solved = solved_all[wanted[0]]
        timings["solve"] = time.perf_counter() - t0
        config = solved.image_config if solved.image_config is not None else empty_image_config()
        if specs:
            t0 = time.perf_counter()
            sink(Status("exporting to image" if any(o.needs_image for o in specs) else "exporting"))
            if platforms:
                from mason.backends.exporters.export import run_platform_outputs
                from mason.backends.exporters.index import PlatformResult

                hook_of: Any = lambda r: None  # noqa: E731
                if any(c.type == "inline" for c in cache_to):  # each image's config: its own cache
                    from mason.backends.cache.api import inline_hook

                    def hook_of(r):
                        return inline_hook(session, r, source_date_epoch)
                results = [PlatformResult(p, to_export_chain(s.result),
                                          s.image_config if s.image_config is not None else empty_image_config(),
                                          s.result.snapshot or None, hook_of(s.result))
                           for p, s in zip(platforms, (solved_all[n] for n in wanted), strict=True)]
                written = run_platform_outputs(session.client, specs, results, source_date_epoch=source_date_epoch,
                                               insecure_registries=insecure_registries)
            else:
                plat = None
                if config.get("os") and config.get("architecture"):
                    plat = "/".join(x for x in (config["os"], config["architecture"], config.get("variant", ""))
                                    if x)
                hook = None
                if any(c.type == "inline" for c in cache_to):
                    from mason.backends.cache.api import inline_hook

                    hook = inline_hook(session, solved.result, source_date_epoch)
                written = run_outputs(session.client, specs, chain=to_export_chain(solved.result), config=config,
                                      snapshot=solved.result.snapshot or None, source_date_epoch=source_date_epoch,
                                      platform=plat, insecure_registries=insecure_registries, config_hook=hook)
            for r in written:
                if r.image is not None:
                    image = r.image
                    names += tuple(n for n in r.spec.names if n not in names)
                for p in r.pushed:
                    sink(Status(f"pushed {describe_push(p)}"))
                if r.spec.dest:
                    sink(Status(f"wrote type={r.spec.type} to {'stdout' if r.spec.dest == '-' else r.spec.dest}"))
            timings["export"] = time.perf_counter() - t0
            if image is not None:
                sink(Status(f"image {image.manifest_digest}" + (f" named {', '.join(names)}" if names else "")))
        if cache_to:
            t0 = time.perf_counter()
            finals = [solved_all[n].result for n in wanted]
            from mason.backends.cache.api import export_caches

            assert cache_registry is not None  # made above for any cache_to
            for line in export_caches(session, cache_to, finals, cache_registry, warn, source_date_epoch):
                sink(Status(line))
            timings["cache-export"] = time.perf_counter() - t0
    return BuildResult(solved.result, config, solved.cache_key, image, names, timings=timings, outputs=written,
                       explain=solved.explain, platforms=tuple(wanted) if platforms else ())



def check_no_cache_filter(names: Iterable[str], stages: tuple[str, ...]) -> None:
    """Every ``--no-cache-filter`` names a stage of the Dockerfile (before anything is solved,
    as the solver matches them: a name, or the index of an unnamed stage, also ``stage-N``)."""
    if not names:
        return
    from mason.backends.solver.solver import normalize_stage

    known = {normalize_stage(s) for s in stages}
    for n in names:
        if normalize_stage(n) not in known:
            raise MasonError(f"--no-cache-filter: no stage {n!r} in the Dockerfile "
                             f"(stages: {', '.join(stages) or 'none'})")



def solve_graph(graph: Graph, *, output: str | None = None, tags: Iterable[str] = (), outputs: Iterable[str] = (),
                push: bool = False, locals: Mapping[str, str] | None = None, excludes: Iterable[str] = (),
                secrets: Iterable[str] = (), ssh: Iterable[str] = (), allow: Iterable[str] = (),
                no_cache: bool = False, insecure_registries: Iterable[str] = (), root: str | None = None,
                containerd_address: str | None = None, jobs: int = 4, network_default: str = "default",
                source_date_epoch: int | None = None, events=None,
                record: Mapping[str, object] | None = None, solver=None, secret_store=None,
                cancel=None, limits: Mapping[str, int | None] | None = None,
                cache_from: Sequence[str] = (), cache_to: Sequence[str] = ()) -> BuildResult:
    """Solve one output of ``graph`` and write the requested outputs (``-t`` names and
    ``--output`` specs, checked before anything runs; ``--cache-from``/``--cache-to`` values,
    too). ``locals`` maps ``local://NAME`` to
    directories (or solver ``LocalDir`` objects). ``record`` (metadata) records the solve in the build
    history. ``solver``, ``secret_store``, ``cancel``: as in :class:`BuildRequest`."""
    from mason.backends.exporters.outputs import check_outputs

    insecure = tuple(insecure_registries)
    specs = output_specs(outputs, tags, push=push)
    check_outputs(specs, insecure_registries=insecure)
    from mason.backends.cache.spec import parse_cache_specs

    imports = tuple(parse_cache_specs(cache_from, "from"))
    exports = tuple(parse_cache_specs(cache_to, "to"))
    name = output or pick_output(graph, None)
    meta = dict(record or {})
    meta.setdefault("tags", list(tags))
    meta.setdefault("outputs", list(outputs))
    meta.setdefault("target", name)
    lazy = LazySolver(root, containerd_address, solver)
    try:
        with recording(root, meta, events, record is not None) as (sink, rec):
            res = solve(lazy, graph, specs, output=name, locals=dict(locals or {}), excludes=excludes,
                         secrets=secrets, ssh=ssh, allow=allow, no_cache=no_cache, insecure_registries=insecure,
                         jobs=jobs, network_default=network_default, source_date_epoch=source_date_epoch,
                         events=sink, secret_store=secret_store, cancel=cancel, limits=limits,
                         cache_from=imports, cache_to=exports)
            if rec is not None:
                rec.update(image=res.digest, names=list(res.names))
                res.build_id = rec.id
    finally:
        lazy.close()
    return res

