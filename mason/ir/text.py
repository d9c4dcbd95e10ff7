"""The text form of the IR: one op per line, for tests, golden files and ``--print-after``.

    %0 = source "docker-image://docker.io/library/busybox:latest" @linux/amd64 constraints=[]
    %1 = exec %0 ["/bin/sh","-c","make"] env=["PATH=/bin"] cwd="/src" rmstubs …
         mounts=[/:%0 →0, /root/.cache:cache(id="x",locked)] @linux/amd64
    %2 = file %1 [mkdir(%1) "/a" 0o755 parents, mkfile($0) "/a/b" 0o644 data="x" →0]
    %3 = config %2 "EXPOSE 80/tcp" add(ExposedPorts,{"80/tcp":{}})
    output default = %3 config={"config":{…}}

Ops are numbered in topological order (inputs first, outputs in order), one number per digest
(ops are their digest: two equal objects print once). Every field that
changes an op's bytes is shown (defaults omitted), so golden tests catch any change; metadata
and source locations are left out unless asked for. Deterministic and iterative.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import fields
from typing import Any

from mason.ir.ops import (
    CacheSharing,
    ChownOpt,
    ConfigOp,
    Copy,
    DiffOp,
    ExecOp,
    FileAction,
    FileOp,
    MergeOp,
    Mount,
    MountType,
    NetMode,
    Op,
    Platform,
    Ref,
    SecurityMode,
    SourceOp,
    UserOpt,
    walk_ops,
)

__all__ = ["format_graph", "format_op"]

_BARE = re.compile(r"[A-Za-z0-9_./@+-]+")


def _j(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _q(s: str) -> str:
    """A path bare when unambiguous, else JSON-quoted."""
    return s if _BARE.fullmatch(s) else _j(s)


def _bytes(b: bytes) -> str:
    try:
        return _j(b.decode("utf-8"))
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(b).decode()


def _val(name: str, v: Any) -> str:
    if isinstance(v, bool):
        return _j(v)
    if isinstance(v, int) and name == "mode" and v >= 0:
        return oct(v)
    if hasattr(v, "name") and hasattr(v, "value") and isinstance(v, int):  # IntEnum
        return v.name.lower()
    if isinstance(v, bytes):
        return _bytes(v)
    if isinstance(v, str):
        return _j(v)
    if isinstance(v, tuple):
        return "[" + ",".join(_val(name, x) for x in v) + "]"
    if hasattr(v, "__dataclass_fields__"):
        return _generic(v)
    return repr(v)


def _rest(obj: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Non-default fields of a dataclass value as ``name=value`` (true bools as bare names)."""
    out = []
    for f in fields(obj):
        if f.name in skip:
            continue
        v = getattr(obj, f.name)
        if v == f.default:
            continue
        if v is True:
            out.append(f.name)
        else:
            out.append(f"{f.name}={_val(f.name, v)}")
    return out


def _generic(obj: Any) -> str:
    return f"{type(obj).__name__}({','.join(_rest(obj))})"


def _platform(p: Platform) -> str:
    s = f"@{p.os}/{p.architecture}"
    if p.variant:
        s += f"/{p.variant}"
    extra = []
    if p.os_version:
        extra.append(f"os_version={_j(p.os_version)}")
    if p.os_features:
        extra.append(f"os_features={_j(list(p.os_features))}")
    return s + ("{" + ",".join(extra) + "}" if extra else "")


class _Namer:
    def __init__(self) -> None:
        self.num: dict[int, int] = {}

    def ref(self, r: Ref) -> str:
        n = f"%{self.num[id(r.op)]}"
        return n if r.index == 0 else f"{n}:{r.index}"


def _user(u: UserOpt | None, name_of: Any = str) -> str:
    if u is None:
        return "-"
    if u.name is not None:
        return f"{_q(u.name)}@{name_of(u.name_input)}"
    if u.id is not None:
        return str(u.id)
    return "?"


def _owner(o: ChownOpt, name_of: Any) -> str:
    return f"owner={_user(o.user, name_of)}:{_user(o.group, name_of)}"


