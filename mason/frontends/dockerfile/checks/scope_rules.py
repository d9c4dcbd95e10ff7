"""The checks that follow ARG/ENV scope through the stages: FROM arguments and platforms,
undefined variables, relative WORKDIRs, CMD/ENTRYPOINT form, repeated CMD/ENTRYPOINT/HEALTHCHECK,
secret-looking names, copies of ignored files and base images of the wrong platform.

Variable scope is BuildKit's: FROM sees the global ARGs (declared before the first FROM) and the
automatic platform ARGs; a stage sees its base image's ENV (``PATH`` always), its parent
stage's ENV, and the ARGs and ENVs declared in it so far. Only words the frontend expands are
checked (not RUN/CMD/ENTRYPOINT commands, which the shell expands at run time). When the env of
an external base image is unknown (no ``image_config``, or it could not be had) UndefinedVar
stays quiet for that stage rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from mason.frontends.dockerfile.checks.report import Collector
from mason.frontends.dockerfile.checks.stages import Layout, StageInfo
from mason.frontends.dockerfile.checks.syntax_rules import check_arg_description
from mason.frontends.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from mason.frontends.dockerfile.nodes import Node
from mason.frontends.dockerfile.shell import ShellError, ShellLex
from mason.ir.errors import MasonError
from mason.ir.patterns import PatternMatcher, clean_path
from mason.ir.reference import parse_reference
from mason.ir.resolver import PlatformSpec

__all__ = ["ScopeChecker", "ImageConfigFn", "is_secret_name"]

# (ref, platform) -> the OCI image config of the base image, or None when it cannot be had
ImageConfigFn = Callable[[str, PlatformSpec], "Mapping | None"]

_SECRET = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|"
                     r"passwd|secret|token)(?:_|$)")
_NOT_SECRET = re.compile(r"(?i)(?:_|^)(?:public)(?:_|$)")
_PLACEHOLDER = "x"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def is_secret_name(name: str) -> bool:
    """BuildKit's test for an ARG/ENV name that looks like it holds a secret."""
    return _SECRET.search(name) is not None and _NOT_SECRET.search(name) is None


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a misspelling of: the nearest by edit distance
    (case-sensitive, at most 2; ties by name), or None."""
    best: tuple[int, str] | None = None
    for k in known:
        if k == name:
            continue
        d = _distance(name, k)
        if d <= 2 and (best is None or (d, k) < best):
            best = (d, k)
    return best[1] if best else None


def _needle(word: str, name: str) -> str:
    """The text of the reference to ``name`` in ``word``, to point the caret at."""
    for ref in ("${" + name, "$" + name):
        if ref in word:
            return ref
    return name


class _Scope:
    """What a stage knows so far: ENV values (base image, parent stage, this stage) and the
    ARGs declared in it (a declared ARG without a value expands to "")."""

    def __init__(self, env: dict[str, str], env_known: bool, abs_workdir: bool, shell: bool):
        self.env = env
        self.env_known = env_known  # False: the base image's env is unknown
        self.args: dict[str, str] = {}
        self.abs_workdir = abs_workdir
        self.shell = shell

    def values(self) -> dict[str, str]:
        return {**self.args, **self.env}


class ScopeChecker:
    def __init__(self, layout: Layout, out: Collector, lex: ShellLex, *,
                 build_args: Mapping[str, str], target_platform: PlatformSpec,
                 build_platform: PlatformSpec, excludes: Iterable, image_config: ImageConfigFn | None,
                 target: str | None, all_targets: bool):
        self.layout, self.out, self.lex = layout, out, lex
        self.build_args = build_args
        self.target_platform = target_platform
        self.image_config = image_config
        self.target, self.all_targets = target, all_targets
        self.needed: set[int] = set()
        self.ignore = PatternMatcher(excludes)
        self.builtins: dict[str, str] = {}
        for prefix, p in (("BUILD", build_platform), ("TARGET", target_platform)):
            self.builtins.update({prefix + "PLATFORM": str(p), prefix + "OS": p.os,
                                  prefix + "ARCH": p.architecture, prefix + "VARIANT": p.variant})
        self.meta_env: dict[str, str] = dict(self.builtins)  # values as the build sees them
        self.meta_defaults: dict[str, str] = dict(self.builtins)  # without --build-arg
        self.meta_declared: set[str] = set()
        self._configs: dict[tuple[str, PlatformSpec], Mapping | None] = {}
        self.finals: dict[int, _Scope] = {}

    # ---------------------------------------------------------------- helpers
    def _expand(self, word: str, env: Mapping[str, str]):
        try:
            return self.lex.expand(word, env)
        except ShellError:
            return None  # the build reports a bad word; the checks say nothing of it

    def expand_meta(self, word: str) -> str | None:
        r = self._expand(word, self.meta_env)
        return r.result if r is not None else None

    def _config(self, ref: str, platform: PlatformSpec) -> Mapping | None:
        key = (ref, platform)
        if key not in self._configs:
            cfg = None
            if self.image_config is not None:
                try:
                    cfg = self.image_config(ref, platform)
                except MasonError:
                    cfg = None
            self._configs[key] = cfg
        return self._configs[key]

    # ---------------------------------------------------------------- global ARGs and FROM
    def run(self) -> None:
        for node, inst in self.layout.meta:
            if inst is not None:
                self._meta_arg(node, inst)
        self.layout.resolve_parents(self.expand_meta)
        self.needed = (set(range(len(self.layout.stages))) if self.all_targets
                       else self.layout.needed(self.target))
        for st in self.layout.stages:
            self._from(st)
            self._stage(st)

    def _meta_arg(self, node: Node, inst: Arg) -> None:
        for key, default in inst.args:  # (BuildKit checks secret names in stages only)
            value = None
            if default is not None:
                r = self._expand(default, self.meta_env)
                value = r.result if r is not None else ""
                d = self._expand(default, self.meta_defaults)
                if d is not None:
                    self.meta_defaults[key] = d.result
            if key in self.build_args:
                value = self.build_args[key]
            if value is not None:  # declared without one: an automatic ARG keeps its value
                self.meta_env[key] = value
            self.meta_declared.add(key)
        check_arg_description(node, [k for k, _ in inst.args], self.out)

    def _from(self, st: StageInfo) -> None:
        f, out = st.inst, self.out
        if f is None:
            return
        declared = {k: _PLACEHOLDER for k in self.meta_declared | set(self.builtins)}
        for word in (f.image, f.platform or ""):
            r = self._expand(word, declared)
            for name in sorted(r.unmatched if r is not None else ()):
                hint = suggest(name, declared)
                msg = f"FROM argument '{name}' is not declared"
                out.warn("UndefinedArgInFrom", msg + (f" (did you mean {hint}?)" if hint else ""),
                         st.node, _needle(word, name))
        if "$" in f.image:
            d = self._expand(f.image, self.meta_defaults)
            if d is not None and not self._valid_base(d.result, st.index):
                out.warn("InvalidDefaultArgInFrom", f"Default value for ARG {f.image} results in "
                         "empty or invalid base image name", st.node, f.image)
        if f.platform:
            self._platform_flag(st, f.platform)

    def _valid_base(self, name: str, index: int) -> bool:
        if not name:
            return False
        if self.layout.stage_index(name, index) is not None:
            return True
        try:
            parse_reference(name)
        except MasonError:
            return False
        return True

    def _platform_flag(self, st: StageInfo, raw: str) -> None:
        r = self._expand(raw, self.meta_env)
        if r is None:
            return
        if "$" not in raw:
            name = st.name or ""
            try:
                p = PlatformSpec.parse(raw)
                parts = [p.os, p.architecture, p.variant]
            except MasonError:
                parts = raw.split("/")
            if not any(part and part in name for part in parts):
                self.out.warn("FromPlatformFlagConstDisallowed",
                              f'FROM --platform flag should not use constant value "{raw}"',
                              st.node, raw)
        elif r.used == {"TARGETPLATFORM"} and r.result == self.meta_env.get("TARGETPLATFORM"):
            self.out.warn("RedundantTargetPlatform", f"Setting platform to predefined {raw} in "
                          "FROM is redundant as this is the default behavior", st.node, raw)

    # ---------------------------------------------------------------- stages
    def _base_scope(self, st: StageInfo) -> _Scope:
        unknown = _Scope({"PATH": _DEFAULT_PATH}, False, False, False)
        if st.parent is not None and st.parent in self.finals:
            p = self.finals[st.parent]
            return _Scope(dict(p.env), p.env_known, p.abs_workdir, p.shell)
        base = self.expand_meta(st.base) if st.base is not None else None
        if base is None:
            return unknown
        if base.lower() == "scratch":
            return _Scope({"PATH": _DEFAULT_PATH}, True, False, False)
        platform = self.target_platform
        if st.inst is not None and st.inst.platform:
            raw = self.expand_meta(st.inst.platform)
            try:
                platform = PlatformSpec.parse(raw) if raw else platform
            except MasonError:
                pass
        cfg = self._config(base, platform) if st.index in self.needed else None
        if cfg is None:
            return unknown
        self._base_platform(st, base, platform, cfg)
        inner = cfg.get("config") or {}
        env = {"PATH": _DEFAULT_PATH}
        for e in inner.get("Env") or []:
            if isinstance(e, str):
                k, _, v = e.partition("=")
                env[k] = v
        return _Scope(env, True, False, bool(inner.get("Shell")))

    def _base_platform(self, st: StageInfo, ref: str, want: PlatformSpec, cfg: Mapping) -> None:
        if not cfg.get("os") or not cfg.get("architecture"):
            return
        got = PlatformSpec.from_json(cfg)
        if not want.matches(got):
            self.out.warn("InvalidBaseImagePlatform", f"Base image {ref} was pulled with platform "
                          f"{got}, expected {want} for current build", st.node, st.base)

    def _stage(self, st: StageInfo) -> None:
        sc = self._base_scope(st)
        seen: dict[str, list[Node]] = {"CMD": [], "ENTRYPOINT": [], "HEALTHCHECK": []}
        for node, inst in st.body:
            if inst is None:
                continue
            self._instruction(sc, node, inst, seen)
        for kind, nodes in seen.items():
            for node in nodes[:-1]:
                self.out.warn("MultipleInstructionsDisallowed",
                              f"Multiple {kind} instructions should not be used in the same stage "
                              "because only the last one will be used", node, loc=node.loc)
        self.finals[st.index] = sc

    def _instruction(self, sc: _Scope, node: Node, inst: Instruction,
                     seen: dict[str, list[Node]]) -> None:
        if isinstance(inst, Arg):
            for key, default in inst.args:
                self._secret(node, "ARG", key)
                value = self.meta_env.get(key, "")
                if default is not None:
                    r = self._vars(sc, node, [default])
                    value = r[0] if r else ""
                sc.args[key] = self.build_args.get(key, value)
            check_arg_description(node, [k for k, _ in inst.args], self.out)
        elif isinstance(inst, Env):
            values = self._vars(sc, node, [w for kv in inst.pairs for w in kv])
            for i, (key, _) in enumerate(inst.pairs):
                self._secret(node, "ENV", key)
                sc.env[key] = values[2 * i + 1] if values else ""
        elif isinstance(inst, Workdir):
            path = self._vars(sc, node, [inst.path])
            if path and (sc.env_known or "$" not in inst.path):
                self._workdir(sc, node, path[0])
        elif isinstance(inst, (Copy, Add)):
            words = [*inst.sources, inst.dest]
            words += [w for w in (inst.chown, inst.chmod) if w]
            if isinstance(inst, Add) and inst.checksum:
                words.append(inst.checksum)
            self._vars(sc, node, words)
            if inst.from_ is None:
                self._ignored(node, inst)
        elif isinstance(inst, Expose):
            self._expose(sc, node, inst)
        elif isinstance(inst, Label):
            self._vars(sc, node, [v for _, v in inst.pairs])
        elif isinstance(inst, User):
            self._vars(sc, node, [inst.user])
        elif isinstance(inst, Volume):
            self._vars(sc, node, list(inst.paths))
        elif isinstance(inst, Stopsignal):
            self._vars(sc, node, [inst.signal])
        elif isinstance(inst, Run):
            self._vars(sc, node, [v for m in inst.mounts for _, v in getattr(m, "options", ())])
        elif isinstance(inst, Shell):
            sc.shell = True
        elif isinstance(inst, (Cmd, Entrypoint)):
            kind = "CMD" if isinstance(inst, Cmd) else "ENTRYPOINT"
            seen[kind].append(node)
            if not isinstance(inst.command, ExecForm) and not sc.shell:
                self.out.warn("JSONArgsRecommended", f"JSON arguments recommended for {kind} to "
                              "prevent unintended behavior related to OS signals", node,
                              loc=node.loc)
        elif isinstance(inst, Healthcheck):
            seen["HEALTHCHECK"].append(node)

    def _vars(self, sc: _Scope, node: Node, words: list[str]) -> list[str] | None:
        """Expand ``words`` in the stage's scope, reporting UndefinedVar for names that are not
        set (when the scope is known); the expanded words, or None if one does not expand."""
        env = sc.values()
        out: list[str] = []
        report = sc.env_known and self.out.on("UndefinedVar")
        for word in words:
            r = self._expand(word, env)
            if r is None:
                return None
            out.append(r.result)
            if not report:
                continue
            for name in sorted(r.unmatched):
                hint = suggest(name, env)
                msg = f"Usage of undefined variable '${name}'"
                self.out.warn("UndefinedVar", msg + (f" (did you mean ${hint}?)" if hint else ""),
                              node, _needle(word, name))
        return out

    def _workdir(self, sc: _Scope, node: Node, path: str) -> None:
        if path.startswith("/"):
            sc.abs_workdir = True
        elif not sc.abs_workdir:
            self.out.warn("WorkdirRelativePath", f'Relative workdir "{path}" can have unexpected '
                          "results if the base image changes", node, path)

    def _expose(self, sc: _Scope, node: Node, inst: Expose) -> None:
        env = sc.values()
        for raw in inst.ports:
            if "$" in raw and not sc.env_known:
                continue
            self._vars(sc, node, [raw])
            r = self._expand(raw, env)
            for spec in r.words if r is not None else ():
                port, slash, proto = spec.partition("/")
                if ":" in port:
                    self.out.warn("ExposeInvalidFormat", "EXPOSE instruction should not define an "
                                  f"IP address or host-port mapping, found '{spec}'", node, raw)
                if slash and proto != proto.lower():
                    self.out.warn("ExposeProtoCasing", f"Defined protocol '{spec}' in EXPOSE "
                                  "instruction should be lowercase", node, raw)

    def _secret(self, node: Node, kind: str, key: str) -> None:
        if is_secret_name(key):
            self.out.warn("SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for "
                          f'sensitive data ({kind} "{key}")', node, key)

    def _ignored(self, node: Node, inst: Copy | Add) -> None:
        """CopyIgnoredFile: a source (as written, wildcards too) that ``.dockerignore`` excludes.
        As BuildKit, nothing is reported when the file has ``!`` exceptions, nor for absolute
        sources or the context root."""
        m = self.ignore
        if not m.patterns or m.has_exceptions or not self.out.on("CopyIgnoredFile"):
            return
        what = "Add" if isinstance(inst, Add) else "Copy"
        for src in inst.sources:
            if "$" in src or "://" in src or src.startswith(("git@", "/")):
                continue
            rel = clean_path(src)
            if rel != "." and m.excluded(rel):
                self.out.warn("CopyIgnoredFile", f'Attempting to {what} file "{rel}" that is '
                              "excluded by .dockerignore", node, src)
