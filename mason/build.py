"""The build driver the CLI and the Python API share.

Lowering: :func:`lower_request` reads the Dockerfile and the ``.dockerignore`` that
applies, picks the frontend (:func:`mason.resolution.choose`: ``--frontend``, the build arg
``BUILDKIT_SYNTAX``, the ``# syntax=`` directive, the file name), runs it with an image-metadata
resolver (the registry client, or none with ``resolve=False``), then runs the pass pipeline
(``-O1`` by default; ``--target T`` becomes ``prune{targets=T}``).

Building: :func:`build` (also ``mason.build(...)``) checks the outputs first, then lowers (base
images from mason's image store first, then registries), solves on containerd and writes every
output through the exporters, all inside a build-history record; :func:`solve_graph` does the
same for an LLB graph (``mason solve``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.patterns import find_dockerignore, parse_dockerignore
from mason.ir.resolver import CachingResolver, ImageMetaResolver, PlatformSpec

__all__ = ["LowerRequest", "LowerResult", "lower_request", "read_dockerfile", "parse_build_args",
           "pipeline_for"]

# runs a frontend image: (the resolution's Choice, the request, the build file's path) -> FrontendResult
GatewayHook = Callable[[Any, Any, str], Any]


@dataclass(frozen=True)
class LowerRequest:
    """What ``mason lower`` takes. ``dockerfile`` defaults to ``CONTEXT/Dockerfile`` (``-``:
    stdin); ``passes`` (a pipeline string) overrides ``level``; ``resolve=False`` lowers
    without asking registries (unpinned base images, empty base configs)."""

    context: str = "."
    dockerfile: str | None = None
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    level: int = 1
    passes: str | None = None
    resolve: bool = True
    insecure_registries: tuple[str, ...] = ()
    print_after: tuple[str, ...] = ()
    print_after_all: bool = False
    verify_each: bool = False
    time_passes: bool = False
    frontend: str | None = None  # --frontend NAME (see mason.resolution)
    build_contexts: tuple[str, ...] = ()  # --build-context NAME=VALUE (mason.build_contexts)
    lint: bool = False  # also run the frontend's build checks (a build does, as BuildKit's)


@dataclass
class LowerResult:
    graph: Graph
    warnings: list[str]
    frontend: str
    pipeline: str
    timings: dict[str, float] = field(default_factory=dict)
    stages: tuple[str, ...] = ()  # every stage of the Dockerfile (name, or index), before passes
    # a multi-platform lowering (``--platform a,b``): the platforms, each an output named after it
    platforms: tuple[PlatformSpec, ...] = ()
    # with LowerRequest.lint: the build checks' warnings (LintWarning), and the rules that fired
    # when the checks are set to error (the build must fail)
    checks: tuple = ()
    checks_failed: tuple[str, ...] = ()

    @property
    def image_config(self) -> dict | None:
        """The image config of the result (the ``default`` output, or the only one)."""
        outs = self.graph.outputs
        if len(outs) == 1:
            return outs[0].image_config
        for o in outs:
            if o.name == "default":
                return o.image_config
        return None


def parse_build_args(items: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` takes its value from the environment (and is skipped when the
    environment has none), like ``docker build --build-arg``."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise MasonError(f"invalid --build-arg {item!r}: expected KEY=VALUE")
        if eq:
            out[k] = v
        elif k in env:
            out[k] = env[k]
    return out


def read_dockerfile(path: str) -> str:
    """The text of a Dockerfile (``-``: stdin); bytes that are not UTF-8 are kept."""
    try:
        if path == "-":
            stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
            data = stdin.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise MasonError(f"cannot read {path}: {e.strerror or e}") from None
    return data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")


def pipeline_for(level: int, passes: str | None, target: str | None) -> str:
    """The pipeline to run: ``passes`` as given, else the ``-O<level>`` preset with ``prune``
    narrowed to the target (``default`` without one: a build has one result)."""
    from mason.passes import pipeline_for_level

    if passes is not None:
        return passes
    pipeline = pipeline_for_level(level)
    want = target or "default"
    if "prune" in pipeline.split(","):
        return ",".join(f"prune{{targets={_quote(want)}}}" if p == "prune" else p
                        for p in pipeline.split(","))
    return pipeline


def _quote(name: str) -> str:
    import json

    if all(c.isalnum() or c in "-_." for c in name):
        return name
    return json.dumps(name)


def _resolver(req: LowerRequest) -> tuple[ImageMetaResolver | None, object | None]:
    if not req.resolve:
        return None, None
    from mason.backends.sources.registry import RegistryResolver

    inner = RegistryResolver(insecure_registries=req.insecure_registries)
    return CachingResolver(inner), inner


def parse_platforms(text: str | None) -> list[PlatformSpec]:
    """``--platform``: one platform or a comma-separated list (each once, normalized); [] for
    none (the host's)."""
    if text is None or not text.strip():
        return []
    out: list[PlatformSpec] = []
    for part in text.split(","):
        if not part.strip():
            raise MasonError(f"invalid --platform {text!r}: an empty platform in the list")
        p = PlatformSpec.parse(part)
        if p not in out:
            out.append(p)
    return out


def lower_request(req: LowerRequest, *, resolver: ImageMetaResolver | None = None,
                  err: TextIO | None = None, gateway: GatewayHook | None = None) -> LowerResult:
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
        return _lower_one(one, resolver=resolver, err=err, gateway=gateway)

    from mason.ir.graph import Output
    from mason.passes import run_pipeline

    owned = None
    if resolver is None:
        resolver, owned = _resolver(req)
    try:
        lows = [_lower_one(replace(req, platform=str(p), lint=req.lint and i == 0), resolver=resolver, err=err,
                           gateway=gateway)
                for i, p in enumerate(platforms)]
    finally:
        if owned is not None:
            owned.close()  # type: ignore[attr-defined]
    outs = []
    for p, low in zip(platforms, lows, strict=True):
        o = low.graph.output(_pick_output(low.graph, req.target))
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


def _choose(req: LowerRequest, resolver: ImageMetaResolver | None = None):
    """The resolution's choice for ``req`` (:func:`mason.resolution.choose`), the
    :class:`~mason.frontends.base.FrontendRequest` and the build file's path."""
    from mason.frontends.base import FrontendRequest
    from mason.resolution import choose

    context = req.context or "."
    path = str(Path(context) / "Dockerfile") if req.dockerfile is None else req.dockerfile
    text = read_dockerfile(path)
    filename = "<stdin>" if path == "-" else path
    excludes: tuple[str, ...] = ()
    if Path(context).is_dir():
        ignore_path, ignore_text = find_dockerignore(context, path)
        if ignore_text is not None:
            excludes = tuple(str(p) for p in parse_dockerignore(ignore_text, str(ignore_path)))
    elif context != "-":
        raise MasonError(f"build context {context!r} is not a directory")
    platforms = parse_platforms(req.platform)
    if req.target is not None and not req.target:
        raise MasonError("--target needs a stage name")
    from mason.build_contexts import parse_build_contexts

    named = parse_build_contexts(req.build_contexts)
    choice = choose(path, text, filename, frontend=req.frontend, build_args=req.build_args,
                    named_contexts=named.values)
    request = FrontendRequest(text, filename, build_args=dict(req.build_args), target=req.target,
                              platform=platforms[0] if platforms else None, excludes=excludes, resolver=resolver,
                              named_contexts=named.values, context_excludes=named.excludes)
    return choice, request, path


def frontend_for(req: LowerRequest, resolver: ImageMetaResolver | None = None):
    """The frontend for ``req`` (:func:`mason.resolution.choose`: ``--frontend``, the
    ``BUILDKIT_SYNTAX`` build arg, ``# syntax=``, the file name) and the
    :class:`~mason.frontends.base.FrontendRequest` to give it: the file's text, the
    ``.dockerignore`` of the context, build args, target, platform (the first, or only, one).
    A frontend image answers no subrequest here: that is an error."""
    choice, request, _ = _choose(req, resolver)
    if choice.frontend is None:
        raise MasonError(f"frontend image {choice.image} (chosen by {choice.how}): subrequests (--call, --check) "
                         "are answered only by built-in and plugin frontends", choice.loc).with_source(request.text)
    return choice.frontend, request


def _lower_one(req: LowerRequest, *, resolver: ImageMetaResolver | None, err: TextIO | None,
               gateway: GatewayHook | None = None) -> LowerResult:
    from dataclasses import replace

    from mason.frontends.base import answers
    from mason.passes import run_pipeline

    choice, freq, path = _choose(req)
    if choice.frontend is None and gateway is None:
        raise MasonError(f"frontend image {choice.image} (chosen by {choice.how}) runs on containerd: "
                         "use mason build", choice.loc).with_source(freq.text)
    owned = None
    if resolver is None:
        resolver, owned = _resolver(req)
    checks: list = []  # LintWarning
    failed: list[str] = []
    try:
        freq = replace(freq, resolver=resolver)
        if req.build_contexts:  # the image configs of --build-context oci-layout:// images
            from mason.build_contexts import LayoutResolver, parse_build_contexts

            layouts = parse_build_contexts(req.build_contexts).layouts
            if layouts:
                freq = replace(freq, resolver=LayoutResolver(resolver, layouts))
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

    t0 = time.perf_counter()
    graph = run_pipeline(graph, pipeline, print_after=req.print_after,
                         print_after_all=req.print_after_all, verify_each=req.verify_each,
                         time_passes=req.time_passes, out=err)
    timings["passes"] = (time.perf_counter() - t0) * 1000
    return LowerResult(graph, warnings, choice.name, pipeline, timings, stages, checks=tuple(checks),
                       checks_failed=tuple(failed))


# ================================================================ solving and exporting
# A build request goes: outputs parsed and checked (before anything runs) → a history record
# opened → lowering (base images resolved from mason's image store first, then registries) →
# solve → every output written by the exporters → the record closed with the image's digest.

__all__ += ["BuildRequest", "BuildResult", "build", "solve_graph", "open_solver", "output_specs",
            "build_meta"]


@dataclass
class BuildRequest:
    """What ``mason build`` takes (defaults as ``docker build``). ``tags`` are image names for
    mason's image store; ``outputs`` are ``--output`` specs (``push`` is buildx's ``--push``:
    the image output pushes too); ``secrets`` ``id=…,src=…|env=…`` and ``ssh``
    ``default[=SOCKET]`` strings; ``allow`` entitlements (``network.host``,
    ``security.insecure``); ``events`` receives the solver's progress events.
    ``source_date_epoch`` None takes ``SOURCE_DATE_EPOCH`` from the build args, else the
    environment. ``history`` records the build under the state directory (``mason history``,
    ``mason logs``); an ``events`` sink that is already a
    :class:`~mason.backends.solver.history.HistoryRecorder` is used as the record."""

    context: str = "."
    dockerfile: str | None = None
    tags: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    push: bool = False
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    secrets: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()  # stages whose steps run again (names or indexes)
    explain: bool = False  # BuildResult.explain: why each step that ran missed the cache
    insecure_registries: tuple[str, ...] = ()
    root: str | None = None
    containerd_address: str | None = None
    jobs: int = 4
    level: int = 1
    passes: str | None = None
    network_default: str = "default"
    source_date_epoch: int | None = None
    history: bool = True
    events: object | None = None  # an EventSink
    # for a long-lived caller (mason serve): an open Solver to use instead of one per build, the
    # local:// directories (paths or solver LocalDirs) instead of the context and the
    # Dockerfile's directory, a solver Secrets instead of one made from secrets/ssh, and a
    # scheduler CancelToken that cancels the build when set
    solver: object | None = None
    locals: Mapping[str, object] | None = None
    secret_store: object | None = None
    cancel: object | None = None
    cache_from: tuple[str, ...] = ()  # --cache-from specs (mason.backends.cache.spec)
    cache_to: tuple[str, ...] = ()  # --cache-to specs
    frontend: str | None = None  # --frontend NAME (see mason.resolution)
    frontend_timeout: float | None = None  # seconds a frontend image may take (None: no limit)
    build_contexts: tuple[str, ...] = ()  # --build-context NAME=VALUE (mason.build_contexts)


@dataclass
class BuildResult:
    """What a build produced: the solved result, its image config, the image written (if an
    output needed one), the outputs written, the warnings and the history record's id."""

    result: object  # mason.backends.solver.results.Result
    image_config: dict | None
    cache_key: str
    image: object | None = None  # ExportedImage
    names: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    build_id: str | None = None
    outputs: list = field(default_factory=list)  # OutputResult per output, in order
    explain: tuple[str, ...] = ()  # with BuildRequest.explain: one line per step that ran
    # a multi-platform build: its platforms (result/image_config/cache_key are the first's; image
    # is the ExportedIndex)
    platforms: tuple[str, ...] = ()

    @property
    def digest(self) -> str | None:
        return getattr(self.image, "manifest_digest", None)


def _entitlements(allow: Iterable[str]) -> frozenset[str]:
    from mason.backends.solver.entitlements import parse_allow

    return parse_allow(allow)


def output_specs(outputs: Iterable[str] = (), tags: Iterable[str] = (), *, push: bool = False) -> list:
    """``--output`` specs with ``-t`` folded in (as buildx: without outputs, ``-t`` means
    ``type=image``; otherwise the tags name the image outputs that name nothing) and
    ``--push`` applied (the image output pushes; with outputs, the first must be an image)."""
    from dataclasses import replace

    from mason.backends.exporters.outputs import parse_outputs

    specs = parse_outputs(list(outputs), list(tags))
    if not push:
        return specs
    if not specs:
        raise MasonError("--push needs a name: give -t NAME (or --output type=registry,name=NAME)")
    first = specs[0]
    if first.type == "image":
        if not first.names:
            raise MasonError("--push needs a name: give -t NAME")
        specs[0] = replace(first, push=True)
    elif first.type != "registry":
        raise MasonError(f"--push and an output of type={first.type} cannot be used together")
    return specs


class open_solver:  # noqa: N801 - used as a context manager, like open()
    """A :class:`~mason.backends.solver.solver.Solver` on the containerd that ``address`` /
    ``root`` select (mason's private one by default, started if needed)."""

    def __init__(self, root: str | None = None, address: str | None = None):
        from mason.backends.containerd.client import Client
        from mason.backends.containerd.daemon import ADDRESS_ENV, ManagedContainerd, default_root, resolve_address
        from mason.backends.solver.solver import Solver

        state = Path(root) if root else default_root()
        explicit = address or os.environ.get(ADDRESS_ENV)
        addr = resolve_address(address, state)
        self.client = Client(addr)
        try:
            self.client.ensure_namespace()
            if explicit:
                self.solver = Solver(self.client, state)
            else:
                d = ManagedContainerd.at(state)
                self.solver = Solver(self.client, state, runc_root=str(d.runc_root), io_dir=str(d.io_dir))
        except BaseException:
            self.client.close()
            raise

    def __enter__(self):
        return self.solver

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.solver.close()
        self.client.close()


class _LazySolver:
    """Opens :class:`open_solver` on first use: lowering asks it for the image store only when a
    ``FROM`` needs resolving, and a Dockerfile error never waits for containerd. With
    ``solver``, that open Solver is used (and left open)."""

    def __init__(self, root: str | None, address: str | None, solver=None):
        self.root, self.address = root, address
        self._opened: open_solver | _Given | None = _Given(solver) if solver is not None else None

    def get(self):
        if self._opened is None:
            self._opened = open_solver(self.root, self.address)
        return self._opened

    def close(self) -> None:
        if self._opened is not None and not isinstance(self._opened, _Given):
            self._opened.close()
            self._opened = None


class _Given:
    """An open Solver handed in by the caller, shaped like :class:`open_solver`."""

    def __init__(self, solver):
        self.solver, self.client = solver, solver.client


def _pick_output(graph: Graph, target: str | None) -> str:
    names = graph.names()
    if target and target in names:
        return target
    if "default" in names:
        return "default"
    if len(names) == 1:
        return names[0]
    raise MasonError(f"the graph has several outputs ({', '.join(names)}): name one")


def _state_root(root: str | None) -> Path:
    from mason.backends.containerd.daemon import default_root

    return Path(root) if root else default_root()


@contextlib.contextmanager
def _recording(root: str | None, meta: Mapping[str, object], events, enabled: bool):
    """The event sink of one build: ``events`` itself when it already records history (or
    recording is off), else a :class:`HistoryRecorder` forwarding to it. Yields (sink, recorder)."""
    from mason.backends.solver.history import HistoryRecorder

    if isinstance(events, HistoryRecorder):
        events.update(**meta)
        yield events, events
    elif not enabled:
        yield events, None
    else:
        with HistoryRecorder(_state_root(root), meta=meta, forward=events) as rec:
            yield rec, rec


def _solve(lazy: _LazySolver, graph: Graph, specs: list, *, output: str, locals: Mapping[str, object],
           excludes: Iterable[str], secrets: Iterable[str], ssh: Iterable[str], allow: Iterable[str],
           no_cache: bool, insecure_registries: tuple[str, ...], jobs: int, network_default: str,
           source_date_epoch: int | None, events, no_cache_filter: tuple[str, ...] = (),
           explain: bool = False, secret_store=None, cancel=None,
           platforms: Sequence[PlatformSpec] = (), cache_from: tuple = (),
           cache_to: tuple = (), oci_layouts: Mapping[str, str] | None = None,
           masked: Iterable[str] = ()) -> BuildResult:
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
    ents = _entitlements(allow)
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
                        remote_cache=remote, materialize_outputs=not only_pushed, oci_layouts=dict(oci_layouts or {}))
    t0 = time.perf_counter()
    image = None
    names: tuple[str, ...] = ()
    written: list = []
    wanted = [str(p) for p in platforms] or [output]
    _attach_graph(sink, graph, wanted, masked)
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
                    sink(Status(f"pushed {_describe_push(p)}"))
                if r.spec.dest:
                    sink(Status(f"wrote type={r.spec.type} to {'stdout' if r.spec.dest == '-' else r.spec.dest}"))
            timings["export"] = time.perf_counter() - t0
            if image is not None:
                sink(Status(f"image {image.manifest_digest}" + (f" named {', '.join(names)}" if names else "")))
        if cache_to:
            t0 = time.perf_counter()
            finals = [solved_all[n].result for n in wanted]
            from mason.backends.cache.api import export_caches

            for line in export_caches(session, cache_to, finals, cache_registry, warn, source_date_epoch):
                sink(Status(line))
            timings["cache-export"] = time.perf_counter() - t0
    return BuildResult(solved.result, config, solved.cache_key, image, names, timings=timings, outputs=written,
                       explain=solved.explain, platforms=tuple(wanted) if platforms else ())


