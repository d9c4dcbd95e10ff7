"""Cache-miss explanations (``mason build --explain``): why each step that ran did not hit the
cache, compared with the last build of the same target.

Every solve stores a compact **key manifest** (:meth:`.store.ResultStore.put_manifest`), one
entry per step:

* ``n``, ``name``, ``kind``, ``status`` (``ran`` / ``cached`` / ``loaded`` / ``unused``),
  ``key`` (short), ``nocache`` (the step ignored the cache);
* ``op`` — a short hash of the op's own bytes (inputs taken out);
* ``in`` — per input: the step number it comes from, its key (or, for a ``local://`` input,
  the checksum of what the step selects from it), and the per-path digests of that selection
  (kind, mode, a 12-hex-digit content digest — enough to name a file, never its content);
* for exec steps: the command, cwd and user, and every env variable's value, each as a keyed
  hash (a secret of the state root, :meth:`.solver.Solver.salt`: values may be secrets, so
  they are never stored in clear); ``args`` — the names of the build args in scope (from the
  Dockerfile lowering's ``mason.args`` description), so an env change can be called a build-arg
  change;
* for sources: what they pinned (an image's manifest digest, a context's checksum).

:func:`explain` compares two manifests and prints, e.g.::

    #7 [build 4/6] RUN make: changed file src/main.c (sha256 a1b2c3d4e5f6… → 0f9e8d7c6b5a…)
    #5 [2/3] RUN echo $VERSION: build arg VERSION changed
    #1 [1/3] FROM docker.io/library/busybox: base image digest changed (sha256:… → sha256:…)
    #9 [5/6] RUN make test: parent step #7 changed
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from collections.abc import Iterable, Sequence

from mason.backends.solver.cachekey import strip_inputs
from mason.ir.ops import ExecOp, Op, SourceOp

ARGS_KEY = "mason.args"
MAX_FILES = 5


def _h(salt: bytes, value: str | Sequence[str]) -> str:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else \
        b"\0".join(v.encode("utf-8", "surrogateescape") for v in value)
    return hmac.new(salt, data, hashlib.sha256).hexdigest()[:16]


def _short_key(key: str) -> str:
    return key.split(":", 1)[-1][:16]


def step_entry(n: int, name: str, op: Op, key: str, inputs: Iterable[tuple[int, str, object]],
               source_digest: str | None, status: str, salt: bytes, nocache: bool = False) -> dict:
    """One step's manifest entry. ``inputs``: (step number, key, Selection or None) per op input."""
    e: dict = {"n": n, "name": name, "kind": op.kind, "status": status, "key": _short_key(key),
               "op": hashlib.sha256(strip_inputs(op.bytes)).hexdigest()[:16]}
    if nocache:
        e["nocache"] = True
    ins = []
    for num, k, sel in inputs:
        if sel is not None:
            ins.append([num, "content:" + _short_key(sel.checksum), sel.files])
        else:
            ins.append([num, _short_key(k), None])
    if ins:
        e["in"] = ins
    if isinstance(op, ExecOp):
        m = op.meta
        e["cmd"] = _h(salt, m.args)
        e["cwd"] = _h(salt, m.cwd)
        e["user"] = _h(salt, m.user)
        env = {}
        for kv in m.env:
            k, _, v = kv.partition("=")
            env[k] = _h(salt, v)
        e["env"] = env
    args = op.metadata.describe(ARGS_KEY)
    if args:
        e["args"] = args.split(",")
    if isinstance(op, SourceOp):
        e["src"] = op.identifier
        if source_digest:
            e["digest"] = source_digest
    return e


def encode(manifest: list[dict]) -> bytes:
    return zlib.compress(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode(), 1)


def decode(data: bytes) -> list[dict]:
    return json.loads(zlib.decompress(data))


