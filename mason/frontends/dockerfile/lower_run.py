"""Lowering of ``RUN``: the command line (shell form through SHELL, exec form, heredocs), every
``--mount`` type, ``--network``, ``--security``, into one ExecOp shaped as BuildKit's ``llb``
marshals it (mounts sorted by destination, the root mount first with output 0, inputs deduplicated
in mount order, secret and ssh mounts after the others).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mason.frontends.dockerfile.instructions import (
    BindMount,
    CacheMount,
    DeferredMount,
    ExecForm,
    Run,
    SecretMount,
    SshMount,
    TmpfsMount,
    expand_mount,
)
from mason.frontends.dockerfile.lower_state import StageState
from mason.frontends.dockerfile.lower_util import clean, join_abs
from mason.frontends.dockerfile.syntax_heredoc import HeredocError, parse_heredoc_word
from mason.ir.builder import MountSpec, State, bind, cache, device, mkdir, mkfile, scratch, secret, ssh, tmpfs
from mason.ir.errors import MasonError, MasonErrors, SourceLoc

if TYPE_CHECKING:  # pragma: no cover
    from mason.frontends.dockerfile.lower import Lowerer

__all__ = ["lower_run", "run_command_string", "chomp"]

_TABS = re.compile(r"(?m)^\t+")
_RAW_CHARS = re.compile(r"[$'\"\\]")


def chomp(data: str) -> str:
    """``<<-EOF``: leading tabs stripped from every line."""
    return _TABS.sub("", data)


def run_command_string(args: list[str], build_args: list[tuple[str, str | None]],
                       env: dict[str, str]) -> str:
    """BuildKit's ``runCommandString``: ``|N K=V … args`` (the stage's declared ARGs, each once,
    where it was first declared, with its value now: the environment's, else the ARG's)."""
    shown: dict[str, str] = {}
    for k, v in build_args:
        shown[k] = env[k] if k in env else (v or "")
    parts = [f"{k}={v}" for k, v in shown.items()]
    if parts:
        parts.insert(0, f"|{len(parts)}")
    return " ".join(parts + list(args))


def _heredoc_args(lw: "Lowerer", st: StageState, inst: Run, args: list[str],
                  mounts: list[MountSpec]) -> list[str]:
    """BuildKit's RUN heredoc rules: a lone heredoc with a shebang becomes a file run from
    ``/dev/pipes/``; a lone heredoc without one is the shell's script; anything else is
    handed to the shell whole."""
    if len(args) != 1 or type(inst.command) is ExecForm:
        raise MasonError("parsing produced an invalid run command", inst.loc)
    try:
        lone = parse_heredoc_word(args[0])
    except HeredocError:
        lone = None
    first = inst.heredocs[0]
    if lone is None:
        return [args[0] + "".join("\n" + h.content + h.name for h in inst.heredocs)]
    data = chomp(first.content) if first.chomp else first.content
    if not data.startswith("#!"):
        return [data]
    name = first.name
    md = st.metadata("", name="[internal] preparing inline document", step=False)
    doc = scratch(platform=st.platform).file(mkfile(join_abs(name), data, 0o755), description=md,
                                             name="[internal] preparing inline document", loc=inst.loc)
    mounts.append(bind(doc, "/dev/pipes/", selector="/", readonly=True))
    return [join_abs("/dev/pipes", name)]


def _target(st: StageState, target: str, loc: SourceLoc | None) -> str:
    dest = target if clean(target).startswith("/") else join_abs(st.cwd, target)
    if clean(dest) == "/":
        raise MasonError(f"invalid mount target {clean(dest)!r}", loc)
    return dest


def _cache_perms_source(st: StageState, source: State | None, m: CacheMount,
                        loc: SourceLoc | None) -> State:
    """``setCacheUIDGID``: a ``/cache`` directory with the mount's mode and owner."""
    owner = (int(m.uid or 0), int(m.gid or 0))
    mode = 0o755 if m.mode is None else int(m.mode)
    md = st.metadata("", name="[internal] settings cache mount permissions", step=False)
    base = source.with_platform(st.platform) if source is not None else scratch(platform=st.platform)
    return base.file(mkdir("/cache", mode, False, owner=owner), description=md,
                     name="[internal] settings cache mount permissions", loc=loc)