def _attach_graph(sink, graph: Graph, names: list[str], masked: Iterable[str] = ()) -> None:
    """Keep the graph about to be solved with the build's record (``mason build --graph``,
    ``mason history --graph``), drawn up on a thread while the build runs."""
    from mason.backends.solver.history import HistoryRecorder

    if isinstance(sink, HistoryRecorder):
        from mason.backends.dump.graph import GRAPH_FILE, graph_from_ir

        hide = tuple(masked)  # the build-arg values: the record keeps their names only
        sink.attach_later(GRAPH_FILE, lambda: graph_from_ir(graph, names, mask_env=True, masked=hide).to_json())


def _check_no_cache_filter(names: Iterable[str], stages: tuple[str, ...]) -> None:
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


def _describe_push(p) -> str:  # a PushResult
    return f"{p.ref.familiar()}@{p.digest}"


def solve_graph(graph: Graph, *, output: str | None = None, tags: Iterable[str] = (), outputs: Iterable[str] = (),
                push: bool = False, locals: Mapping[str, str] | None = None, excludes: Iterable[str] = (),
                secrets: Iterable[str] = (), ssh: Iterable[str] = (), allow: Iterable[str] = (),
                no_cache: bool = False, insecure_registries: Iterable[str] = (), root: str | None = None,
                containerd_address: str | None = None, jobs: int = 4, network_default: str = "default",
                source_date_epoch: int | None = None, events=None,
                record: Mapping[str, object] | None = None, solver=None, secret_store=None,
                cancel=None) -> BuildResult:
    """Solve one output of ``graph`` and write the requested outputs (``-t`` names and
    ``--output`` specs, checked before anything runs). ``locals`` maps ``local://NAME`` to
    directories (or solver ``LocalDir`` objects). ``record`` (metadata) records the solve in the build
    history. ``solver``, ``secret_store``, ``cancel``: as in :class:`BuildRequest`."""
    from mason.backends.exporters.outputs import check_outputs

    insecure = tuple(insecure_registries)
    specs = output_specs(outputs, tags, push=push)
    check_outputs(specs, insecure_registries=insecure)
    name = output or _pick_output(graph, None)
    meta = dict(record or {})
    meta.setdefault("tags", list(tags))
    meta.setdefault("outputs", list(outputs))
    meta.setdefault("target", name)
    lazy = _LazySolver(root, containerd_address, solver)
    try:
        with _recording(root, meta, events, record is not None) as (sink, rec):
            res = _solve(lazy, graph, specs, output=name, locals=dict(locals or {}), excludes=excludes,
                         secrets=secrets, ssh=ssh, allow=allow, no_cache=no_cache, insecure_registries=insecure,
                         jobs=jobs, network_default=network_default, source_date_epoch=source_date_epoch,
                         events=sink, secret_store=secret_store, cancel=cancel)
            if rec is not None:
                rec.update(image=res.digest, names=list(res.names))
                res.build_id = rec.id
    finally:
        lazy.close()
    return res