def _mount(m: Mount, ins: list[str]) -> str:
    src = "scratch" if m.input == -1 else (ins[m.input] if 0 <= m.input < len(ins) else f"?{m.input}")
    mt = m.mount_type
    parts = [f"{_q(m.dest)}:"]
    opt_of = {MountType.TMPFS: m.tmpfs, MountType.CACHE: m.cache, MountType.SECRET: m.secret, MountType.SSH: m.ssh}
    if mt == MountType.BIND:
        parts[0] += src
    else:
        name = mt.name.lower() if isinstance(mt, MountType) else f"type{mt}"
        opt = opt_of.get(mt)
        if opt is not None:
            inner = _rest(opt, skip=("sharing",))
            if mt == MountType.CACHE:
                sh = opt.sharing  # type: ignore[union-attr]
                inner.append(sh.name.lower() if isinstance(sh, CacheSharing) else f"sharing={sh}")
            name += "(" + ",".join(inner) + ")"
        parts[0] += name
        if m.input != -1:
            parts.append(f"from={src}")
    for t, opt in opt_of.items():
        if opt is not None and t != mt:
            parts.append(f"+{t.name.lower()}:{_generic(opt)}")
    if m.selector:
        parts.append(f"sel={_j(m.selector)}")
    if m.readonly:
        parts.append("ro")
    if mt in (MountType.SECRET, MountType.SSH):
        if m.output not in (0, -1):  # 0 (unset, as BuildKit writes it) or -1: no output either way
            parts.append(f"output={m.output}")
    elif m.output >= 0:
        parts.append(f"→{m.output}")
    elif m.output != -1:
        parts.append(f"output={m.output}")
    if m.result_id:
        parts.append(f"result_id={_j(m.result_id)}")
    if m.content_cache:
        parts.append(f"content_cache={_val('', m.content_cache)}")
    return " ".join(parts)


def _exec(op: ExecOp, ins: list[str]) -> list[str]:
    m = op.meta
    out = [_j(list(m.args))]
    if m.env:
        out.append(f"env={_j(list(m.env))}")
    if m.cwd:
        out.append(f"cwd={_j(m.cwd)}")
    if m.user:
        out.append(f"user={_j(m.user)}")
    if m.remove_mount_stubs_recursive:
        out.append("rmstubs")
    out += _rest(m, skip=("args", "env", "cwd", "user", "remove_mount_stubs_recursive"))
    out.append("mounts=[" + ", ".join(_mount(x, ins) for x in op.mounts) + "]")
    if op.network != NetMode.UNSET:
        out.append(f"network={_val('', op.network)}")
    if op.security != SecurityMode.SANDBOX:
        out.append(f"security={_val('', op.security)}")
    out += _rest(op, skip=("meta", "mounts", "network", "security", "inputs", "platform", "constraints",
                           "metadata", "loc"))
    return out


def _action(k: int, a: FileAction, ins: list[str]) -> str:
    def name(i: int) -> str:
        if i == -1:
            return "scratch"
        if 0 <= i < len(ins):
            return ins[i]
        return f"${i - len(ins)}"

    x = a.action
    head = f"{x.kind}({name(a.input)}"
    if a.secondary_input != -1 or isinstance(x, Copy):
        head += f", {name(a.secondary_input)}"
    head += ")"
    out = [head]
    if isinstance(x, Copy):
        out += [_j(x.src), _j(x.dest)]
        skip = ("src", "dest", "owner")
    elif x.kind == "symlink":
        out += [_j(x.oldpath), _j(x.newpath)]  # type: ignore[union-attr]
        skip = ("oldpath", "newpath", "owner")
    else:
        out.append(_j(x.path))  # type: ignore[union-attr]
        skip = ("path", "owner")
        if x.kind in ("mkfile", "mkdir"):
            out.append(oct(x.mode) if x.mode >= 0 else f"mode={x.mode}")  # type: ignore[union-attr]
            skip += ("mode",)
        if x.kind == "mkfile":
            out.append(f"data={_bytes(x.data)}")  # type: ignore[union-attr]
            skip += ("data",)
    owner = getattr(x, "owner", None)
    if owner is not None:
        out.append(_owner(owner, name))
    for f in fields(x):
        if f.name in skip:
            continue
        v = getattr(x, f.name)
        if v == f.default:
            continue
        if v is True:
            out.append(f.name)
        elif f.name in ("mode", "timestamp") and v == -1:
            out.append(f"{f.name}=-1")
        else:
            out.append(f"{f.name}={_val(f.name, v)}")
    # BuildKit's Copy defaults are -1; show explicit 0s etc. via the loop above.
    if a.output >= 0:
        out.append(f"→{a.output}")
    elif a.output != -1:
        out.append(f"output={a.output}")
    return " ".join(out)


