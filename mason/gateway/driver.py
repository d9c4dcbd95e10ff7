"""A frontend image as the driver sees it: a lowering (:func:`lower_with_image`).

The frontend runs in a solver session of its own, with the build's ``local://dockerfile``
(the build file's directory) and ``local://context``; what it returns becomes a graph with one
``default`` output carrying the image config from the result's ``containerimage.config``
metadata (per platform: ``containerimage.config/<platform>``). The driver then runs the passes
and solves that graph like any lowering's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from mason.frontends.base import Diagnostic, FrontendRequest, FrontendResult
from mason.ir.errors import MasonError

CONFIG_KEY = "containerimage.config"
MAX_DEPTH = 4  # frontend images calling frontend images at most this deep


def result_graph(returned: Any, image: str, platform: str | None) -> Any:
    """The graph of a frontend's returned result (one ``default`` output)."""
    from mason.ir.graph import Graph, Output

    refs = dict(returned.refs)
    key = "default"
    if "default" not in refs:
        if platform and platform in refs:
            key = platform
        elif len(refs) == 1:
            key = next(iter(refs))
        elif not refs:
            raise MasonError(f"frontend image {image} returned an empty result (nothing to build)")
        else:
            raise MasonError(f"frontend image {image} returned results for several platforms "
                             f"({', '.join(sorted(refs))}); give --platform to pick one")
    graph = refs[key]
    if graph is None:
        raise MasonError(f"frontend image {image} returned an empty result (nothing to build)")
    raw = returned.metadata.get(f"{CONFIG_KEY}/{key}") or returned.metadata.get(CONFIG_KEY)
    config = None
    if raw:
        try:
            config = json.loads(raw)
        except ValueError:
            raise MasonError(f"frontend image {image} returned an image config that is not JSON") from None
    out = graph.outputs[0]
    return Graph((Output("default", out.ref, config, out.metadata),))


def lower_with_image(image: str, request: FrontendRequest, *, path: str, solver: Any,
                     locals: Mapping[str, Any], events: Any = None, timeout: float | None = None,
                     cmdline: str | None = "", session_id: str | None = None,
                     on_run: Callable[[Any], None] | None = None, image_resolver: Any = None) -> FrontendResult:
    """Lower the build file at ``path`` with frontend ``image`` (see the module docstring)."""
    t0 = time.perf_counter()
    returned, run, opts = run_with_image(image, request, path=path, solver=solver, locals=locals, events=events,
                                         timeout=timeout, cmdline=cmdline, session_id=session_id, on_run=on_run,
                                         image_resolver=image_resolver)
    graph = result_graph(returned, image, opts_platform(opts))
    timings = {f"gateway.{k}": v * 1000 for k, v in run.timings.items()}
    timings["lower"] = (time.perf_counter() - t0) * 1000
    return FrontendResult(graph, warnings=[Diagnostic(w) for w in returned.warnings], timings=timings)


SUBREQUESTS = {"outline": "frontend.outline", "targets": "frontend.targets", "check": "frontend.lint"}


def call_with_image(image: str, request: FrontendRequest, call: str, *, path: str, solver: Any,
                    locals: Mapping[str, Any], events: Any = None, timeout: float | None = None,
                    cmdline: str | None = "", image_resolver: Any = None) -> dict[str, bytes]:
    """``--call CALL`` answered by frontend ``image``: BuildKit's subrequest (``requestid``
    ``frontend.outline``, ``frontend.targets``, ``frontend.lint``; the image must list the cap
    ``moby.buildkit.frontend.subrequests``); the metadata it returns (``result.txt``,
    ``result.json``, ``result.statuscode``)."""
    from mason.gateway.run import CAP_SUBREQUESTS

    returned, _, _ = run_with_image(image, request, path=path, solver=solver, locals=locals, events=events,
                                    timeout=timeout, cmdline=cmdline, image_resolver=image_resolver,
                                    extra={"requestid": SUBREQUESTS[call]}, caps=[CAP_SUBREQUESTS])
    return dict(returned.metadata)


