"""Corpus equality: mason's ``-O1`` lowering of each ``buildkit-llb-v0.32/NAME.Dockerfile`` equals
what BuildKit v0.32.2 wrote (``NAME.llb``, made by df2llb) op for op, and its image config equals
``NAME.image.json``. (v0.11.6's ``buildkit-llb/`` differs since: FileOps carry a platform there.)
With a fixed resolver the same Definitions are reproduced byte for byte by
tests/conformance/test_conformance.py; this test takes the real registry path.

Both Definitions are decoded with mason's codec and normalized into a structural form, compared
from the result: every op becomes a dict whose inputs are the normalized forms of the input ops.
Normalization, exactly: OpMetadata ignored; the ``local.unique`` attr dropped; ``docker-image://``
identifiers without tag and digest pin, the registry host normalized; ``PATH=`` entries left out
of exec env; exec mounts sorted by destination (mount and file-action inputs name the input op's
normalized form, so input order does not matter). Everything else must match. The first
difference is printed as a path into the structure.

Runs against the session's real registry (the corpus's ``127.0.0.1:5000`` FROM lines are pointed
at it) with mason's registry resolver.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from mason.driver import LowerRequest, lower_request
from mason.ir.codec import decode_definition, encode_graph
from mason.ir.ops import ExecOp, FileOp, Op, SourceOp

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32"
NAMES = sorted(p.name[: -len(".Dockerfile")] for p in CORPUS.glob("*.Dockerfile"))
CORPUS_HOST = "127.0.0.1:5000"

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- normalization

def _image_ident(ident: str, hosts: tuple[str, ...]) -> str:
    name = ident[len("docker-image://"):]
    name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    for h in hosts:
        if name.startswith(h + "/"):
            name = "REGISTRY/" + name[len(h) + 1:]
    return "docker-image://" + name


def _value(v: Any) -> Any:
    if hasattr(v, "__dataclass_fields__"):
        return {f.name: _value(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "name") and isinstance(v, int) and not isinstance(v, bool):
        return v.name
    return v


class Normalizer:
    def __init__(self, hosts: tuple[str, ...]):
        self.hosts = hosts
        self.memo: dict[int, dict] = {}

    def ref(self, op: Op, index: int) -> dict:
        return {"op": self.op(op), "index": index}

    def op(self, op: Op) -> dict:
        hit = self.memo.get(id(op))
        if hit is not None:
            return hit
        out: dict[str, Any] = {"kind": op.kind, "platform": _value(op.platform),
                               "constraints": _value(op.constraints)}
        ins = op.inputs

        def named(i: int, k: int | None = None) -> Any:
            if i == -1:
                return "scratch"
            if 0 <= i < len(ins):
                return self.ref(ins[i].op, ins[i].index)
            return {"action": i - len(ins)}

        if isinstance(op, SourceOp):
            ident = op.identifier
            if ident.startswith("docker-image://"):
                ident = _image_ident(ident, self.hosts)
            out["identifier"] = ident
            out["attrs"] = {k: v for k, v in op.attrs if k != "local.unique"}
        elif isinstance(op, ExecOp):
            meta = _value(op.meta)
            meta["env"] = [e for e in meta["env"] if not e.startswith("PATH=")]
            out["meta"] = meta
            mounts = []
            for m in sorted(op.mounts, key=lambda m: m.dest):
                d = _value(m)
                d["input"] = named(m.input)
                mounts.append(d)
            out["mounts"] = mounts
            for f in ("network", "security", "secret_env", "cdi_devices"):
                out[f] = _value(getattr(op, f))
        elif isinstance(op, FileOp):
            acts = []
            for a in op.actions:
                d = _value(a.action)
                d["kind"] = a.action.kind
                for key in ("owner",):
                    own = getattr(a.action, key, None)
                    if own is not None:
                        od = _value(own)
                        for side in ("user", "group"):
                            u = getattr(own, side)
                            if u is not None and u.name is not None:
                                od[side]["name_input"] = named(u.name_input)
                        d[key] = od
                acts.append({"input": named(a.input), "secondary_input": named(a.secondary_input),
                             "output": a.output, "action": d})
            out["actions"] = acts
        else:
            out["inputs"] = [self.ref(r.op, r.index) for r in ins]
            for f in fields(op):
                if f.name not in ("inputs", "platform", "constraints", "metadata", "loc"):
                    out[f.name] = _value(getattr(op, f.name))
        self.memo[id(op)] = out
        return out


def first_difference(a: Any, b: Any, path: str = "result") -> str | None:
    if type(a) is not type(b):
        return f"{path}: mason {a!r} != buildkit {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: mason {a.get(k, '<absent>')!r} != buildkit {b.get(k, '<absent>')!r}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: mason has {len(a)} items, buildkit {len(b)}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b:
        return f"{path}: mason {a!r} != buildkit {b!r}"
    return None


# ---------------------------------------------------------------- the test

def _lower(name: str, registry_host: str, tmp_path: Path):
    text = (CORPUS / f"{name}.Dockerfile").read_text()
    text = re.sub(re.escape(CORPUS_HOST), registry_host, text)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(text)
    (ctx / "hello.txt").write_text("hello\n")
    return lower_request(LowerRequest(context=str(ctx), level=1,
                                      platform="linux/amd64"))


def test_corpus_names() -> None:
    assert NAMES == ["argenv", "cachemount", "metadata", "multistage", "simple"], NAMES


def test_comparison_sees_differences() -> None:
    """The normalization must not hide real differences (a check of the checker)."""
    defs = {n: decode_definition((CORPUS / f"{n}.llb").read_bytes()) for n in NAMES}
    norm = {n: Normalizer((CORPUS_HOST,)).ref(d.ref.op, d.ref.index) for n, d in defs.items()}
    for a in NAMES:
        for b in NAMES:
            assert (first_difference(norm[a], norm[b]) is None) == (a == b), (a, b)
    d = first_difference(norm["simple"], norm["multistage"])
    assert d is not None and d.startswith("result.op"), d


@pytest.mark.parametrize("name", NAMES)
def test_lower_matches_buildkit(name: str, registry, busybox_image, tmp_path: Path) -> None:
    result = _lower(name, registry.host, tmp_path)
    assert [o.name for o in result.graph.outputs] == ["default"]
    ours = decode_definition(encode_graph(result.graph)[0])
    theirs = decode_definition((CORPUS / f"{name}.llb").read_bytes())
    hosts = (registry.host, CORPUS_HOST)
    a = Normalizer(hosts).ref(ours.ref.op, ours.ref.index)
    b = Normalizer(hosts).ref(theirs.ref.op, theirs.ref.index)
    diff = first_difference(a, b)
    assert diff is None, f"{name}: first difference at {diff}"


@pytest.mark.parametrize("name", NAMES)
def test_image_config_matches_buildkit(name: str, registry, busybox_image, tmp_path: Path) -> None:
    result = _lower(name, registry.host, tmp_path)
    want = json.loads((CORPUS / f"{name}.image.json").read_text())
    cfg = result.image_config
    assert cfg is not None
    # the corpus was lowered on base-image-config.json, this build on the session's busybox: a
    # field the Dockerfile left as the base had it is the session base's here
    corpus_base = json.loads((CORPUS / "base-image-config.json").read_text())["config"]
    session_base = busybox_image.info.config.get("config") or {}
    want_config = {k: v for k, v in want["config"].items() if corpus_base.get(k) != v}
    for k in set(session_base) | set(corpus_base):
        if k in session_base and (k not in want["config"] or want["config"][k] == corpus_base.get(k)):
            want_config[k] = session_base[k]
    diff = first_difference(cfg["config"], want_config, "config")
    assert diff is None, f"{name}: {diff}"
    base = len(busybox_image.info.config.get("history") or ())
    ours = [{"created_by": h["created_by"], "empty_layer": h.get("empty_layer", False),
             "comment": h.get("comment")} for h in cfg["history"][base:]]
    theirs = [{"created_by": h["created_by"], "empty_layer": h.get("empty_layer", False),
               "comment": h.get("comment")} for h in want["history"]
              if h.get("comment") == "buildkit.dockerfile.v0"]
    diff = first_difference(ours, theirs, "history")
    assert diff is None, f"{name}: {diff}"