def format_op(op: Op, ins: list[str]) -> str:
    """One op's line after ``%N = `` (``ins`` = the display names of its inputs)."""
    parts = [op.kind]
    if ins:
        parts.append(", ".join(ins))
    t = type(op)
    if t is SourceOp:
        parts.append(_j(op.identifier))
        if op.attrs:
            parts.append("{" + ", ".join(f"{_j(k)}: {_j(v)}" for k, v in op.attrs) + "}")
    elif t is ExecOp:
        parts += _exec(op, ins)
    elif t is FileOp:
        parts.append("[" + ", ".join(_action(k, a, ins) for k, a in enumerate(op.actions)) + "]")
    elif t is MergeOp:
        if op.merge_inputs != tuple(range(len(ins))):
            parts.append(f"order={_j(list(op.merge_inputs))}")
    elif t is DiffOp:
        for label, v in (("lower", op.lower), ("upper", op.upper)):
            if v is None:
                parts.append(f"{label}=none")
            else:
                parts.append(f"{label}=" + ("scratch" if v == -1 else ins[v] if 0 <= v < len(ins) else f"?{v}"))
    elif t is ConfigOp:
        parts.append(_j(op.created_by))
        for c in op.changes:
            parts.append(f"{c.action}({c.key},{c.value})" if c.action in ("set", "add", "append")
                         else f"{c.action}({c.key}={_j(c.value)})")
    if op.platform is not None:
        parts.append(_platform(op.platform))
    if op.constraints is not None:
        parts.append(f"constraints={_j(list(op.constraints))}")
    return " ".join(parts)


def _meta_comment(op: Op) -> str:
    md = op.metadata
    bits = _rest(md)
    if op.loc is not None:
        bits.append(f"loc={op.loc}")
    return ("  # " + " ".join(bits)) if bits else ""


def format_graph(graph_or_ref: Any, *, metadata: bool = False) -> str:
    """The text form of a Graph, DecodedDefinition, Ref or Op (trailing newline included).
    With ``metadata``, each op's OpMetadata and source location follow as a ``#`` comment."""
    from mason.ir.graph import Graph, Output

    g = graph_or_ref
    if isinstance(g, Op):
        g = Graph((Output("default", Ref(g, 0)),))
    elif isinstance(g, Ref):
        g = Graph((Output("default", g),))
    elif not isinstance(g, Graph) and hasattr(g, "graph"):
        g = g.graph
    namer = _Namer()
    lines = []
    by_digest: dict[str, int] = {}
    for op in walk_ops(o.ref.op for o in g.outputs):
        dg = op.digest
        if dg in by_digest:  # the same op (by identity) as another object: one line
            namer.num[id(op)] = by_digest[dg]
            continue
        i = by_digest[dg] = len(by_digest)
        namer.num[id(op)] = i
        ins = [namer.ref(r) for r in op.inputs]
        line = f"%{i} = {format_op(op, ins)}"
        if metadata:
            line += _meta_comment(op)
        lines.append(line)
    for o in g.outputs:
        line = f"output {_q(o.name)} = {namer.ref(o.ref)}"
        if o.image_config is not None:
            line += " config=" + json.dumps(o.image_config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        lines.append(line)
    return "\n".join(lines) + "\n"
