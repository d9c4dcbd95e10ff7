"""What a solve is asked (:class:`SolveOptions`, the ``local://`` directories) and what it answers
(:class:`SolvedOutput`, and :class:`SolvedVertex` for exporting the cache)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mason.backends.solver.results import Result
from mason.backends.solver.scheduler import DEFAULT_JOBS, CancelToken


@dataclass(frozen=True)
class LocalDir:
    """A ``local://NAME`` source: a client directory and the exclude patterns the driver adds
    (the context's ``.dockerignore``) when the op carries none. ``sync``, when set, is called
    with the op's attrs before the directory is first read, and returns the directory to read
    (``mason serve`` fetches the client's files there, filtered as the op asks)."""

    path: str
    exclude: tuple[str, ...] = ()
    sync: Callable[[Mapping[str, str]], str] | None = field(default=None, compare=False)


@dataclass
class SolveOptions:
    jobs: int = DEFAULT_JOBS
    no_cache: bool = False
    entitlements: frozenset[str] = frozenset()
    locals: Mapping[str, LocalDir] = field(default_factory=dict)
    secrets: object | None = None  # a solver.secrets.Secrets
    insecure_registries: tuple[str, ...] = ()
    oci_layouts: Mapping[str, str] = field(default_factory=dict)
    registry: object | None = None  # a RegistryClient to use (else one is made when needed)
    network_default: str = "default"  # LLB's default network: "default" (CNI bridge) or "host"
    no_cache_filter: tuple[str, ...] = ()  # stages whose steps run again (names or indexes)
    explain: bool = False  # compute SolvedOutput.explain (why each step that ran missed)
    target_id: str | None = None  # what "the same target" is for --explain (default: see _target_id)
    cancel: CancelToken | None = None  # set from outside (mason serve: the client went away) to cancel
    # imported remote caches (a mason.backends.cache.importer.RemoteCache): consulted after a
    # local miss; a hit is materialized only when its files are needed
    remote_cache: object | None = None
    # materialize remote hits that are outputs (False: the caller exports them as images and
    # fetches only what it needs, e.g. nothing for a push)
    materialize_outputs: bool = True
    # every step's cgroup limits (--memory bytes, --cpu-quota/--cpu-period µs): how the machine
    # runs the steps, not what they are (no part of a cache key)
    memory: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None


@dataclass(frozen=True)
class SolvedOutput:
    name: str
    result: Result
    image_config: dict | None
    cache_key: str
    explain: tuple[str, ...] = ()  # with SolveOptions.explain: one line per step that ran


@dataclass(frozen=True)
class SolvedVertex:
    """A vertex of a finished solve, for exporting the cache: its cache key, its results
    (empty when it has none: a source, or a step behind a hit whose record is gone), its inputs
    as (vertex digest, output index), and whether its metadata allows exporting it."""

    digest: str
    key: str
    name: str
    kind: str
    outputs: tuple[Result, ...]
    inputs: tuple[tuple[str, int], ...]
    export: bool = True


__all__ = ["LocalDir", "SolveOptions", "SolvedOutput", "SolvedVertex"]
