"""One parser per Dockerfile instruction: a syntax :class:`Node` → its typed instruction, or
None after reporting every mistake found to the :class:`Ctx`. ``parse_node`` dispatches."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mason.frontends.dockerfile.instructions_context import Ctx
from mason.frontends.dockerfile.instructions_mounts import parse_mount
from mason.frontends.dockerfile.instructions_types import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    ExecForm,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    ShellForm,
    ShellOrExec,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from mason.frontends.dockerfile.instructions_values import (
    BOOL,
    STRING,
    STRINGS,
    Problems,
    check_chmod,
    check_signal,
    parse_duration,
    parse_flags,
    parse_go_int,
    parse_port_spec,
    suggest,
)
from mason.frontends.dockerfile.nodes import Heredoc, Node
from mason.frontends.dockerfile.syntax_heredoc import HeredocError, parse_heredoc_word

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
# Stricter than BuildKit (which takes any word): a name must be usable, if not as $name then
# at least through --build-arg and the environment of RUN.
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_EMPTY: dict[str, object] = {}
_MIN_INTERVAL = 1_000_000  # 1ms, docker's container.MinimumDuration

_COPY_FLAGS = {"from": STRING, "chown": STRING, "chmod": STRING, "link": BOOL,
               "parents": BOOL, "exclude": STRINGS}
_ADD_FLAGS = {**_COPY_FLAGS, "checksum": STRING, "keep-git-dir": BOOL, "unpack": BOOL}
_RUN_FLAGS = {"mount": STRINGS, "network": STRING, "security": STRING, "device": STRINGS}
_FROM_FLAGS = {"platform": STRING}
_HEALTH_FLAGS = {"interval": STRING, "timeout": STRING, "start-period": STRING,
                 "start-interval": STRING, "retries": STRING}
_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")


def _command(node: Node) -> ShellOrExec:
    if node.json:
        return ExecForm(node.args)
    args = node.args
    return ShellForm(args[0] if len(args) == 1 else " ".join(args))


def _no_flags(node: Node, ctx: Ctx, instr: str) -> bool:
    if not node.flags:
        return True
    probs: Problems = []
    parse_flags(node.flags, _EMPTY, instr, probs)  # type: ignore[arg-type]
    ctx.problems(node, probs)
    return not probs


def _exactly_one(node: Node, ctx: Ctx, instr: str) -> str | None:
    ok = _no_flags(node, ctx, instr)
    if len(node.args) != 1:
        needle = node.args[1] if len(node.args) > 1 else ""
        ctx.error(node, f"{instr} requires exactly one argument", needle)
        return None
    return node.args[0] if ok else None


def _parse_from(node: Node, ctx: Ctx) -> From | None:
    probs: Problems = []
    flags = parse_flags(node.flags, _FROM_FLAGS, "FROM", probs) if node.flags else _EMPTY
    ctx.problems(node, probs)
    ok = not probs
    args = node.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if _STAGE_NAME.match(name) is None:
            ctx.error(node, f"invalid name for build stage: {args[2]!r}, name can't start "
                      "with a number or contain symbols", args[1], args[2])
            ok = False
    elif len(args) == 3:
        ctx.error(node, f"FROM expects AS before the stage name, not {args[1]!r}", args[1])
        ok = False
    elif len(args) == 2 and args[1].lower() == "as":
        ctx.error(node, "FROM ... AS needs a stage name", args[1])
        ok = False
    elif len(args) != 1:
        ctx.error(node, "FROM requires either one or three arguments (image [AS name])",
                  args[1] if len(args) > 1 else "")
        ok = False
    if not ok:
        return None
    return From(args[0], flags.get("platform") or None, name,  # type: ignore[arg-type]
                node.original, node.loc)


def _parse_run(node: Node, ctx: Ctx) -> Run | None:
    if not node.flags:
        if not node.args and not node.heredocs:
            ctx.error(node, "RUN requires at least one argument")
            return None
        return Run(_command(node), (), None, None, (), node.heredocs, node.original, node.loc)
    probs: Problems = []
    flags = parse_flags(node.flags, _RUN_FLAGS, "RUN", probs)
    mounts = []
    for spec in flags.get("mount", ()):  # type: ignore[union-attr]
        # A mount carries its instruction's location (locating the flag itself costs more
        # than the whole parse; errors found here are located precisely anyway).
        m = parse_mount(spec, probs, "--mount=" + spec, node.loc)
        if m is not None:
            mounts.append(m)
    network = flags.get("network")
    if network is not None and network not in _NETWORKS:
        probs.append((f"unsupported --network value {network!r} (expected default, none or "
                      "host)", ("--network=",)))
    security = flags.get("security")
    if security is not None and security not in _SECURITY:
        probs.append((f"unsupported --security value {security!r} (expected sandbox or "
                      "insecure)", ("--security=",)))
    if not node.args and not node.heredocs:
        probs.append(("RUN requires at least one argument", ()))
    if probs:
        ctx.problems(node, probs)
        return None
    return Run(_command(node), tuple(mounts), network, security,  # type: ignore[arg-type]
               tuple(flags.get("device", ())), node.heredocs,  # type: ignore[arg-type]
               node.original, node.loc)


def _parse_cmd(node: Node, ctx: Ctx) -> Cmd | None:
    if not _no_flags(node, ctx, "CMD"):
        return None
    return Cmd(_command(node), node.original, node.loc)


def _parse_entrypoint(node: Node, ctx: Ctx) -> Entrypoint | None:
    if not _no_flags(node, ctx, "ENTRYPOINT"):
        return None
    return Entrypoint(_command(node), node.original, node.loc)


def _heredoc_word(word: str) -> Heredoc | None:
    """BuildKit's ``MustParseHeredoc``: the heredoc ``word`` names (``[fd]<<[-]NAME``, quotes
    removed), None if it is none or does not parse."""
    if "<<" not in word:
        return None
    try:
        return parse_heredoc_word(word)
    except HeredocError:
        return None


def _bad_urls(node: Node, ctx: Ctx, sources: tuple[str, ...]) -> bool:
    """Report ADD sources that are http(s) URLs but cannot be parsed as one (``http://[::1``).
    BuildKit lowers them to an HTTP source named ``__unnamed__`` that can only fail when the
    build fetches it; this reports it where it is written. Sources that expansion may still
    change (``$``, quotes, escapes) are left to the lowering."""
    bad = False
    for src in sources:
        if not src.startswith(("http://", "https://")) or any(c in src for c in "$\\'\"`"):
            continue
        try:
            urlsplit(src.split("#", 1)[0])
        except ValueError as e:
            reason = str(e)
            ctx.error(node, f"ADD source {src} is not a valid URL: "
                      f"{reason[:1].lower() + reason[1:]}", src)
            bad = True
    return bad


def _parse_copy(node: Node, ctx: Ctx, add: bool = False) -> Copy | Add | None:
    args = node.args
    if add and _bad_urls(node, ctx, args[:-1]):
        return None
    if not node.flags and len(args) >= 2 and not any("<<" in a for a in args):  # the common case, fast
        if add:
            return Add(args[:-1], args[-1], None, None, None, False, False, (), (), None,
                       False, None, node.original, node.loc)
        return Copy(args[:-1], args[-1], None, None, None, False, False, (), (),
                    node.original, node.loc)
    instr = "ADD" if add else "COPY"
    probs: Problems = []
    flags = (parse_flags(node.flags, _ADD_FLAGS if add else _COPY_FLAGS, instr, probs)
             if node.flags else _EMPTY)
    if len(args) < 2:
        probs.append((f"{instr} requires at least two arguments: a source and a destination"
                      if args else f"{instr} requires at least two arguments, but got none",
                      (args[0],) if args else ()))
    chmod = flags.get("chmod") or None
    if chmod is not None:
        bad = check_chmod(chmod)  # type: ignore[arg-type]
        if bad:
            probs.append((bad, ("--chmod=",)))
    if probs:
        ctx.problems(node, probs)
        return None
    dest = args[-1]
    sources = args[:-1]
    heredocs: tuple[Heredoc, ...] = ()
    if any("<<" in a for a in args):
        # as BuildKit's parseSourcesAndDest: a source that parses as a heredoc (``3<<"TWO"``
        # too, and in the JSON form) is one; its body is the one of that name (empty if the
        # instruction has none), its chomp and expand the word's own
        by_name = {h.name: h for h in node.heredocs}
        if _heredoc_word(dest) is not None:
            ctx.error(node, f"{instr} destination cannot be a heredoc", dest)
            return None
        paths, docs = [], []
        for s in sources:
            h = _heredoc_word(s)
            if h is None:
                paths.append(s)
            else:
                body = by_name.get(h.name)
                docs.append(Heredoc(h.name, body.content if body is not None else "", h.expand, h.chomp, h.fd))
        sources, heredocs = tuple(paths), tuple(docs)
    common = (sources, dest, flags.get("from") or None, flags.get("chown") or None, chmod,
              flags.get("link", False), flags.get("parents", False),
              tuple(flags.get("exclude", ())), heredocs)  # type: ignore[arg-type]
    if not add:
        return Copy(*common, node.original, node.loc)  # type: ignore[arg-type]
    return Add(*common, flags.get("checksum") or None,  # type: ignore[arg-type]
               flags.get("keep-git-dir", False), flags.get("unpack"),  # type: ignore
               node.original, node.loc)


def _parse_add(node: Node, ctx: Ctx) -> Add | None:
    return _parse_copy(node, ctx, add=True)  # type: ignore[return-value]


def _parse_arg(node: Node, ctx: Ctx) -> Arg | None:
    ok = _no_flags(node, ctx, "ARG")
    if not node.args:
        ctx.error(node, "ARG requires at least one argument")
        return None
    out = []
    for word in node.args:
        name, eq, value = word.partition("=")
        if not name:
            ctx.error(node, "ARG names can not be blank", word)
            ok = False
        elif _ARG_NAME.match(name) is None and not any(c in name for c in "$'\"\\"):
            ctx.error(node, f"invalid ARG name {name!r}: use letters, digits, _, - and ., "
                      "not starting with a digit", word)
            ok = False
        out.append((name, value if eq else None))
    return Arg(tuple(out), node.original, node.loc) if ok else None


def _pairs(node: Node, ctx: Ctx, instr: str) -> tuple[tuple[str, str], ...] | None:
    ok = _no_flags(node, ctx, instr)
    args = node.args
    if not args:
        ctx.error(node, f"{instr} requires at least one argument")
        return None
    if len(args) % 3:
        ctx.error(node, f"{instr}: malformed key/value arguments")
        return None
    out = []
    for i in range(0, len(args), 3):
        key = args[i]
        if not key:
            ctx.error(node, f"{instr} names can not be blank", "=" + args[i + 1])
            ok = False
        out.append((key, args[i + 1]))
    return tuple(out) if ok else None


def _parse_env(node: Node, ctx: Ctx) -> Env | None:
    pairs = _pairs(node, ctx, "ENV")
    return None if pairs is None else Env(pairs, node.original, node.loc)


def _parse_label(node: Node, ctx: Ctx) -> Label | None:
    pairs = _pairs(node, ctx, "LABEL")
    return None if pairs is None else Label(pairs, node.original, node.loc)


def _parse_expose(node: Node, ctx: Ctx) -> Expose | None:
    ok = _no_flags(node, ctx, "EXPOSE")
    if not node.args:
        ctx.error(node, "EXPOSE requires at least one argument")
        return None
    for port in node.args:
        if "$" not in port and parse_port_spec(port) is None:
            ctx.error(node, f"invalid EXPOSE port {port!r}: expected PORT[-PORT][/tcp|udp|sctp]",
                      port)
            ok = False
    return Expose(node.args, node.original, node.loc) if ok else None


def _parse_user(node: Node, ctx: Ctx) -> User | None:
    v = _exactly_one(node, ctx, "USER")
    return None if v is None else User(v, node.original, node.loc)


def _parse_workdir(node: Node, ctx: Ctx) -> Workdir | None:
    v = _exactly_one(node, ctx, "WORKDIR")
    return None if v is None else Workdir(v, node.original, node.loc)


def _parse_maintainer(node: Node, ctx: Ctx) -> Maintainer | None:
    v = _exactly_one(node, ctx, "MAINTAINER")
    return None if v is None else Maintainer(v, node.original, node.loc)


def _parse_stopsignal(node: Node, ctx: Ctx) -> Stopsignal | None:
    v = _exactly_one(node, ctx, "STOPSIGNAL")
    if v is None:
        return None
    if "$" not in v and not check_signal(v):
        ctx.error(node, f"invalid STOPSIGNAL {v!r}: expected a signal name or number", v)
        return None
    return Stopsignal(v, node.original, node.loc)


def _parse_volume(node: Node, ctx: Ctx) -> Volume | None:
    ok = _no_flags(node, ctx, "VOLUME")
    if not node.args:
        ctx.error(node, "VOLUME requires at least one argument")
        return None
    paths = tuple(p.strip() for p in node.args)
    if "" in paths:
        ctx.error(node, "VOLUME specified can not be an empty string")
        return None
    return Volume(paths, node.original, node.loc) if ok else None


def _parse_shell(node: Node, ctx: Ctx) -> Shell | None:
    ok = _no_flags(node, ctx, "SHELL")
    if not node.json:
        ctx.error(node, "SHELL requires the arguments to be in JSON form, like "
                  '["/bin/sh", "-c"]', node.args[0] if node.args else "")
        return None
    if not node.args:
        ctx.error(node, "SHELL requires at least one argument")
        return None
    return Shell(node.args, node.original, node.loc) if ok else None


def _parse_healthcheck(node: Node, ctx: Ctx) -> Healthcheck | None:
    args = node.args
    if not args:
        ctx.error(node, "HEALTHCHECK requires at least one argument (CMD … or NONE)")
        return None
    typ = args[0].upper()
    if typ == "NONE":
        if len(args) > 1:
            ctx.error(node, "HEALTHCHECK NONE takes no arguments", args[1])
            return None
        if node.flags:
            ctx.error(node, "HEALTHCHECK NONE takes no flags", node.flags[0])
            return None
        return Healthcheck(None, original=node.original, loc=node.loc)
    probs: Problems = []
    flags = parse_flags(node.flags, _HEALTH_FLAGS, "HEALTHCHECK", probs) if node.flags else _EMPTY
    if typ != "CMD":
        probs.append((f"unknown type {args[0]!r} in HEALTHCHECK (try CMD or NONE)", (args[0],)))
    elif len(args) < 2:
        probs.append(("missing command after HEALTHCHECK CMD", (args[0],)))
    durations: list[int | None] = []
    for name in ("interval", "timeout", "start-period", "start-interval"):
        raw = flags.get(name)
        if raw is None or raw == "":
            durations.append(None)
            continue
        d = parse_duration(raw)  # type: ignore[arg-type]
        if d is None:
            probs.append((f"invalid duration {raw!r} for --{name} (like 30s, 1m30s, 500ms)",
                          (f"--{name}=",)))
        elif d != 0 and d < _MIN_INTERVAL:
            probs.append((f"--{name} cannot be less than 1ms", (f"--{name}=",)))
        durations.append(d)
    retries = None
    raw = flags.get("retries")
    if raw:
        retries = parse_go_int(raw, 32)  # type: ignore[arg-type]
        if retries is None:
            probs.append((f"invalid --retries value {raw!r}: expected a whole number",
                          ("--retries=",)))
        elif retries < 0:
            probs.append((f"--retries cannot be negative ({retries})", ("--retries=",)))
    if probs:
        ctx.problems(node, probs)
        return None
    cmd_args = args[1:]
    test: ShellOrExec = (ExecForm(cmd_args) if node.json
                         else ShellForm(" ".join(cmd_args)))
    return Healthcheck(test, *durations, retries, node.original, node.loc)


def _parse_onbuild(node: Node, ctx: Ctx) -> Onbuild | None:
    ok = _no_flags(node, ctx, "ONBUILD")
    inner = node.onbuild
    if inner is None and node.args:
        inner = Node(node.args[0].lower(), node.args[1:], original=" ".join(node.args),
                     loc=node.loc)
    if inner is None:
        ctx.error(node, "ONBUILD requires at least one argument")
        return None
    if inner.loc is None:
        inner = Node(inner.name, inner.args, inner.flags, inner.heredocs, inner.json,
                     inner.onbuild, inner.original, node.loc)
    name = inner.name.lower()
    if name == "onbuild":
        ctx.error(inner, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        return None
    if name in ("from", "maintainer"):
        ctx.error(inner, f"{name.upper()} isn't allowed as an ONBUILD trigger")
        return None
    trigger = parse_node(inner, ctx)
    if trigger is None or not ok:
        return None
    expr = node.original.lstrip()
    if expr[:7].lower() == "onbuild":
        expr = expr[7:].lstrip()
    for h in node.heredocs or inner.heredocs:
        expr += "\n" + h.content + h.name
    return Onbuild(trigger, expr, node.original, node.loc)


PARSERS = {
    "from": _parse_from, "run": _parse_run, "cmd": _parse_cmd, "entrypoint": _parse_entrypoint,
    "copy": _parse_copy, "add": _parse_add, "arg": _parse_arg, "env": _parse_env,
    "label": _parse_label, "expose": _parse_expose, "user": _parse_user,
    "workdir": _parse_workdir, "volume": _parse_volume, "stopsignal": _parse_stopsignal,
    "healthcheck": _parse_healthcheck, "shell": _parse_shell, "onbuild": _parse_onbuild,
    "maintainer": _parse_maintainer,
}


def parse_node(node: Node, ctx: Ctx) -> Instruction | None:
    parser = PARSERS.get(node.name)
    if parser is None:
        parser = PARSERS.get(node.name.lower())
    if parser is None:
        upper = node.name.upper()
        ctx.error(node, f"unknown instruction: {upper}"
                  + suggest(upper, [k.upper() for k in PARSERS]))
        return None
    return parser(node, ctx)  # type: ignore[operator]
