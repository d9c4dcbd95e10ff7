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
from mason.ir.errors import MasonError, MasonErrors, SourceLoc
from mason.ir.ops import (
    CacheOpt,
    CacheSharing,
    CDIDevice,
    ChownOpt,
    ExecOp,
    FileAction,
    FileOp,
    Meta,
    MkDir,
    MkFile,
    Mount,
    MountType,
    NetMode,
    Ref,
    SecretEnv,
    SecretOpt,
    SecurityMode,
    SSHOpt,
    TmpfsOpt,
    UserOpt,
)

if TYPE_CHECKING:  # pragma: no cover
    from mason.frontends.dockerfile.lower import Lowerer

__all__ = ["lower_run", "run_command_string", "chomp"]

_NETWORK = {None: NetMode.UNSET, "default": NetMode.UNSET, "none": NetMode.NONE,
            "host": NetMode.HOST}
_SHARING = {"shared": CacheSharing.SHARED, "private": CacheSharing.PRIVATE,
            "locked": CacheSharing.LOCKED}
_TABS = re.compile(r"(?m)^\t+")
_RAW_CHARS = re.compile(r"[$'\"\\]")


def chomp(data: str) -> str:
    """``<<-EOF``: leading tabs stripped from every line."""
    return _TABS.sub("", data)


def run_command_string(args: list[str], build_args: list[tuple[str, str | None]],
                       env: dict[str, str]) -> str:
    """BuildKit's ``runCommandString``: ``|N K=V … args`` (the stage's declared ARGs)."""
    parts = [f"{k}={env[k] if k in env else (v or '')}" for k, v in build_args]
    if parts:
        parts.insert(0, f"|{len(parts)}")
    return " ".join(parts + list(args))


class _ExecBuilder:
    """Collects mounts, then lays them out as ``llb``'s ExecOp marshaling does."""

    def __init__(self) -> None:
        self.regular: list[tuple[str, Ref | None, dict, bool]] = []
        self.tail: list[Mount] = []  # secrets, then ssh, in order
        self.secret_env: list[SecretEnv] = []

    def add(self, dest: str, source: Ref | None, writable: bool = False, **fields) -> None:
        self.regular.append((dest, source, fields, writable))

    def build(self) -> tuple[tuple[Ref, ...], tuple[Mount, ...]]:
        inputs: list[Ref] = []
        index: dict[tuple[int, int], int] = {}
        mounts = []
        out = 0
        for dest, src, fields, writable in sorted(self.regular, key=lambda m: m[0]):
            i = -1
            if src is not None:
                key = (id(src.op), src.index)
                i = index.get(key, -1)
                if i < 0:
                    i = index[key] = len(inputs)
                    inputs.append(src)
            output = -1
            if writable:
                output, out = out, out + 1
            mounts.append(Mount(input=i, dest=dest, output=output, **fields))
        return tuple(inputs), tuple(mounts) + tuple(self.tail)


def _heredoc_args(lw: "Lowerer", st: StageState, inst: Run, args: list[str],
                  ex: _ExecBuilder) -> list[str]:
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
    md = md.with_descriptions({"llb.customname": "[internal] preparing inline document"})
    mkfile = MkFile(join_abs(name), 0o755, data.encode("utf-8", "surrogateescape"), None, -1)
    doc = FileOp(actions=(FileAction(-1, -1, 0, mkfile),), platform=st.platform,
                 constraints=(), metadata=md, loc=inst.loc)
    ex.add("/dev/pipes/", Ref(doc, 0), selector="/", readonly=True)
    return [join_abs("/dev/pipes", name)]


def _target(st: StageState, target: str, loc: SourceLoc | None) -> str:
    dest = target if clean(target).startswith("/") else join_abs(st.cwd, target)
    if clean(dest) == "/":
        raise MasonError(f"invalid mount target {target!r}", loc)
    return dest


def _cache_perms_source(st: StageState, source: Ref | None, m: CacheMount,
                        loc: SourceLoc | None) -> Ref:
    """``setCacheUIDGID``: a ``/cache`` directory with the mount's mode and owner."""
    base = 0 if source is not None else -1
    owner = ChownOpt(UserOpt(id=int(m.uid or 0)), UserOpt(id=int(m.gid or 0)))
    mode = 0o755 if m.mode is None else int(m.mode)
    md = st.metadata("", name="[internal] settings cache mount permissions", step=False)
    md = md.with_descriptions({"llb.customname": "[internal] settings cache mount permissions"})
    op = FileOp(inputs=(source,) if source is not None else (),
                actions=(FileAction(base, -1, 0, MkDir("/cache", mode, False, owner, -1)),),
                platform=st.platform, constraints=(), metadata=md, loc=loc)
    return Ref(op, 0)


