"""Lowering a typed Dockerfile to LLB (BuildKit's ``dockerfile2llb``, written anew).

:func:`lower_dockerfile` turns a :class:`~.instructions.Dockerfile` into a :class:`Graph` with
one output per stage (named by the stage name, or its index when unnamed) plus ``default`` (the
last stage). Every stage is kept: choosing a target is ``prune``'s job. What goes where:

* global ARGs (before the first FROM) with ``--build-arg`` values and the automatic
  ``BUILD*``/``TARGET*`` platform args are visible to FROM and ``COPY --from``, and to a stage's
  ARG that re-declares them; proxy build args become each RUN's ``proxy_env``;
* a ``FROM image`` asks the :class:`~mason.ir.resolver.ImageMetaResolver` for the config (its
  Env, WorkingDir, User, Shell and ONBUILD triggers seed the stage) and pins the source to the
  digest; without a resolver the identifier stays unpinned and the config is the empty one;
* an output's ``image_config`` is the config of the base its chain starts from; each
  instruction's config change and history rides on the ops (mason ``ConfigOp`` s, and
  ``mason.history`` metadata on layer ops) until ``hoist-config`` folds them;
* the build context is one ``local://context`` source (``.dockerignore`` patterns as
  ``local.excludepatterns``, the paths COPY and bind mounts read as ``local.followpaths``).

Per-instruction lowering lives in ``lower_run``, ``lower_copy`` and ``lower_config``; the
per-stage state in ``lower_state``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Mapping

from mason.frontends.dockerfile.instructions import (
    Add,
    Copy,
    Dockerfile,
    Instruction,
    Run,
    Stage,
    Workdir,
    parse_instruction,
)
from mason.frontends.dockerfile.lower_config import CONFIG_LOWERINGS, lower_workdir_path
from mason.frontends.dockerfile.lower_contexts import NamedContexts
from mason.frontends.dockerfile.lower_copy import lower_add, lower_copy
from mason.frontends.dockerfile.lower_run import lower_run
from mason.frontends.dockerfile.lower_state import (
    COMMAND_KEY,
    CUSTOM_NAME,
    DEFAULT_PATH,
    StageState,
    change_set,
)
from mason.frontends.dockerfile.shell import ExpansionBudget, ShellError, ShellLex
from mason.ir import gcpause
from mason.ir.builder import State, image, local, placeholder, substitute
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.graph import Graph, Output
from mason.ir.resolver import ImageMetaResolver, PlatformSpec

if TYPE_CHECKING:
    from mason.ir.ops import Ulimit

__all__ = ["LowerOptions", "Lowerer", "lower_dockerfile", "PROXY_ARGS"]

PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
_PLACEHOLDER = "mason.lower.placeholder"


@dataclass(frozen=True)
class LowerOptions:
    """What the Dockerfile frontend takes besides the file: ``--build-arg`` values, the target
    platform (default: the host's) and the build platform, the context's ignore patterns, the
    target (only to choose which stages' context paths the context source follows, as
    BuildKit does), the cache-mount id namespace and the context's local name."""

    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: PlatformSpec | None = None
    build_platform: PlatformSpec | None = None
    excludes: tuple[str, ...] = ()
    target: str | None = None
    cache_ns: str = ""
    context_name: str = "context"
    # --build-context: name -> BuildKit's context:NAME value (see lower_contexts), and the
    # .dockerignore patterns of each local: directory by its local name
    named_contexts: Mapping[str, str] = field(default_factory=dict)
    context_excludes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # buildx --shm-size / --ulimit (BuildKit's shm-size and ulimit options): on every RUN
    shm_size: int = 0
    ulimits: tuple[Ulimit, ...] = ()


def _empty_config(p: PlatformSpec) -> dict:
    """BuildKit's ``emptyImage``: what scratch (and an unresolved image) starts from."""
    cfg: dict = {"architecture": p.architecture, "os": p.os}
    if p.variant:
        cfg["variant"] = p.variant
    cfg["rootfs"] = {"type": "layers", "diff_ids": []}
    cfg["config"] = {"Env": ["PATH=" + DEFAULT_PATH], "WorkingDir": "/"}
    return cfg


def _step_count(instructions) -> int:
    return 1 + sum(1 for i in instructions if type(i) in (Run, Copy, Add, Workdir))


class Lowerer:
    """One lowering run (the stages, the global ARGs, the context source, image sources)."""

    def __init__(self, df: Dockerfile, options: LowerOptions | None = None,
                 resolver: ImageMetaResolver | None = None,
                 warn: Callable[[str, SourceLoc | None], None] | None = None,
                 filename: str = "Dockerfile"):
        self.df = df
        self.options = options or LowerOptions()
        self.resolver = resolver
        self.warn = warn or (lambda msg, loc: None)
        self.filename = filename
        self.budget = ExpansionBudget()  # what the whole Dockerfile's expansions may produce
        self.shlex = ShellLex(df.escape or "\\", budget=self.budget)
        self.target_platform = self.options.platform or PlatformSpec.default()
        self.build_platform = self.options.build_platform or PlatformSpec.default()
        self.stages: list[StageState] = []
        self.by_name: dict[str, int] = {}
        self.deps: dict[int, set[int]] = {}
        self.ctx_paths: dict[int, set[str]] = {}
        self._context: State | None = None
        self._images: dict[tuple[str, PlatformSpec], tuple[State, dict]] = {}
        self._warned_unresolved = False
        self.named = NamedContexts(self.options.named_contexts, self.options.context_excludes, self)
        self.meta: dict[str, str | None] = {}
        self.meta_env: dict[str, str] = {}
        ba = self.options.build_args
        proxy = {}
        for k, v in ba.items():
            if k.upper() in PROXY_ARGS:
                proxy[k.lower()] = v
        self.proxy_env = proxy or None

    # ------------------------------------------------------------------ args
    def _platform_args(self) -> None:
        for prefix, p in (("BUILD", self.build_platform), ("TARGET", self.target_platform)):
            self.meta[prefix + "PLATFORM"] = str(p)
            self.meta[prefix + "OS"] = p.os
            self.meta[prefix + "ARCH"] = p.architecture
            self.meta[prefix + "VARIANT"] = p.variant

    def _global_args(self) -> None:
        self._platform_args()
        self.meta_env = {k: v for k, v in self.meta.items() if v is not None}
        ba = self.options.build_args
        for inst in self.df.meta_args:
            for key, default in inst.args:
                if key in ba:  # a build arg given: the default is not expanded (v0.32.2)
                    value: str | None = ba[key]
                else:
                    value = self.expand_meta(default, inst.loc) if default is not None else None
                if value is None and self.meta.get(key) is not None:
                    continue  # re-declaring an automatic arg keeps its value
                self.meta[key] = value
                # a later global ARG's default sees this one (BuildKit expands each default
                # with the global args declared before it)
                if value is None:
                    self.meta_env.pop(key, None)
                else:
                    self.meta_env[key] = value

    def build_arg(self, key: str) -> str | None:
        return self.options.build_args.get(key)

    def meta_value(self, key: str) -> str | None:
        return self.meta.get(key)

    def expand_meta(self, word: str, loc: SourceLoc | None) -> str:
        """A word expanded with the global ARGs (FROM, ``COPY --from``)."""
        try:
            return self.shlex.process_word(word, self.meta_env, loc)
        except ShellError as e:
            raise MasonError(e.message, loc) from None

    # ------------------------------------------------------------------ sources
    def context_state(self, st: StageState, path: str) -> State:
        """The build context (one source for the whole build; its attrs are decided once every
        stage is lowered, see :meth:`_finish_context`)."""
        self.context_path(st, path)
        if self._context is None:
            self._context = placeholder("local://" + self.options.context_name)
        return self._context

    def context_path(self, st: StageState, path: str) -> None:
        """Name ``path`` in the context's ``local.followpaths`` (if the stage is reached)."""
        self.ctx_paths.setdefault(st.index, set()).add(path)

    def _finish_context(self, outputs: list[Output]) -> list[Output]:
        if self._context is None and not self.named:
            return outputs
        wanted = self._reachable()
        refs = [o.ref for o in outputs]
        if self._context is not None:
            paths: set[str] = set()
            for i in wanted:
                paths |= self.ctx_paths.get(i, set())
            follow = sorted(p.lstrip("/") or "." for p in paths) if "/" not in paths and paths else ()
            real = local(self.options.context_name, follow_paths=follow, exclude=self.options.excludes,
                         shared_key_hint=self.options.context_name, custom_name="[internal] load build context")
            refs = substitute(refs, self._context, real)
        if self.named:
            refs = self.named.finish(refs, wanted)
        return [Output(o.name, r, o.image_config, o.metadata) for o, r in zip(outputs, refs, strict=True)]

    def _reachable(self) -> set[int]:
        """The stages the target (the last stage without one) depends on, itself included."""
        if not self.stages:
            return set()
        target = self.options.target
        start = self.by_name.get(target.lower()) if target else len(self.stages) - 1
        if start is None:
            return set(range(len(self.stages)))
        seen = {start}
        todo = [start]
        while todo:
            for d in self.deps.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    def image(self, name: str, pspec: PlatformSpec, loc: SourceLoc | None) -> tuple[State, dict]:
        """The pinned ``docker-image://`` source of ``name`` and its (base) image config."""
        key = (name, pspec)
        hit = self._images.get(key)
        if hit is not None:
            return hit
        if self.resolver is None:
            state = self._image_source(name, pspec, loc)
            if not self._warned_unresolved:
                self._warned_unresolved = True
                self.warn(f"not resolving base images (--no-resolve): {name} is lowered "
                          "unpinned, with an empty image config", loc)
            cfg = _empty_config(pspec)
        else:
            try:
                res = self.resolver.resolve_image_config(name, pspec)
            except MasonError as e:
                raise MasonError(e.message, loc) from None
            state = self._image_source(res.ref, pspec, loc)
            cfg = copy.deepcopy(res.config)
        self._images[key] = (state, cfg)
        return state, cfg

    @staticmethod
    def _image_source(ref: str, pspec: PlatformSpec, loc: SourceLoc | None) -> State:
        try:
            return image(ref, platform=_ir_platform(pspec))
        except MasonError as e:
            raise MasonError(e.message, loc) from None

    def resolve_from(self, name: str, st: StageState, loc: SourceLoc | None,
                     paths: tuple[str, ...] | None = None, by_index: bool = True) -> State | None:
        """``COPY --from`` / ``--mount from``: a stage (by name, or by index unless ``by_index``
        is false: BuildKit v0.32.2 takes a mount's ``from=0`` for the image ``0``), a named build
        context, scratch, or an image. A stage must be defined before the one that uses it.
        ``paths``: what a COPY reads (a named local context follows only those)."""
        if not name:
            raise MasonError("--from needs a stage, an image or a build context", loc)
        i = self.by_name.get(name.lower())
        if i is None and by_index and name.isascii() and name.isdigit():
            i = int(name)
            if i >= len(self.df.stages):
                raise MasonError(f"invalid stage index {name}: the Dockerfile has "
                                 f"{len(self.df.stages)} stage(s)", loc)
        if i is not None:
            if i == st.index:
                raise MasonError(f"circular dependency detected on stage: "
                                 f"{st.name or st.index}", loc)
            if i > st.index:
                raise MasonError(f"cannot copy from stage {name!r}, it needs to be defined "
                                 f"before current stage {st.name or st.label or st.index!r}", loc)
            self.deps.setdefault(st.index, set()).add(i)
            src = self.stages[i]
            if src.overridden:  # what is copied from a stage replaced by a build context
                self.named.lookup(src.name or "", src.pspec, loc, st.index, paths)
            return src.fs
        named = self.named.lookup(name, self.target_platform, loc, st.index, paths)
        if named is not None:
            return named[0]
        if name == "scratch":
            return None
        state, _ = self.image(name, st.pspec, loc)
        return state

    # ------------------------------------------------------------------ stages
    def _stage_platform(self, stage: Stage) -> PlatformSpec:
        if not stage.platform:
            return self.target_platform
        text = self.expand_meta(stage.platform, stage.loc)
        try:
            return PlatformSpec.parse(text)
        except MasonError as e:
            raise MasonError(e.message, stage.loc) from None

    def _init_stage(self, index: int, stage: Stage) -> tuple[StageState, list[str]]:
        multi = len(self.df.stages) > 1
        label = stage.name or (f"stage-{index}" if multi else "")
        loc = stage.loc
        base = self.expand_meta(stage.base, loc)
        if not base:
            raise MasonError(f"base name ({stage.base}) should not be blank", loc)
        override = ctx = None
        if stage.name:  # a build context named as the stage replaces all of it (all of it is
            # used if it is the target, else what later stages copy from it: BuildKit's paths)
            last = index == len(self.df.stages) - 1
            is_target = stage.name == (self.options.target or "").lower() or (not self.options.target and last)
            override = self.named.lookup(stage.name, self._stage_platform(stage), loc, index,
                                         None if is_target else ())
        parent_i = None if override is not None else self.by_name.get(base.lower())
        if override is None and parent_i is None and base.lower() != "scratch":
            ctx = self.named.lookup(base, self._stage_platform(stage), loc, index)
        if parent_i is not None and parent_i == index:
            raise MasonError(f"circular dependency detected on stage: {stage.name}", loc)
        if parent_i is not None and parent_i > index:
            raise MasonError(f"stage {base!r} needs to be defined before stage "
                             f"{stage.name or index!r} can use it in FROM", loc)
        triggers: list[str] = []
        if parent_i is not None:
            parent = self.stages[parent_i]
            if parent.overridden:  # FROM a replaced stage uses all of it
                self.named.lookup(parent.name or "", parent.pspec, loc, index)
            self.deps.setdefault(index, set()).add(parent_i)
            st = StageState(self, index, stage.name, label, parent.pspec, loc)
            st.fs = parent.fs
            st.set_env(dict(parent.env))
            st.img_env = dict(parent.img_env)
            st.build_args = list(parent.build_args)  # v0.32.2: the RUN history keeps showing them
            st.cwd, st.workdir, st.user, st.shell = (parent.cwd, parent.workdir, parent.user,
                                                     parent.shell)
            st.root_config = parent.root_config
            triggers = list(parent.onbuild)
            config: dict = {}
        else:
            pspec = self._stage_platform(stage)
            st = StageState(self, index, stage.name, label, pspec, loc)
            st.overridden = override is not None
            replaced = override or ctx
            if replaced is not None:
                nst, ncfg = replaced
                st.fs = nst
                cfg = copy.deepcopy(ncfg) if ncfg is not None else _empty_config(self.target_platform)
            elif base.lower() == "scratch":
                cfg = _empty_config(pspec)
            else:
                img, cfg = self.image(base, pspec, loc)
                cfg = copy.deepcopy(cfg)
                st.fs = img
            c = cfg.get("config")
            if not isinstance(c, dict):
                c = cfg["config"] = {}
            env = list(c.get("Env") or ())
            if not any(e.split("=", 1)[0] == "PATH" for e in env):
                env.append("PATH=" + DEFAULT_PATH)
                c["Env"] = env
            triggers = list(c.pop("OnBuild", None) or ())  # run here, never inherited (and no null: v0.32.2)
            st.root_config = cfg
            config = c
        st.base_name = base
        if parent_i is None:
            for e in config.get("Env") or ():
                k, _, v = e.partition("=")
                st.img_env[k] = v
        for k, v in st.img_env.items():  # the image's Env seeds the exec environment
            st.add_env(k, v)
        if parent_i is None:
            if config.get("WorkingDir"):
                lower_workdir_path(st, config["WorkingDir"])
            st.user = config.get("User") or ""
            st.shell = tuple(config.get("Shell") or ())
        st.cmd_total = _step_count(stage.instructions)
        if st.ref is not None and parent_i is None:
            st.cmd_index = 1
            ident = st.ref.op.identifier  # type: ignore[attr-defined]
            md = {CUSTOM_NAME: st.prefix() + "FROM " + ident.split("://", 1)[1],
                  COMMAND_KEY: stage.from_.original}
            if st.ref.op.metadata.is_empty() and override is None and ctx is None:
                named = image(ident.split("://", 1)[1], platform=st.platform, description=md, loc=loc)
                self._images[(base, st.pspec)] = (named, self._images[(base, st.pspec)][1])
                st.fs = named
        else:
            st.cmd_index = 1
        return st, triggers

    def _run_triggers(self, st: StageState, triggers: list[str], stage: Stage,
                      from_parent: bool) -> None:
        if not triggers:
            return
        from mason.frontends.dockerfile.syntax import parse_dockerfile

        for expr in triggers:
            try:
                result = parse_dockerfile(expr + "\n", self.filename)
                if len(result.nodes) != 1:
                    raise MasonError(f"ONBUILD trigger {expr!r} is not one instruction")
                inst = parse_instruction(result.nodes[0], expr)
            except MasonError as e:
                raise MasonError(f"ONBUILD trigger {expr!r} of the base image: {e.message}",
                                 stage.loc) from None
            inst = _relocate(inst, stage.loc)
            self._lower_instruction(st, inst)
        if from_parent:
            st.emit_config([change_set("OnBuild", None)], "", stage.loc)

    def _lower_instruction(self, st: StageState, inst: Instruction) -> None:
        t = type(inst)
        fn = _LOWERINGS.get(t) or CONFIG_LOWERINGS.get(t)
        if fn is None:  # pragma: no cover - every instruction type is covered
            raise MasonError(f"cannot lower {t.__name__}", getattr(inst, "loc", None))
        fn(self, st, inst)

    def lower(self) -> Graph:
        """Lower every stage; the graph's outputs as the module docstring says."""
        # Lowering makes many long-lived objects and frees few, so the cyclic GC finds nothing
        # to collect: paused, the 10,000-instruction file of bench/lower_bench.py parses and
        # lowers in 651 ms of CPU instead of 865 (-25 %; median of 7, interleaved, 2026-12-07).
        with gcpause.paused():
            return self._lower()

    def _lower(self) -> Graph:
        df = self.df
        for i, stage in enumerate(df.stages):
            if stage.name is not None:
                self.by_name.setdefault(stage.name, i)
        self._global_args()
        for i, stage in enumerate(df.stages):
            st, triggers = self._init_stage(i, stage)
            self.stages.append(st)
            if st.overridden:  # replaced by a build context: nothing of the stage is lowered
                st.done = True
                continue
            parent = self.by_name.get(st.base_name.lower())
            self._run_triggers(st, triggers, stage, parent is not None and parent != i)
            for inst in stage.instructions:
                self._lower_instruction(st, inst)
            st.done = True
        outputs: list[Output] = []
        for st in self.stages:
            if st.ref is None:
                continue
            outputs.append(Output(st.name or str(st.index), st.ref, st.root_config))
        last = self.stages[-1]
        if last.ref is None:
            raise MasonError("the last stage builds nothing (FROM scratch with no "
                             "instructions)", last.loc)
        outputs.append(Output("default", last.ref, last.root_config))
        return Graph(tuple(self._finish_context(outputs)))


def _ir_platform(p: PlatformSpec):
    from mason.frontends.dockerfile.lower_state import to_platform

    return to_platform(p)


def _relocate(inst: Instruction, loc: SourceLoc | None) -> Instruction:
    """An ONBUILD trigger's instruction located at the FROM that runs it."""
    try:
        return replace(inst, loc=loc)  # type: ignore[type-var]
    except TypeError:  # pragma: no cover
        return inst


_LOWERINGS: dict[type, Callable] = {Run: lower_run, Copy: lower_copy, Add: lower_add}


def lower_dockerfile(df: Dockerfile, options: LowerOptions | None = None,
                     resolver: ImageMetaResolver | None = None,
                     warn: Callable[[str, SourceLoc | None], None] | None = None,
                     filename: str = "Dockerfile") -> Graph:
    """The naive lowering of ``df``: every stage an output, plus ``default``."""
    return Lowerer(df, options, resolver, warn, filename).lower()