def run_with_image(image: str, request: FrontendRequest, *, path: str, solver: Any,
                   locals: Mapping[str, Any], events: Any = None, timeout: float | None = None,
                   cmdline: str | None = "", session_id: str | None = None,
                   on_run: Callable[[Any], None] | None = None, image_resolver: Any = None,
                   extra: Mapping[str, str] | None = None, caps: list[str] | None = None) -> Any:
    """Run frontend ``image`` for the build file at ``path`` (``extra`` options, ``caps`` it must
    list besides the build's): (what it returned, the GatewayRun, the options it got)."""
    from mason.backends.solver.events import Status, null_sink
    from mason.backends.solver.solver import LocalDir, SolveOptions
    from mason.gateway.run import CAP_CONTEXTS, frontend_opts, run_frontend_image

    if path == "-":
        raise MasonError(f"frontend image {image}: the build file cannot come from stdin (give -f FILE)")
    sink = events or null_sink
    opts = frontend_opts(filename=os.path.basename(path), build_args=request.build_args, target=request.target,
                         platform=str(request.platform) if request.platform else None,
                         named_contexts=request.named_contexts, cmdline=cmdline,
                         extra={**_limit_opts(request), **(extra or {})})
    wanted = ([CAP_CONTEXTS] if request.named_contexts else []) + list(caps or ())
    dirs = {k: v if isinstance(v, LocalDir) else LocalDir(str(v)) for k, v in locals.items()}
    sink(Status(f"running frontend image {image}"))
    with solver.session(SolveOptions(locals=dirs), sink) as session:
        def frontend(name: str, fopts: Mapping[str, str], inputs: Mapping[str, Any], depth: int = 1) -> Any:
            """A frontend the image calls (``Solve`` with ``Frontend``): mason's own for
            ``dockerfile.v0`` or a ``gateway.v0`` source a built-in answers, else that image."""
            from mason.resolution import frontend_for_syntax

            if inputs:
                raise MasonError(f"frontend image {image}: frontend inputs ({', '.join(sorted(inputs))}) for the "
                                 f"frontend it calls are not supported")
            source = fopts.get("source", "") if name == "gateway.v0" else "dockerfile"
            fe = frontend_for_syntax(source.partition(" ")[0]) if source else None
            if name == "gateway.v0" and not source:
                raise MasonError(f"frontend image {image} called gateway.v0 without a source option")
            if fe is not None:
                sink(Status(f"frontend image {image} calls {name} {source}: mason's built-in {fe.name}"))
                return _lower_builtin(fe, fopts, request, dirs)
            if depth > MAX_DEPTH:
                raise MasonError(f"frontend image {image}: frontends calling frontends {MAX_DEPTH} deep")
            sink(Status(f"frontend image {image} calls {name} {source}: running that image"))
            sub = [(k, v) for k, v in fopts.items() if k != "source"]
            got, _ = run_frontend_image(
                source, session=session, resolver=request.resolver, opts=sub, timeout=timeout,
                image_resolver=image_resolver, log=lambda line: sink(Status(f"[frontend {source}] {line}")),
                frontend=lambda n, o, i: frontend(n, o, i, depth + 1))
            graph = result_graph(got, source, fopts.get("platform"))
            return graph, dict(got.metadata)

        returned, run = run_frontend_image(image, session=session, resolver=request.resolver, opts=opts,
                                           timeout=timeout, session_id=session_id, wanted_caps=wanted,
                                           image_resolver=image_resolver, frontend=frontend,
                                           log=lambda line: sink(Status(f"[frontend] {line}")))
    if on_run is not None:
        on_run(run)
    counts: dict[str, int] = {}
    for c in run.calls:
        counts[c.split(" ", 1)[0]] = counts.get(c.split(" ", 1)[0], 0) + 1
    sink(Status(f"frontend image {image} returned its result (gateway calls: "
                f"{', '.join(f'{k} {v}' for k, v in counts.items())})"))
    return returned, run, opts


def _lower_builtin(fe: Any, opts: Mapping[str, str], outer: FrontendRequest, dirs: Mapping[str, Any]) -> Any:
    """Lower with mason's frontend ``fe`` as a frontend image asked for it: the build file
    ``filename`` from the local directory ``dockerfilekey`` (the build's), the options as a
    gateway gives them; the -O1 passes make it plain LLB. (graph, metadata)."""
    from dataclasses import replace

    from mason.backends.solver.fsutil import resolve_in_root
    from mason.ir.graph import Graph, Output
    from mason.ir.resolver import PlatformSpec
    from mason.passes import run_pipeline

    key = opts.get("dockerfilekey") or "dockerfile"
    filename = opts.get("filename") or "Dockerfile"
    local = dirs.get(key)
    if local is None:
        raise MasonError(f"no local directory {key!r} for the build file {filename}")
    root = local.sync({}) if local.sync is not None else local.path
    try:
        with open(resolve_in_root(root, filename), encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise MasonError(f"failed to read {filename}: {getattr(e, 'strerror', None) or e}") from None
    platform = outer.platform
    if opts.get("platform"):
        platform = PlatformSpec.parse(opts["platform"].split(",")[0])
    target = opts.get("target") or None
    req = replace(outer, text=text, filename=filename, target=target, platform=platform,
                  build_args={k[len("build-arg:"):]: v for k, v in opts.items() if k.startswith("build-arg:")},
                  named_contexts={k[len("context:"):]: v for k, v in opts.items() if k.startswith("context:")})
    low = fe.lower(req)
    want = target or "default"
    if want not in low.graph.names():
        names = ", ".join(n for n in low.graph.names() if n != "default")
        raise MasonError(f"target stage {target!r} could not be found (stages: {names})")
    graph = run_pipeline(low.graph, f"verify,hoist-config,dedupe,prune{{targets={json.dumps(want)}}}")
    out = next(o for o in graph.outputs if o.name == want)
    metadata = {}
    if out.image_config is not None:
        metadata[CONFIG_KEY] = json.dumps(out.image_config, separators=(",", ":")).encode()
    return Graph((Output("default", out.ref, out.image_config, out.metadata),)), metadata


def opts_platform(opts: list[tuple[str, str]]) -> str | None:
    return next((v for k, v in opts if k == "platform"), None)


def _limit_opts(request: FrontendRequest) -> dict[str, str]:
    """``--shm-size`` and ``--ulimit`` as BuildKit's frontend options (what buildx sends)."""
    from mason.ir.runlimits import format_ulimits

    out = {"shm-size": str(request.shm_size)} if request.shm_size else {}
    if request.ulimits:
        out["ulimit"] = format_ulimits(request.ulimits)
    return out