def _mounts(lw: "Lowerer", st: StageState, inst: Run, out: list[MountSpec]) -> None:
    loc = inst.loc
    ssh_n = 0
    for m in inst.mounts:
        if type(m) is DeferredMount or any(_RAW_CHARS.search(v) for k, v in m.options
                                           if k != "from"):
            try:
                m = expand_mount(m, lambda w: st.expand(w, loc))
            except MasonErrors as e:
                raise MasonError(e.message, loc) from None
        t = type(m)
        if t is BindMount:
            if m.from_:
                src = lw.resolve_from(m.from_, st, loc, by_index=False)
            else:
                src = lw.context_state(st, join_abs(m.source or ""))
            sel = join_abs(m.source or "")
            out.append(bind(src, _target(st, m.target, loc), selector="" if sel == "/" else sel,
                            readonly=not m.readwrite, no_output=True))
        elif t is CacheMount:
            src = lw.resolve_from(m.from_, st, loc, by_index=False) if m.from_ else None
            cache_id = lw.options.cache_ns + "/" + (m.id or clean(m.target))
            sel = join_abs(m.source or "")
            if sel == "/":
                sel = ""
                if m.uid is not None or m.gid is not None or m.mode is not None:
                    src = _cache_perms_source(st, src, m, loc)
                    sel = "/cache"
            out.append(cache(_target(st, m.target, loc), id=cache_id, sharing=str(m.sharing),
                             source=src, selector=sel, readonly=bool(m.readonly)))
        elif t is TmpfsMount:
            # BuildKit v0.32.2 counts a tmpfs mount (it has no from=) as one of the whole context:
            # the context then has no local.followpaths, though nothing mounts it
            lw.context_path(st, "/")
            out.append(tmpfs(_target(st, m.target, loc), size=int(m.size or 0)))
        elif t is SecretMount:
            sid = m.effective_id
            if not sid:
                raise MasonError("secret mount needs an id or a target", loc)
            target = m.effective_target
            optional = not m.required
            if m.env or target is not None:
                out.append(secret(target, id=sid, uid=int(m.uid or 0), gid=int(m.gid or 0),
                                  mode=int(m.effective_mode), optional=optional, env=m.env or None))
        elif t is SshMount:
            target = m.target or f"/run/buildkit/ssh_agent.{ssh_n}"
            ssh_n += 1
            out.append(ssh(target, id=m.id or "", uid=int(m.uid or 0), gid=int(m.gid or 0),
                           mode=int(m.effective_mode), optional=not m.required))


def lower_run(lw: "Lowerer", st: StageState, inst: Run) -> None:
    cmd = inst.command
    shell_form = type(cmd) is not ExecForm
    args = [cmd.command] if shell_form else list(cmd.args)
    mounts: list[MountSpec] = []
    if inst.heredocs:
        args = _heredoc_args(lw, st, inst, args, mounts)
    if shell_form:
        args = [*st.effective_shell(), " ".join(args)]
    _mounts(lw, st, inst, mounts)
    if lw.options.shm_size > 0:  # as BuildKit's dispatchRun: a sized tmpfs over the default /dev/shm
        mounts.append(tmpfs("/dev/shm", size=lw.options.shm_size))
    devices = []
    for d in inst.devices:
        name, _, opt = d.partition(",")
        devices.append(device(name, optional=opt.replace(" ", "") != "required=true" and opt != "required"))
    history = "RUN " + run_command_string(args, st.build_args, st.env) + " # buildkit"
    md = st.metadata(inst.original, history=history, command=True)
    done = st.exec_state().run(
        args, mounts=mounts, network=inst.network or "default",
        security="insecure" if inst.security == "insecure" else "sandbox",
        proxy_env=lw.proxy_env, devices=devices, description=md, loc=inst.loc,
        ulimits=[(u.name, u.soft, u.hard) for u in lw.options.ulimits])
    st.fs = st.fs.with_ref(done.ref)