def fingerprint(manifest: list[dict]) -> str:
    """What makes two manifests the same for explaining: the steps, their keys, what sources
    pinned (not whether steps ran or hit)."""
    h = hashlib.sha256()
    for e in manifest:
        h.update(f"{e['n']}\0{e['name']}\0{e['key']}\0{e.get('digest', '')}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# -- comparing ----------------------------------------------------------------------------------

def _match(prev: list[dict]) -> tuple[dict, dict]:
    by_name: dict[str, list[dict]] = {}
    for e in prev:
        by_name.setdefault(e["name"], []).append(e)
    return by_name, {e["n"]: e for e in prev}


def _find(e: dict, by_name: dict, by_n: dict) -> dict | None:
    cands = by_name.get(e["name"])
    if cands:
        if len(cands) == 1:
            return cands[0]
        for c in cands:
            if c["n"] == e["n"]:
                return c
        return cands[0]
    c = by_n.get(e["n"])
    if c is not None and c["kind"] == e["kind"]:
        return c
    return None


def _files_diff(old: dict, new: dict) -> list[str]:
    out: list[str] = []
    for p in sorted(set(old) | set(new)):
        a, b = old.get(p), new.get(p)
        if a == b:
            continue
        if a is None or a == "missing":
            out.append(f"added file {p}")
        elif b is None or b == "missing":
            out.append(f"removed file {p}")
        else:
            ka, _, ca = a.partition(":")
            kb, _, cb = b.partition(":")
            if ka != kb and ca == cb:
                out.append(f"mode of {p} changed ({ka[1:] or ka} → {kb[1:] or kb})")
            elif a[0] == "f" and b[0] == "f":
                out.append(f"changed file {p} (sha256 {ca}… → {cb}…)")
            else:
                out.append(f"changed {p}")
    if len(out) > MAX_FILES:
        out = out[:MAX_FILES] + [f"and {len(out) - MAX_FILES} more"]
    return out


def _exec_reasons(old: dict, new: dict) -> list[str]:
    out: list[str] = []
    if old.get("cmd") != new.get("cmd"):
        out.append("command changed")
    args = set(old.get("args") or ()) | set(new.get("args") or ())
    eo, en = old.get("env") or {}, new.get("env") or {}
    for k in sorted(set(eo) | set(en)):
        if eo.get(k) == en.get(k):
            continue
        what = "build arg" if k in args else "env"
        if k not in eo:
            out.append(f"{what} {k} added")
        elif k not in en:
            out.append(f"{what} {k} removed")
        else:
            out.append(f"{what} {k} changed")
    if old.get("cwd") != new.get("cwd"):
        out.append("working directory changed")
    if old.get("user") != new.get("user"):
        out.append("user changed")
    return out


def _reasons(old: dict, new: dict, by_n_new: dict) -> list[str]:
    out: list[str] = []
    if old["op"] != new["op"]:
        if new["kind"] == "exec":
            out += _exec_reasons(old, new) or ["instruction options changed (mounts, network, …)"]
        else:
            out.append("instruction changed")
    oi, ni = old.get("in") or [], new.get("in") or []
    if len(oi) != len(ni):
        out.append(f"inputs changed ({len(oi)} → {len(ni)})")
        return out
    for (_on, ok, of), (nn, nk, nf) in zip(oi, ni, strict=False):
        if ok == nk:
            continue
        if nf is not None and of is not None:
            out += _files_diff(of, nf) or ["selected files changed"]
            continue
        parent = by_n_new.get(nn)
        if parent is not None and parent["kind"] == "source" and parent.get("digest", "").startswith("sha256:") \
                and parent["src"].startswith("docker-image://"):
            out.append("base image changed")
        else:
            out.append(f"parent step #{nn} changed")
    return out


def explain(prev: list[dict] | None, cur: list[dict]) -> list[str]:
    """One line per step of ``cur`` that ran (and per base image whose digest changed), and
    per step an imported remote cache answered ("remote cache hit (REF)")."""
    lines: list[str] = []
    by_n_new = {e["n"]: e for e in cur}
    if prev is None:
        out = []
        for e in cur:
            if e["status"] == "ran":
                out.append(f"#{e['n']} {e['name']}: no earlier build of this target to compare with")
            elif e["status"] == "remote":
                out.append(f"#{e['n']} {e['name']}: remote cache hit ({e.get('remote', '?')})")
        return out
    by_name, by_n = _match(prev)
    for e in cur:
        if e["status"] == "remote":
            lines.append(f"#{e['n']} {e['name']}: remote cache hit ({e.get('remote', '?')})")
            continue
        if e["kind"] == "source":
            old = _find(e, by_name, by_n)
            if (old is not None and e["src"].startswith("docker-image://") and old.get("digest")
                    and e.get("digest") and old["digest"] != e["digest"]):
                lines.append(f"#{e['n']} {e['name']}: base image digest changed ({old['digest']} → {e['digest']})")
            continue
        if e["status"] != "ran":
            continue
        old = _find(e, by_name, by_n)
        if old is None:
            lines.append(f"#{e['n']} {e['name']}: new step (not in the last build of this target)")
            continue
        if e.get("nocache"):
            lines.append(f"#{e['n']} {e['name']}: cache disabled for this step (--no-cache, --no-cache-filter)")
            continue
        if old["key"] == e["key"]:
            lines.append(f"#{e['n']} {e['name']}: same cache key as the last build, but its result was not "
                         "in the cache (pruned, or that build did not finish it)")
            continue
        reasons = _reasons(old, e, by_n_new) or ["cache key changed"]
        lines.append(f"#{e['n']} {e['name']}: " + "; ".join(reasons))
    return lines


__all__ = ["step_entry", "encode", "decode", "fingerprint", "explain"]
