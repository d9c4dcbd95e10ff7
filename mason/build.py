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