def build_meta(req: BuildRequest, context: str, dockerfile: str) -> dict[str, object]:
    """What a build's history record says about it. Build-arg *names* only: values may be
    secrets."""
    return {"context": os.path.abspath(context) if context != "-" else "-",
            "dockerfile": os.path.abspath(dockerfile) if dockerfile != "-" else "-",
            "target": req.target, "tags": list(req.tags), "outputs": list(req.outputs), "push": req.push,
            "platform": req.platform, "build_args": sorted(req.build_args)}


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
    cache_from = cache_to = ()
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
    lazy = _LazySolver(req.root, req.containerd_address, req.solver)
    try:
        with _recording(req.root, build_meta(req, context, dockerfile), req.events, req.history) as (sink, rec):
            try:
                low = _lower(req, build_args, lazy, locals_, sink)
                if sink is not None:
                    for w in low.warnings:
                        sink(WarningEvent(w))
                    for c in low.checks:
                        sink(WarningEvent(c.format(), c.rule, str(c.loc) if c.loc is not None else None))
                if low.checks_failed:
                    raise MasonError("lint violation found for rules: " + ", ".join(low.checks_failed))
                _check_no_cache_filter(req.no_cache_filter, low.stages)
                output = str(low.platforms[0]) if low.platforms else _pick_output(low.graph, req.target)
                res = _solve(lazy, low.graph, specs, output=output, locals=locals_,
                             excludes=(), secrets=req.secrets, ssh=req.ssh, allow=req.allow, no_cache=req.no_cache,
                             insecure_registries=insecure, jobs=req.jobs, network_default=req.network_default,
                             source_date_epoch=epoch, events=sink, no_cache_filter=req.no_cache_filter,
                             explain=req.explain, secret_store=req.secret_store, cancel=req.cancel,
                             platforms=low.platforms, cache_from=cache_from, cache_to=cache_to,
                             oci_layouts=layouts, masked=build_args.values())
            except MasonError as e:
                if e.loc is not None and e.source_line is None and dockerfile != "-":
                    with contextlib.suppress(MasonError):
                        e.with_source(read_dockerfile(dockerfile))
                raise
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


