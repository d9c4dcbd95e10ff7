"""Lowering of the instructions that change the image config (and ARG): each emits one mason
``ConfigOp`` into the stage's chain carrying its changes and the history text BuildKit writes
as v0.32.2 does (``EXPOSE [80/tcp]``, ``HEALTHCHECK {Test:[CMD-SHELL true] Interval:30s …}``).
WORKDIR also creates the directory (a mkdir FileOp, a layer of its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mason.frontends.dockerfile.instructions import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    ShellOrExec,
    Stopsignal,
    User,
    Volume,
    Workdir,
    check_signal,
    parse_port_spec,
)
from mason.frontends.dockerfile.lower_state import (
    StageState,
    change_add,
    change_append,
    change_env,
    change_label,
    change_set,
)
from mason.frontends.dockerfile.lower_util import (
    clean,
    go_duration,
    go_list_q,
    go_list_v,
    join_abs,
)
from mason.ir.builder import mkdir
from mason.ir.errors import MasonError

if TYPE_CHECKING:  # pragma: no cover
    from mason.frontends.dockerfile.lower import Lowerer

__all__ = ["CONFIG_LOWERINGS", "command_args", "lower_workdir_path"]


def command_args(st: StageState, cmd: ShellOrExec) -> list[str]:
    """A command line as BuildKit runs it: exec form as is, shell form through SHELL."""
    if type(cmd) is ExecForm:
        return list(cmd.args)
    return [*st.effective_shell(), cmd.command]


# BuildKit's args that configure the build, not the steps: in the RUN history, never in the
# environment (so no expansion sees them either)
NON_ENV_ARGS = frozenset(("BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"))


def lower_arg(lw: "Lowerer", st: StageState, inst: Arg) -> None:
    # as v0.32.2's dispatchArg: the value is the build arg, else the expanded default (a build
    # arg given leaves the default unexpanded), else the global or automatic (platform) ARG's;
    # the history text shows that value (build args are no secrets: BuildKit writes them too)
    commit = []
    for key, default in inst.args:
        if "$" in key:
            key = st.expand(key, inst.loc)
        v = lw.build_arg(key)
        if v is None and default is not None:
            v = st.expand(default, inst.loc)
        elif v is None:
            v = lw.meta_value(key)
        commit.append(key if v is None else f"{key}={v}")
        if v is not None and key not in NON_ENV_ARGS:
            st.add_env(key, v)
        st.build_args.append((key, v))
    st.emit_config((), "ARG " + " ".join(commit), inst.loc)


def lower_env(lw: "Lowerer", st: StageState, inst: Env) -> None:
    # every substitution sees the environment from before the instruction
    pairs = [(st.expand(k, inst.loc), st.expand(v, inst.loc)) for k, v in inst.pairs]
    for k, v in pairs:
        if not k:
            raise MasonError("ENV names can not be blank", inst.loc)
        st.add_env(k, v)
        st.img_env[k] = v
    st.emit_config([change_env(k, v) for k, v in pairs],
                   "ENV " + " ".join(f"{k}={v}" for k, v in pairs), inst.loc)


def lower_label(lw: "Lowerer", st: StageState, inst: Label) -> None:
    pairs = [(st.expand(k, inst.loc), st.expand(v, inst.loc)) for k, v in inst.pairs]
    st.emit_config([change_label(k, v) for k, v in pairs],
                   "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), inst.loc)


def lower_expose(lw: "Lowerer", st: StageState, inst: Expose) -> None:
    ports: dict[str, dict] = {}
    shown: list[str] = []  # v0.32.2's history: every port in order, the words sorted unexpanded
    for raw in sorted(inst.ports):
        for word in st.expand_words(raw, inst.loc):
            spec = parse_port_spec(word)
            if spec is None:
                raise MasonError(f"invalid EXPOSE port {word!r}: expected "
                                 "PORT[-PORT][/tcp|udp|sctp]", inst.loc)
            lo, hi, proto = spec
            for p in range(lo, hi + 1):
                ports[f"{p}/{proto}"] = {}
                shown.append(f"{p}/{proto}")
    st.emit_config([change_add("ExposedPorts", ports)], "EXPOSE [" + " ".join(shown) + "]", inst.loc)


def lower_cmd(lw: "Lowerer", st: StageState, inst: Cmd) -> None:
    args = command_args(st, inst.command)
    st.cmd_set = True
    st.emit_config([change_set("Cmd", args), change_set("ArgsEscaped", True)],
                   "CMD " + go_list_q(args), inst.loc)


def lower_entrypoint(lw: "Lowerer", st: StageState, inst: Entrypoint) -> None:
    args = command_args(st, inst.command)
    changes = [change_set("Entrypoint", args)]
    if not st.cmd_set:  # an ENTRYPOINT resets the base image's CMD
        changes.append(change_set("Cmd", None))
    st.emit_config(changes, "ENTRYPOINT " + go_list_q(args), inst.loc)


def lower_user(lw: "Lowerer", st: StageState, inst: User) -> None:
    user = st.expand(inst.user, inst.loc)
    st.user = user
    st.emit_config([change_set("User", user)], "USER " + user, inst.loc)


def lower_workdir_path(st: StageState, path: str) -> str:
    """Move the stage's working directory (llb's ``Dir``: an absolute path as written, a
    relative one joined to the previous) and return the image config's WorkingDir."""
    if path.startswith("/"):
        st.cwd = path
        wd = path
    else:
        st.cwd = join_abs(st.cwd or "/", path)
        wd = join_abs(st.workdir, path)
    st.workdir = wd
    return wd


