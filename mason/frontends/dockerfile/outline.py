"""BuildKit's ``outline`` and ``targets`` subrequests for a Dockerfile (``--call outline``,
``--call targets``), computed from the syntax tree without lowering or resolving anything.

* **targets**: every stage in order, its name, description, base image and ``--platform`` as
  written; the last one is the default.
* **outline** of a target (default: the last stage): the build args, secrets and SSH sockets
  the stages it needs use, as buildkitd v0.32.2 answers. Every ARG a needed stage declares
  counts, used or not; a global ARG counts when a needed stage's FROM refers to it (or a global
  that does refers to it in its default) or a needed stage declares it again (then it keeps the
  global's place and description). One entry per name: a later declaration (in source order of
  the needed stages) replaces an earlier one. The value is the ``--build-arg`` given, else the
  default expanded as far as known ARGs go.

A description is BuildKit's: among the comment lines right above the FROM or ARG, the first that
starts with the name and a space gives the rest of the line (``# build compiles the binary``).
Results are in source order.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from mason.frontends.base import Outline, OutlineArg, OutlineSecret, OutlineSSH, TargetInfo, Targets
from mason.frontends.dockerfile.checks.stages import Layout, StageInfo, split_stages
from mason.frontends.dockerfile.instructions import Arg, Run, SecretMount, SshMount
from mason.frontends.dockerfile.nodes import Node, ParseResult
from mason.frontends.dockerfile.shell import ExpansionBudget, ShellLex
from mason.ir.errors import MasonError, SourceLoc

__all__ = ["outline", "targets", "description_of"]

_REF = re.compile(r"\$(?:\{)?([A-Za-z_][A-Za-z0-9_]*)")


def description_of(node: Node, name: str | None) -> str:
    """The description the comments above ``node`` give ``name`` (BuildKit's rule)."""
    if not name:
        return ""
    for line in node.comments:
        if line.startswith(name + " "):
            return line[len(name) + 1:]
    return ""


def _refs(text: str) -> set[str]:
    return set(_REF.findall(text))


def _layout(result: ParseResult, text: str | None, lex: ShellLex,
            meta_env: Mapping[str, str]) -> Layout:
    layout = split_stages(result, text)

    def expand(word: str) -> str | None:
        try:
            return lex.process_word(word, meta_env)
        except MasonError:
            return None

    layout.resolve_parents(expand)
    return layout


def targets(result: ParseResult, text: str | None = None) -> Targets:
    """Every stage of the Dockerfile, the last one the default."""
    layout = split_stages(result, text)
    out = []
    for st in layout.stages:
        inst = st.inst
        out.append(TargetInfo(name=st.name or "", description=description_of(st.node, st.name),
                              base=inst.image if inst else None, platform=inst.platform if inst else None,
                              default=st.index == len(layout.stages) - 1, loc=st.node.loc))
    return Targets(tuple(out))


class _Arg:
    __slots__ = ("node", "name", "default", "value", "order")

    def __init__(self, node: Node, name: str, default: str | None, value: str | None, order: int):
        self.node, self.name, self.default, self.value, self.order = node, name, default, value, order


def _expand(lex: ShellLex, word: str, env: Mapping[str, str]) -> str:
    try:
        return lex.process_word(word, env)
    except MasonError:
        return word


def outline(result: ParseResult, text: str | None = None, *, build_args: Mapping[str, str] | None = None,
            target: str | None = None) -> Outline:
    """What building ``target`` (None: the last stage) uses; an unknown target is an error."""
    given = dict(build_args or {})
    lex = ShellLex(result.escape, budget=ExpansionBudget())
    # the global ARGs, with their values as a FROM sees them
    meta: dict[str, _Arg] = {}
    meta_env: dict[str, str] = {}
    order = 0
    for node, inst in split_stages(result, text).meta:
        if inst is None:
            continue
        for key, default in inst.args:
            value = given.get(key, _expand(lex, default, meta_env) if default is not None else None)
            meta[key] = _Arg(node, key, default, value, order)
            order += 1
            if value is not None:
                meta_env[key] = value
    layout = _layout(result, text, lex, meta_env)
    if not layout.stages:
        raise MasonError("the Dockerfile has no stage (no FROM)")
    if target:
        idx = layout.stage_index(target, len(layout.stages))
        if idx is None:
            names = ", ".join(s.name or str(s.index) for s in layout.stages)
            raise MasonError(f"target stage {target!r} could not be found (stages: {names})")
    else:
        idx = len(layout.stages) - 1
    top = layout.stages[idx]
    used: dict[str, _Arg] = {}
    secrets: dict[str, tuple[bool, SourceLoc | None, int]] = {}
    ssh: dict[str, tuple[bool, SourceLoc | None, int]] = {}
    for i in sorted(layout.needed(target or top.name)):
        _stage(layout.stages[i], lex, meta, given, used, secrets, ssh)
    args = sorted(used.values(), key=lambda a: (_line(a.node), a.order))
    return Outline(
        target=top.name, description=description_of(top.node, top.name),
        args=tuple(OutlineArg(a.name, a.default, description_of(a.node, a.name), a.value, a.node.loc)
                   for a in args),
        secrets=tuple(OutlineSecret(k, req, loc) for k, (req, loc, _) in
                      sorted(secrets.items(), key=lambda kv: kv[1][2])),
        ssh=tuple(OutlineSSH(k, req, loc) for k, (req, loc, _) in sorted(ssh.items(), key=lambda kv: kv[1][2])),
        loc=top.node.loc)


def _line(node: Node) -> int:
    return node.loc.line if node.loc is not None else 0


def _truthy(v: bool | str) -> bool:
    return v if isinstance(v, bool) else v.strip().lower() in ("true", "1")


def _use(name: str, scope: Mapping[str, _Arg], used: dict[str, _Arg], fallback: Mapping[str, _Arg]) -> None:
    """Count ``name`` (and, through its default, what it refers to)."""
    todo = [name]
    while todo:
        n = todo.pop()
        a = scope.get(n) or fallback.get(n)
        if a is None or (n in used and used[n] is a):
            continue
        used.setdefault(n, a)
        if a.default is not None:
            todo.extend(_refs(a.default))


def _stage(st: StageInfo, lex: ShellLex, meta: Mapping[str, _Arg], given: Mapping[str, str],
           used: dict[str, _Arg], secrets: dict, ssh: dict) -> None:
    if st.inst is not None:
        for name in _refs(st.inst.image) | _refs(st.inst.platform or ""):
            _use(name, meta, used, {})
    env: dict[str, str] = {}
    for pos, (node, inst) in enumerate(st.body):
        if isinstance(inst, Arg):
            for key, default in inst.args:
                if default is None and key in meta:
                    # a global ARG declared again: the global's entry (place, description), with
                    # the value the stage sees
                    m = meta[key]
                    a = _Arg(m.node, key, m.default, given.get(key, m.value), m.order)
                else:
                    value = given.get(key, _expand(lex, default, env) if default is not None else None)
                    a = _Arg(node, key, default, value, _line(node) * 1000 + pos)
                used[key] = a  # every ARG of a needed stage; a later declaration replaces it
                if a.value is not None:
                    env[key] = a.value
            continue
        if isinstance(inst, Run):
            for mount in inst.mounts:
                loc = getattr(mount, "loc", None) or node.loc
                if isinstance(mount, SecretMount):
                    sid = mount.id or (posixpath.basename(mount.target) if mount.target else "") or (mount.env or "")
                    if sid and sid not in secrets:
                        secrets[sid] = (_truthy(mount.required), loc, _line(node))
                elif isinstance(mount, SshMount):
                    sid = mount.id or "default"
                    if sid not in ssh:
                        ssh[sid] = (_truthy(mount.required), loc, _line(node))