def _mounts(lw: "Lowerer", st: StageState, inst: Run, ex: _ExecBuilder) -> None:
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
                src = lw.resolve_from(m.from_, st, loc)
            else:
                src = lw.context_ref(st, join_abs(m.source or ""))
            sel = join_abs(m.source or "")
            ex.add(_target(st, m.target, loc), src, selector="" if sel == "/" else sel,
                   readonly=not m.readwrite)
        elif t is CacheMount:
            src = lw.resolve_from(m.from_, st, loc) if m.from_ else None
            cache_id = lw.options.cache_ns + "/" + (m.id or clean(m.target))
            sel = join_abs(m.source or "")
            if sel == "/":
                sel = ""
                if m.uid is not None or m.gid is not None or m.mode is not None:
                    src = _cache_perms_source(st, src, m, loc)
                    sel = "/cache"
            ex.add(_target(st, m.target, loc), src, selector=sel, readonly=bool(m.readonly),
                   mount_type=MountType.CACHE,
                   cache=CacheOpt(cache_id, _SHARING[str(m.sharing).lower()]))
        elif t is TmpfsMount:
            ex.add(_target(st, m.target, loc), None, mount_type=MountType.TMPFS,
                   tmpfs=TmpfsOpt(int(m.size or 0)))
        elif t is SecretMount:
            sid = m.effective_id
            if not sid:
                raise MasonError("secret mount needs an id or a target", loc)
            target = m.effective_target
            optional = not m.required
            if m.env:
                ex.secret_env.append(SecretEnv(sid, m.env, optional))
            if target is not None:
                ex.tail.append(Mount(
                    input=-1, dest=target, output=-1, mount_type=MountType.SECRET,
                    secret=SecretOpt(sid, int(m.uid or 0), int(m.gid or 0),
                                     int(m.effective_mode), optional)))
        elif t is SshMount:
            target = m.target or f"/run/buildkit/ssh_agent.{ssh_n}"
            ssh_n += 1
            ex.tail.append(Mount(
                input=-1, dest=target, output=-1, mount_type=MountType.SSH,
                ssh=SSHOpt(m.effective_id, int(m.uid or 0), int(m.gid or 0),
                           int(m.effective_mode), not m.required)))


def lower_run(lw: "Lowerer", st: StageState, inst: Run) -> None:
    cmd = inst.command
    shell_form = type(cmd) is not ExecForm
    args = [cmd.command] if shell_form else list(cmd.args)
    ex = _ExecBuilder()
    if inst.heredocs:
        args = _heredoc_args(lw, st, inst, args, ex)
    if shell_form:
        args = [*st.effective_shell(), " ".join(args)]
    ex.add("/", st.ref, writable=True)
    _mounts(lw, st, inst, ex)
    inputs, mounts = ex.build()
    devices = []
    for d in inst.devices:
        name, _, opt = d.partition(",")
        devices.append(CDIDevice(name, optional=opt.replace(" ", "") != "required=true"
                                 and opt != "required"))
    env = st.env_list()
    ssh = [m for m in mounts if m.mount_type == MountType.SSH]
    if ssh and "SSH_AUTH_SOCK" not in st.env:  # llb's ExecOp: the first agent socket
        env = env + ("SSH_AUTH_SOCK=" + ssh[0].dest,)
    meta = Meta(args=tuple(args), env=env, cwd=st.cwd or "/", user=st.user,
                proxy_env=lw.proxy_env, remove_mount_stubs_recursive=True)
    history = "RUN " + run_command_string(args, st.build_args, st.env) + " # buildkit"
    md = st.metadata(inst.original, history=history, command=True)
    st.push(ExecOp(
        inputs=inputs, meta=meta, mounts=mounts, network=_NETWORK[inst.network],
        security=SecurityMode.INSECURE if inst.security == "insecure" else SecurityMode.SANDBOX,
        secret_env=tuple(ex.secret_env), cdi_devices=tuple(devices),
        platform=st.platform, constraints=(), metadata=md, loc=inst.loc))