def lower_workdir(lw: "Lowerer", st: StageState, inst: Workdir) -> None:
    path = st.expand(inst.path, inst.loc)
    if not path:
        raise MasonError("WORKDIR path can not be empty", inst.loc)
    wd = lower_workdir_path(st, path)
    if wd == "/":
        st.emit_config([change_set("WorkingDir", wd)], "WORKDIR " + wd, inst.loc)
        return
    md = st.metadata(inst.original, history="WORKDIR " + wd)
    st.fs = st.fs.file(mkdir(clean(wd), 0o755, True, owner=st.user), description=md, loc=inst.loc)
    st.emit_config([change_set("WorkingDir", wd)], "", inst.loc)


def lower_shell(lw: "Lowerer", st: StageState, inst: Shell) -> None:
    st.shell = tuple(inst.args)
    st.emit_config([change_set("Shell", list(inst.args))], "SHELL " + go_list_v(inst.args),
                   inst.loc)


def lower_volume(lw: "Lowerer", st: StageState, inst: Volume) -> None:
    paths = [st.expand(p, inst.loc) for p in inst.paths]
    if any(not p for p in paths):
        raise MasonError("VOLUME specified can not be an empty string", inst.loc)
    st.emit_config([change_add("Volumes", {p: {} for p in paths})],
                   "VOLUME " + go_list_v(paths), inst.loc)


def lower_stopsignal(lw: "Lowerer", st: StageState, inst: Stopsignal) -> None:
    sig = st.expand(inst.signal, inst.loc)
    if not check_signal(sig):
        raise MasonError(f"invalid STOPSIGNAL {sig!r}: expected a signal name or number",
                         inst.loc)
    st.emit_config([change_set("StopSignal", sig)], "STOPSIGNAL " + sig, inst.loc)


def lower_healthcheck(lw: "Lowerer", st: StageState, inst: Healthcheck) -> None:
    cmd = inst.test
    if cmd is None:
        test = ["NONE"]
    elif type(cmd) is ExecForm:
        test = ["CMD", *cmd.args]
    else:
        test = ["CMD-SHELL", cmd.command]
    hc: dict = {"Test": test}
    durations = [("Interval", inst.interval), ("Timeout", inst.timeout),
                 ("StartPeriod", inst.start_period)]
    if inst.start_interval is not None:
        durations.append(("StartInterval", inst.start_interval))
    for key, v in durations:
        if v:
            hc[key] = v
    retries = inst.retries or 0
    if retries:
        hc["Retries"] = retries
    # v0.32.2 prints the HealthcheckConfig with Go's %+v: every field named, StartInterval too
    times = {k: go_duration(v or 0) for k, v in durations}
    shown = " ".join(f"{k}:{times.get(k, '0s')}" for k in ("Interval", "Timeout", "StartPeriod", "StartInterval"))
    text = f"HEALTHCHECK {{Test:{go_list_v(test)} {shown} Retries:{retries}}}"
    st.emit_config([change_set("Healthcheck", hc)], text, inst.loc)


def lower_onbuild(lw: "Lowerer", st: StageState, inst: Onbuild) -> None:
    expr = inst.expression
    st.onbuild.append(expr)
    # v0.32.2's dispatchOnbuild only appends the trigger: no history entry
    st.emit_config([change_append("OnBuild", [expr])], "", inst.loc)


def lower_maintainer(lw: "Lowerer", st: StageState, inst: Maintainer) -> None:
    # BuildKit sets the image's top-level ``author`` (a ``/``-prefixed key names it).
    st.emit_config([change_set("/author", inst.name)], "MAINTAINER " + inst.name, inst.loc)


CONFIG_LOWERINGS = {
    Arg: lower_arg, Env: lower_env, Label: lower_label, Expose: lower_expose, Cmd: lower_cmd,
    Entrypoint: lower_entrypoint, User: lower_user, Workdir: lower_workdir, Shell: lower_shell,
    Volume: lower_volume, Stopsignal: lower_stopsignal, Healthcheck: lower_healthcheck,
    Onbuild: lower_onbuild, Maintainer: lower_maintainer,
}
