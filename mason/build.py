"""The build driver the CLI and the Python API share.

For now it lowers: :func:`lower_request` reads the Dockerfile and the ``.dockerignore`` that
applies, picks the frontend from the ``# syntax=`` directive (``docker/dockerfile`` with any tag
is the built-in Dockerfile frontend; anything else is an error located at the directive until
``# syntax=`` frontends land), runs it with an image-metadata resolver (the registry client, or
none with ``resolve=False``), then runs the pass pipeline (``-O1`` by default; ``--target T``
becomes ``prune{targets=T}``). Later issues add solving and exporting here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, TextIO

from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from mason.ir.patterns import find_dockerignore, parse_dockerignore
from mason.ir.resolver import CachingResolver, ImageMetaResolver, PlatformSpec

__all__ = ["LowerRequest", "LowerResult", "lower_request", "read_dockerfile", "parse_build_args",
           "pipeline_for"]


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


@dataclass
class LowerResult:
    graph: Graph
    warnings: list[str]
    frontend: str
    pipeline: str
    timings: dict[str, float] = field(default_factory=dict)

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


def lower_request(req: LowerRequest, *, resolver: ImageMetaResolver | None = None,
                  err: TextIO | None = None) -> LowerResult:
    """Lower ``req``'s Dockerfile to a graph and run the passes. ``resolver`` overrides the
    registry resolver (tests pass an in-memory one); IR dumps go to ``err``."""
    from mason.frontends.dockerfile.frontend import (
        DockerfileFrontend, LowerOptions, is_builtin_syntax, syntax_directive,
    )
    from mason.passes import run_pipeline

    context = req.context or "."
    if req.dockerfile is None:
        path = str(Path(context) / "Dockerfile")
    else:
        path = req.dockerfile
    text = read_dockerfile(path)
    filename = "<stdin>" if path == "-" else path
    excludes: tuple[str, ...] = ()
    if Path(context).is_dir():
        ignore_path, ignore_text = find_dockerignore(context, path)
        if ignore_text is not None:
            excludes = tuple(str(p) for p in parse_dockerignore(ignore_text, str(ignore_path)))
    elif context != "-":
        raise MasonError(f"build context {context!r} is not a directory")
    platform = PlatformSpec.parse(req.platform) if req.platform else None
    if req.target is not None and not req.target:
        raise MasonError("--target needs a stage name")
    options = LowerOptions(build_args=dict(req.build_args), platform=platform,
                           excludes=excludes, target=req.target)
    owned = None
    if resolver is None:
        resolver, owned = _resolver(req)
    warnings: list[str] = []
    try:
        fe = DockerfileFrontend(options, resolver)
        result = fe.parse(text, filename)
        d = syntax_directive(result)
        if d is not None and not is_builtin_syntax(d.value):
            raise MasonError(f"unsupported frontend # syntax={d.value}: only docker/dockerfile "
                             "(the built-in frontend) is supported for now", d.loc).with_source(text)
        graph = fe.lower_parsed(result, text, filename)
    finally:
        if owned is not None:
            owned.close()  # type: ignore[attr-defined]
    for msg, loc in fe.warnings:
        warnings.append(f"{loc}: warning: {msg}" if loc is not None else f"warning: {msg}")
    if req.target is not None and req.target not in graph.names():
        names = ", ".join(n for n in graph.names() if n != "default")
        raise MasonError(f"target stage {req.target!r} could not be found (stages: {names})")
    pipeline = pipeline_for(req.level, req.passes, req.target)
    timings = dict(fe.timings)
    import time

    t0 = time.perf_counter()
    graph = run_pipeline(graph, pipeline, print_after=req.print_after,
                         print_after_all=req.print_after_all, verify_each=req.verify_each,
                         time_passes=req.time_passes, out=err)
    timings["passes"] = (time.perf_counter() - t0) * 1000
    return LowerResult(graph, warnings, fe.name, pipeline, timings)


# ================================================================ solving and exporting
# (the solver engineer's part: build requests through frontend → passes → solver → outputs)

__all__ += ["BuildRequest", "BuildResult", "build", "solve_graph", "open_solver"]


@dataclass
class BuildRequest:
    """What ``mason build`` takes (defaults as ``docker build``). ``tags`` are image names for
    mason's image store; ``outputs`` are ``--output`` specs; ``secrets`` ``id=…,src=…|env=…``
    and ``ssh`` ``default[=SOCKET]`` strings; ``allow`` entitlements (``network.host``,
    ``security.insecure``); ``events`` receives the solver's progress events."""

    context: str = "."
    dockerfile: str | None = None
    tags: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    secrets: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    no_cache: bool = False
    insecure_registries: tuple[str, ...] = ()
    root: str | None = None
    containerd_address: str | None = None
    jobs: int = 4
    level: int = 1
    passes: str | None = None
    network_default: str = "default"
    source_date_epoch: int | None = None
    events: object | None = None  # an EventSink


@dataclass
class BuildResult:
    """What a build produced: the solved result, its image config, the image written (if an
    output needed one) and the warnings."""

    result: object  # mason.backends.solver.results.Result
    image_config: dict | None
    cache_key: str
    image: object | None = None  # ExportedImage
    names: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def digest(self) -> str | None:
        return getattr(self.image, "manifest_digest", None)


ENTITLEMENTS = ("network.host", "security.insecure")


def _entitlements(allow: Iterable[str]) -> frozenset[str]:
    out = set()
    for a in allow:
        for part in a.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in ENTITLEMENTS:
                raise MasonError(f"unknown entitlement {part!r} for --allow (valid: {', '.join(ENTITLEMENTS)})")
            out.add(part)
    return frozenset(out)


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


