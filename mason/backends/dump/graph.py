"""The graph people look at: an LLB Definition as vertices (one per op, with its kind, a short
label, its stage and its fields) and labelled edges, ready for drawing (:mod:`.styled`,
:mod:`.svg`, :mod:`.html`); optionally annotated with a build's per-step results (status,
duration) and its critical path.

* **stage** — the Dockerfile stage an op belongs to, from its progress name's
  ``[stage k/n]`` prefix (``[linux/arm64 stage k/n]`` with a platform; BuildKit leaves the
  stage out of a one-stage Dockerfile: ``stage-0``), else mason's ``mason.stage`` description.
  ``[internal]`` steps (context loads) belong to no stage.
* **edge labels** — what the input feeds: an exec mount's destination (``/``, ``/mnt/deps ←
  /deps`` with a selector), a file action (``copy /out/a.txt → /final/``; the base of an action:
  ``mkdir /d``), a merge's layer number, a diff's ``lower``/``upper``.
* **fields** — the op as ``buildctl debug dump-llb`` prints it (``Op``, ``Digest``,
  ``OpMetadata``), for the HTML side panel.

Every string is passed through :func:`mason.ir.urls.redact_text`: a URL's credentials never
reach a drawing or a stored build graph.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from mason.backends.dump.dot import config_label, file_action_paths, op_kind
from mason.backends.dump.model import DumpedOp
from mason.ir.urls import redact_text

CUSTOM_NAME = "llb.customname"
STAGE_KEY = "mason.stage"
SHORT = 12  # hex digits of a short digest
GRAPH_VERSION = 1
GRAPH_FILE = "graph.json"  # a build record's attachment
MASKED = "****"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MIN_MASKED = 4  # shorter build-arg values ("1", "yes") would mask half the graph
MAX_EDGE_LABEL = 48

__all__ = ["GRAPH_FILE", "Vertex", "Edge", "BuildGraph", "graph_from_records", "graph_from_ir", "annotate",
           "StepResult", "short_digest", "stage_of_name"]


@dataclass
class Vertex:
    id: str  # the op's digest
    kind: str  # source, exec, file, merge, diff, build, config, terminal
    label: str  # what the op does, one line (its progress name without the [stage k/n] prefix)
    name: str = ""  # the progress name (llb.customname), if any
    stage: str | None = None
    fields: dict = field(default_factory=dict)  # dump-llb's JSON of the op
    # a build's result: "ran" | "cached" | "error" | "cancelled" | "running" | "not run"; None: no build
    status: str | None = None
    duration: float | None = None
    critical: bool = False


@dataclass
class Edge:
    src: str
    dst: str
    label: str = ""
    critical: bool = False


@dataclass
class BuildGraph:
    vertices: list[Vertex]
    edges: list[Edge]
    title: str = ""
    critical_seconds: float | None = None  # the critical path's length, once annotated

    def vertex(self, digest: str) -> Vertex:
        for v in self.vertices:
            if v.id == digest:
                return v
        raise KeyError(digest)

    def stages(self) -> list[str]:
        """The stages, in the order their first op appears."""
        out: list[str] = []
        for v in self.vertices:
            if v.stage is not None and v.stage not in out:
                out.append(v.stage)
        return out

    def short_ids(self) -> dict[str, str]:
        """digest → the shortest ``sha256:`` + hex prefix (at least :data:`SHORT` digits) that
        no other vertex shares."""
        n = SHORT
        while True:
            short = {v.id: short_digest(v.id, n) for v in self.vertices}
            if len(set(short.values())) == len(short) or n >= 64:
                return short
            n += 4

    # the stored form (a build record's graph.json)
    def to_json(self) -> dict:
        return {"version": GRAPH_VERSION, "title": self.title,
                "vertices": [{"id": v.id, "kind": v.kind, "label": v.label, "name": v.name, "stage": v.stage,
                              "fields": v.fields} for v in self.vertices],
                "edges": [{"src": e.src, "dst": e.dst, "label": e.label} for e in self.edges]}

    @classmethod
    def from_json(cls, o: object) -> "BuildGraph | None":
        """The graph stored by :meth:`to_json`; None if ``o`` is not of that shape."""
        if not isinstance(o, dict) or o.get("version") != GRAPH_VERSION:
            return None
        vs, es = o.get("vertices"), o.get("edges")
        if not isinstance(vs, list) or not isinstance(es, list):
            return None
        vertices: list[Vertex] = []
        for v in vs:
            if not (isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("id", "kind", "label", "name"))
                    and (v.get("stage") is None or isinstance(v.get("stage"), str))
                    and isinstance(v.get("fields"), dict)):
                return None
            vertices.append(Vertex(v["id"], v["kind"], v["label"], v["name"], v.get("stage"), v["fields"]))
        ids = {v.id for v in vertices}
        if len(ids) != len(vertices):
            return None
        edges: list[Edge] = []
        for e in es:
            if not (isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("src", "dst", "label"))
                    and e["src"] in ids and e["dst"] in ids):
                return None
            edges.append(Edge(e["src"], e["dst"], e["label"]))
        if _has_cycle(ids, edges):
            return None
        title = o.get("title")
        return cls(vertices, edges, title if isinstance(title, str) else "")


def _has_cycle(ids: set[str], edges: list[Edge]) -> bool:
    """Whether ``edges`` loop (Kahn's algorithm: some vertex never runs out of inputs)."""
    indeg = dict.fromkeys(ids, 0)
    outs: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        indeg[e.dst] += 1
        outs[e.src].append(e.dst)
    ready = [i for i, n in indeg.items() if n == 0]
    seen = 0
    while ready:
        x = ready.pop()
        seen += 1
        for d in outs[x]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    return seen != len(ids)


def short_digest(digest: str, n: int = SHORT) -> str:
    algo, sep, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if sep else digest[:n]


def stage_of_name(name: str) -> tuple[str | None, str]:
    """(stage, the name without its ``[…]`` prefix) of a progress name: ``[builder 2/3] RUN x``
    → ("builder", "RUN x"); ``[2/3] RUN x`` → ("stage-0", …); ``[linux/arm64 b 1/2] …`` →
    ("linux/arm64 b", …); ``[internal] load …`` and names without a prefix → (None, name)."""
    if not name.startswith("[") or "]" not in name:
        return None, name
    head, rest = name[1:name.index("]")], name[name.index("]") + 1:].strip()
    parts = head.split()
    if not parts or not _is_step_count(parts[-1]):
        return None, name
    stage = parts[:-1]
    if not stage or "/" in stage[-1]:  # no name (one-stage Dockerfile), maybe a platform
        stage = [*stage, "stage-0"]
    return " ".join(stage), rest


def _is_step_count(s: str) -> bool:
    a, sep, b = s.partition("/")
    return bool(sep) and a.isdigit() and b.isdigit()


def _clip(s: str, limit: int = MAX_EDGE_LABEL) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _op_label(r: DumpedOp, kind: str) -> str:
    """One line saying what the op does, when it has no progress name."""
    op = r.op
    if kind == "source":
        return op.source.identifier
    if kind == "exec":
        return " ".join(op.exec.meta.args)
    if kind == "file":
        return "; ".join(_action_text(a) for a in op.file.actions)
    if kind == "merge":
        return f"merge of {len(op.merge.inputs)}"
    if kind == "diff":
        return "diff"
    if kind == "build":
        return "build"
    if kind == "config":
        return config_label(op.config)
    return ""


def _action_text(a: Any) -> str:
    which, paths = file_action_paths(a)
    if not paths:
        return which or "action"
    shown = [p for _, p in paths]
    if which == "symlink":  # the link, then what it points to
        shown.reverse()
    return f"{which} " + " → ".join(shown)


def _edge_labels(r: DumpedOp, kind: str) -> list[str]:
    """One label per input of the op: what that input feeds."""
    op = r.op
    per: list[list[str]] = [[] for _ in op.inputs]

    def add(i: int, text: str) -> None:
        if 0 <= i < len(per) and text not in per[i]:
            per[i].append(text)

    if kind == "exec":
        for m in op.exec.mounts:
            if m.input >= 0:
                sel = m.selector if m.selector not in ("", "/") else ""
                add(m.input, m.dest + (f" ← {sel}" if sel else ""))
    elif kind == "file":
        for a in op.file.actions:
            which = a.WhichOneof("action")
            if which == "copy":
                add(a.secondaryInput, f"copy {a.copy.src} → {a.copy.dest}")
                add(a.input, f"copy into {a.copy.dest}")
            else:
                add(a.input, _action_text(a))
    elif kind == "merge":
        for k, mi in enumerate(op.merge.inputs):
            add(mi.input, f"layer {k + 1}")
    elif kind == "diff":
        add(op.diff.lower.input, "lower")
        add(op.diff.upper.input, "upper")
    out = []
    for texts in per:
        shown = [_clip(t) for t in texts[:2]] + ([f"+{len(texts) - 2} more"] if len(texts) > 2 else [])
        out.append(redact_text(", ".join(shown)))
    return out


def _redacted(o: Any) -> Any:
    if isinstance(o, str):
        return redact_text(o)
    if isinstance(o, list):
        return [_redacted(x) for x in o]
    if isinstance(o, dict):
        return {redact_text(k): _redacted(v) for k, v in o.items()}
    return o


def graph_from_records(records: Iterable[DumpedOp], title: str = "") -> BuildGraph:
    """The graph of dumper records (one per op, inputs before the ops using them or not)."""
    from mason.backends.dump.dumpjson import record_to_go

    vertices: list[Vertex] = []
    edges: list[Edge] = []
    seen: set[str] = set()
    records = list(records)
    known = {r.digest for r in records}
    # ops for several platforms (a multi-platform build): each platform's stages apart, as
    # BuildKit's progress names put them ([linux/arm64 builder 1/2])
    several = len({_platform(r.op) for r in records} - {""}) > 1
    plat_of: dict[str, str] = {}  # FileOps, MergeOps… carry none: they take their first input's
    for r in records:
        if r.digest in seen:
            continue
        seen.add(r.digest)
        kind = op_kind(r.op)
        desc = dict(r.metadata.description) if r.metadata is not None else {}
        name = redact_text(desc.get(CUSTOM_NAME, ""))
        stage, rest = stage_of_name(name)
        if stage is None and STAGE_KEY in desc and not name.startswith("[internal]"):
            s = desc[STAGE_KEY]
            stage = f"stage-{s}" if s.isdigit() else s
        plat = _platform(r.op) or next((plat_of[i.digest] for i in r.op.inputs if plat_of.get(i.digest)), "")
        plat_of[r.digest] = plat
        if several and stage is not None and plat and not stage.startswith(plat + " "):
            stage = f"{plat} {stage}"
        label = rest if name else _op_label(r, kind)
        vertices.append(Vertex(r.digest, kind, redact_text(" ".join(label.split())), name, stage,
                               _redacted(record_to_go(r))))
        for inp, lab in zip(r.op.inputs, _edge_labels(r, kind), strict=False):
            if inp.digest in known:
                edges.append(Edge(inp.digest, r.digest, lab))
    return BuildGraph(vertices, edges, title)


def _platform(op: Any) -> str:
    """``os/arch[/variant]`` of an op's platform constraint, or ""."""
    if not op.HasField("platform"):
        return ""
    p = op.platform
    return "/".join(x for x in (p.OS, p.Architecture, p.Variant) if x)


def graph_from_ir(graph: Any, names: Iterable[str] | None = None, *, mask_env: bool = False,
                  masked: Iterable[str] = ()) -> BuildGraph:
    """The graph of outputs ``names`` (default: all) of a :class:`mason.ir.graph.Graph`, each
    output's ref drawn as a terminal vertex. For what a build record keeps (build-arg names
    only): ``mask_env`` leaves out the values of RUN environments and the contents of files the
    build writes (a heredoc expands build args), and every string holding one of ``masked`` (of
    :data:`MIN_MASKED` characters or more) has it replaced by :data:`MASKED`."""
    from mason.backends.dump.model import op_digest, terminal_op
    from mason.ir.codec import metadata_to_pb, op_to_pb
    from mason.ir.ops import walk_ops

    wanted = list(names) if names is not None else list(graph.names())
    refs = [graph.output(n).ref for n in wanted]
    records = [DumpedOp(op.digest, op_to_pb(op), metadata_to_pb(op.metadata)) for op in walk_ops(r.op for r in refs)]
    for ref in refs:
        term = terminal_op(ref.op.digest, ref.index)
        records.append(DumpedOp(op_digest(term), term))
    g = graph_from_records(records, ", ".join(wanted))
    if mask_env:
        for v in g.vertices:
            body = v.fields.get("Op", {}).get("Op", {})
            meta = body.get("exec", {}).get("meta", {})
            if meta.get("env"):
                meta["env"] = [e.partition("=")[0] + "=" + MASKED for e in meta["env"]]
            for a in body.get("file", {}).get("actions", []):
                mk = a.get("Action", {}).get("mkfile")
                if isinstance(mk, dict) and "data" in mk:
                    mk["data"] = MASKED
    hide = sorted({m for m in masked if len(m) >= MIN_MASKED}, key=len, reverse=True)
    if hide:
        def mask(o: Any) -> Any:
            if isinstance(o, str):
                if _DIGEST.fullmatch(o):
                    return o  # a hash hides nothing and must stay whole
                for m in hide:
                    o = o.replace(m, MASKED)
                return o
            if isinstance(o, list):
                return [mask(x) for x in o]
            if isinstance(o, dict):
                return {mask(k): mask(x) for k, x in o.items()}
            return o

        for v in g.vertices:
            v.label, v.name, v.fields = mask(v.label), mask(v.name), mask(v.fields)
            v.stage = mask(v.stage) if v.stage is not None else None
        for e in g.edges:
            e.label = mask(e.label)
    return g


# -- a build's results --------------------------------------------------------------------------

@dataclass(frozen=True)
class StepResult:
    status: str  # done | cached | error | cancelled | running (a history StepRecord's status)
    duration: float | None = None


_STATUS = {"done": "ran", "cached": "cached", "error": "error", "cancelled": "cancelled", "running": "running"}


def annotate(g: BuildGraph, steps: Mapping[str, StepResult]) -> BuildGraph:
    """``g`` with each vertex's result (``steps``: by op digest) and the critical path marked:
    the chain of inputs with the largest sum of durations ending at a result (the steps that
    decided how long the build took; nothing is marked when nothing took time)."""
    for v in g.vertices:
        s = steps.get(v.id)
        if s is None:  # behind a cache hit (or after a failure); configs and results never run
            v.status, v.duration = ("not run" if v.kind not in ("terminal", "config") else None), None
        else:
            v.status = _STATUS.get(s.status, s.status)
            v.duration = 0.0 if s.status == "cached" else s.duration
    preds: dict[str, list[Edge]] = {v.id: [] for v in g.vertices}
    for e in g.edges:
        preds[e.dst].append(e)
    best: dict[str, tuple[float, Edge | None]] = {}

    def longest(d: str) -> float:
        # iterative post-order (deep chains must not hit the recursion limit)
        stack = [d]
        while stack:
            x = stack[-1]
            if x in best:
                stack.pop()
                continue
            todo = [e.src for e in preds[x] if e.src not in best]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            own = _dur(by_id[x])
            top: tuple[float, Edge | None] = (0.0, None)
            for e in preds[x]:
                if best[e.src][0] > top[0]:
                    top = (best[e.src][0], e)
            best[x] = (top[0] + own, top[1])
        return best[d][0]

    by_id = {v.id: v for v in g.vertices}
    end, length = None, 0.0
    for v in g.vertices:
        t = longest(v.id)
        if t > length or (t == length and t > 0):  # ties: the later vertex (the result)
            end, length = v.id, t
    g.critical_seconds = length
    while end is not None:
        by_id[end].critical = True
        via = best[end][1]
        if via is not None:
            via.critical = True
        end = via.src if via is not None else None
    return g


def _dur(v: Vertex) -> float:
    return v.duration if v.duration is not None and v.duration > 0 else 0.0


def dumps(g: BuildGraph) -> str:
    return json.dumps(g.to_json(), separators=(",", ":"), ensure_ascii=False)