def _lower(req: BuildRequest, build_args: Mapping[str, str], lazy: _LazySolver,
           locals_: Mapping[str, object] | None = None, sink=None) -> LowerResult:
    """Lower with base images resolved from mason's image store first, then registries; a
    frontend image runs on the build's solver with its ``local://`` directories."""
    lreq = LowerRequest(context=req.context, dockerfile=req.dockerfile, target=req.target, build_args=build_args,
                        platform=req.platform, level=req.level, passes=req.passes,
                        insecure_registries=tuple(req.insecure_registries), frontend=req.frontend,
                        build_contexts=tuple(req.build_contexts), lint=True)

    def registry() -> ImageMetaResolver:
        from mason.backends.sources.registry import RegistryResolver

        return RegistryResolver(insecure_registries=tuple(req.insecure_registries))

    def make() -> ImageMetaResolver:
        from mason.backends.sources.store_resolver import StoreResolver

        # the registry client (httpx, a TLS context) only when the store misses
        return StoreResolver(lambda: lazy.get().client, _OnDemandResolver(registry))

    def gateway(choice, freq, path: str):
        from mason.gateway.driver import lower_with_image

        return lower_with_image(choice.image, freq, path=path, solver=lazy.get().solver, locals=locals_ or {},
                                events=sink, timeout=req.frontend_timeout, cmdline=choice.cmdline)

    inner = _OnDemandResolver(make)
    try:
        return lower_request(lreq, resolver=CachingResolver(inner), gateway=gateway)
    finally:
        inner.close()


class _OnDemandResolver:
    """A resolver made on the first ask: a Dockerfile with no image to resolve (``FROM
    scratch``, stages only) never imports the registry client or opens a connection."""

    def __init__(self, make):
        self._make = make
        self._inner = None

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None):
        if self._inner is None:
            self._inner = self._make()
        return self._inner.resolve_image_config(ref, platform)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class _CallableModule(sys.modules[__name__].__class__):
    """``mason.build`` is this module (``import mason.build``) and the build function at once:
    ``mason.build(context=".", tags=("app",))``."""

    def __call__(self, request: BuildRequest | None = None, /, **kw) -> BuildResult:
        return build(request, **kw)


sys.modules[__name__].__class__ = _CallableModule
