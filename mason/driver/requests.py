"""The request and result types of the driver: :class:`LowerRequest` / :class:`LowerResult`
(``mason lower``, and the first half of a build) and :class:`BuildRequest` /
:class:`BuildResult` (``mason build``, ``mason.build(...)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from mason.ir.graph import Graph
from mason.ir.resolver import PlatformSpec


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
    shm_size: int = 0  # --shm-size bytes: a /dev/shm of that size on every RUN (0: 64 MiB)
    ulimits: tuple[str, ...] = ()  # --ulimit NAME=SOFT[:HARD] on every RUN


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
    # a lowering the cache holds: where the record's graph drawing of it is kept
    # (mason.lowering_cache.GraphRecords), None otherwise
    graph_records: object | None = None

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
    shm_size: int = 0  # --shm-size bytes (see LowerRequest)
    ulimits: tuple[str, ...] = ()  # --ulimit (see LowerRequest)
    memory: int | None = None  # --memory bytes: every step's cgroup memory limit
    cpu_quota: int | None = None  # --cpu-quota µs per --cpu-period
    cpu_period: int | None = None


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