def _pick_output(graph: Graph, target: str | None) -> str:
    names = graph.names()
    if target and target in names:
        return target
    if "default" in names:
        return "default"
    if len(names) == 1:
        return names[0]
    raise MasonError(f"the graph has several outputs ({', '.join(names)}): name one")


def solve_graph(graph: Graph, *, output: str | None = None, tags: Iterable[str] = (), outputs: Iterable[str] = (),
                locals: Mapping[str, str] | None = None, excludes: Iterable[str] = (),
                secrets: Iterable[str] = (), ssh: Iterable[str] = (), allow: Iterable[str] = (),
                no_cache: bool = False, insecure_registries: Iterable[str] = (), root: str | None = None,
                containerd_address: str | None = None, jobs: int = 4, network_default: str = "default",
                source_date_epoch: int | None = None, events=None) -> BuildResult:
    """Solve one output of ``graph`` and write the requested outputs (``-t`` names and
    ``--output`` specs). ``locals`` maps ``local://NAME`` to directories."""
    from mason.backends.exporters.export import run_outputs
    from mason.backends.exporters.outputs import check_outputs, parse_outputs
    from mason.backends.solver.events import Status, null_sink
    from mason.backends.solver.results import to_export_chain
    from mason.backends.solver.secrets import Secrets, parse_secret, parse_ssh
    from mason.backends.solver.solver import LocalDir, SolveOptions
    from mason.ir.imageconfig import empty_image_config

    sink = events or null_sink
    insecure = tuple(insecure_registries)
    specs = parse_outputs(list(outputs), list(tags))
    check_outputs(specs, insecure_registries=insecure)
    ents = _entitlements(allow)
    ssh_map: dict[str, list[str]] = {}
    for s in ssh:
        sid, paths = parse_ssh(s)
        ssh_map[sid] = paths
    sec = Secrets([parse_secret(s) for s in secrets], ssh_map)
    excl = tuple(excludes)
    local_dirs = {k: LocalDir(str(v), excl if k == "context" else ()) for k, v in (locals or {}).items()}
    name = output or _pick_output(graph, None)
    timings: dict[str, float] = {}
    with open_solver(root, containerd_address) as solver:
        opts = SolveOptions(jobs=jobs, no_cache=no_cache, entitlements=ents, locals=local_dirs, secrets=sec,
                            insecure_registries=insecure, network_default=network_default)
        import time

        t0 = time.perf_counter()
        with solver.session(opts, sink) as session:
            solved = session.solve(graph, [name])[name]
            timings["solve"] = time.perf_counter() - t0
            config = solved.image_config
            if config is None:
                config = empty_image_config()
            image = None
            names: tuple[str, ...] = ()
            if specs:
                t0 = time.perf_counter()
                sink(Status("exporting to image" if any(o.needs_image for o in specs) else "exporting"))
                plat = None
                if config.get("os") and config.get("architecture"):
                    plat = "/".join(x for x in (config["os"], config["architecture"], config.get("variant", ""))
                                    if x)
                res = run_outputs(session.client, specs, chain=to_export_chain(solved.result), config=config,
                                  snapshot=solved.result.snapshot or None, source_date_epoch=source_date_epoch,
                                  platform=plat, insecure_registries=insecure)
                for r in res:
                    if r.image is not None:
                        image = r.image
                        names += tuple(n for n in r.spec.names if n not in names)
                timings["export"] = time.perf_counter() - t0
                if image is not None:
                    sink(Status(f"image {image.manifest_digest}" + (f" named {', '.join(names)}" if names else "")))
    return BuildResult(solved.result, config, solved.cache_key, image, names, timings=timings)


def build(request: BuildRequest | None = None, /, **kw) -> BuildResult:
    """Build a Dockerfile: lower (frontend + passes), solve, export. ``mason.build(...)``
    takes a :class:`BuildRequest` or its fields as keywords."""
    req = request if request is not None else BuildRequest(**kw)
    if request is not None and kw:
        from dataclasses import replace

        req = replace(request, **kw)
    low = lower_request(LowerRequest(context=req.context, dockerfile=req.dockerfile, target=req.target,
                                     build_args=dict(req.build_args), platform=req.platform, level=req.level,
                                     passes=req.passes, insecure_registries=tuple(req.insecure_registries)))
    from mason.backends.solver.events import Warning as WarningEvent

    sink = req.events
    for w in low.warnings:
        if sink is not None:
            sink(WarningEvent(w))
    context = req.context or "."
    dockerfile = req.dockerfile if req.dockerfile is not None else str(Path(context) / "Dockerfile")
    locals_ = {"context": context, "dockerfile": str(Path(dockerfile).parent) if dockerfile != "-" else context}
    try:
        res = solve_graph(low.graph, output=_pick_output(low.graph, req.target), tags=req.tags, outputs=req.outputs,
                          locals=locals_, secrets=req.secrets, ssh=req.ssh, allow=req.allow,
                          no_cache=req.no_cache, insecure_registries=req.insecure_registries, root=req.root,
                          containerd_address=req.containerd_address, jobs=req.jobs,
                          network_default=req.network_default, source_date_epoch=req.source_date_epoch,
                          events=sink)
    except MasonError as e:
        if e.loc is not None and e.source_line is None and dockerfile != "-":
            try:
                e.with_source(read_dockerfile(dockerfile))
            except MasonError:
                pass
        raise
    res.warnings = list(low.warnings)
    res.timings.update({f"lower.{k}": v / 1000 for k, v in low.timings.items()})
    return res


class _CallableModule(sys.modules[__name__].__class__):
    """``mason.build`` is this module (``import mason.build``) and the build function at once:
    ``mason.build(context=".", tags=("app",))``."""

    def __call__(self, request: BuildRequest | None = None, /, **kw) -> BuildResult:
        return build(request, **kw)


sys.modules[__name__].__class__ = _CallableModule
