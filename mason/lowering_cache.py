"""The lowering cache: a rebuild whose lowering inputs are unchanged skips the frontend, the build
checks and the passes, and takes the Definition the last such lowering produced (issue 17).

A build's lowering is a pure function of what this module puts in the key — mason's own code
(every file of the frontends, passes, IR and driver and the package's top-level modules, by
path, size and mtime; the Python, lark and protobuf in use), the
host platform, the chosen frontend, the build file's path, name and text, the ``.dockerignore``
patterns, every field of the :class:`~mason.driver.LowerRequest` and of the
:class:`~mason.frontends.base.FrontendRequest` (build args, target, platform, named contexts and
their ignore patterns …) — and of the answers its image resolver gave. The answers cannot be
known before lowering, so an entry keeps the questions the lowering asked (reference and
platform) with a digest of each answer (the pinned ref, digests, platform, media type and the
whole config, or the error's text); a hit asks them again through the build's resolver and
is used only when every answer is the same. A lowering that holds a URL's credentials is not
kept (mason writes no credentials to disk). Anything else the lowering could depend on makes
the request uncacheable: only mason's built-in Dockerfile frontend is cached (a plugin's or a
frontend image's output is theirs), not with IR dumps or ``--verify-each``, and not when the
graph does not come back byte for byte from its encoding.

An entry is one file ``ROOT/lowering/<key>.llb``: the line ``mason-lowering-cache 1``, a
length-prefixed JSON header (the answers asked, warnings, stages, platforms, pipeline, build
checks) and the graph as a :func:`mason.ir.codec.write_stream` of Definitions. Entries are
written to a temporary name and renamed, read with every failure a miss, and the oldest go when
there are more than :data:`MAX_ENTRIES`. ``mason prune --all`` empties the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mason.ir.errors import MasonError
from mason.ir.resolver import PlatformSpec, ResolvedImage

__all__ = ["LoweringCache", "Deferred", "GraphRecords", "RecordingResolver", "CachedLowering", "CachedCheck",
           "MAX_ENTRIES", "DIRNAME", "code_fingerprint", "clear"]

MAGIC = b"mason-lowering-cache 1\n"
DIRNAME = "lowering"
MAX_ENTRIES = 64
_PACKAGE = Path(__file__).resolve().parent
_fingerprint: str | None = None
_fp_lock = threading.Lock()


class Uncacheable(Exception):
    """A value in the key that has no stable text (an object, not data)."""


def _canon(v: Any) -> Any:
    """``v`` as JSON data, the same for equal inputs (mappings sorted, tuples as lists)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, PlatformSpec):
        return str(v)
    if isinstance(v, Mapping):
        return [[_canon(k), _canon(x)] for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))]
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _canon(getattr(v, f.name)) for f in fields(v)}
    raise Uncacheable(type(v).__name__)


# the code a lowering runs: frontends and passes import only mason.ir (tests/test_layering.py),
# the driver chooses and calls them; the backends only answer the resolver, whose answers are
# checked on every hit
_LOWERING_CODE = ("frontends", "passes", "ir", "grammars", "driver")


def _stat_files(root: Path) -> list[list[Any]]:
    out = []
    for name in sorted(os.listdir(root)):  # the package's own modules (resolution, build_contexts, this one)
        if name.endswith(".py"):
            with contextlib.suppress(OSError):
                st = os.stat(root / name)
                out.append([name, st.st_size, st.st_mtime_ns])
    for sub in _LOWERING_CODE:
        out += _walk(root, root / sub)
    return out


def _walk(root: Path, top: Path) -> list[list[Any]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".marshal")):
                continue
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out.append([os.path.relpath(p, root), st.st_size, st.st_mtime_ns])
    return out


def _module_file(name: str) -> list[Any]:
    """Where an installed package's ``__init__`` is and its size/mtime (found, not imported)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return [name, None]
    origin = spec.origin if spec is not None else None
    if not origin:
        return [name, None]
    try:
        st = os.stat(origin)
    except OSError:
        return [name, origin]
    return [name, origin, st.st_size, st.st_mtime_ns]


def code_fingerprint() -> str:
    """A digest of the code a lowering runs: every file of the mason package's lowering side
    (:data:`_LOWERING_CODE` and the top-level modules; path, size, mtime), the interpreter,
    lark and protobuf. Computed once per process."""
    global _fingerprint
    with _fp_lock:
        if _fingerprint is None:
            parts = [sys.version, sys.implementation.cache_tag, str(_PACKAGE), _stat_files(_PACKAGE),
                     _module_file("lark"), _module_file("google.protobuf")]
            _fingerprint = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        return _fingerprint


def answer_digest(r: ResolvedImage) -> str:
    """What a lowering could read of a resolver's answer, as one digest."""
    obj = [r.ref, r.digest, r.manifest_digest, r.config_digest, str(r.platform) if r.platform else None,
           r.media_type, r.config]
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _error_digest(e: BaseException) -> str:
    return "error:" + hashlib.sha256(f"{type(e).__name__}\0{e}".encode()).hexdigest()


class RecordingResolver:
    """Wraps the resolver a lowering uses and keeps each question with a digest of its answer
    (errors too: a frontend may go on after one). ``exact`` turns false when an answer was
    something this module cannot compare."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.answers: list[tuple[str, str | None, str]] = []
        self.exact = True
        self._lock = threading.Lock()

    def resolve_image_config(self, ref: str, platform: PlatformSpec | None = None) -> ResolvedImage:
        plat = str(platform) if platform is not None else None
        try:
            r = self.inner.resolve_image_config(ref, platform)
        except MasonError as e:
            self._add(ref, plat, _error_digest(e))
            raise
        except BaseException:
            self.exact = False
            raise
        try:
            d = answer_digest(r)
        except (TypeError, ValueError, AttributeError):
            self.exact = False
            return r
        self._add(ref, plat, d)
        return r

    def _add(self, ref: str, plat: str | None, d: str) -> None:
        with self._lock:
            if (ref, plat, d) not in self.answers:
                self.answers.append((ref, plat, d))


@dataclass(frozen=True)
class CachedCheck:
    """A build-check warning as a build reports it (its text, rule and location)."""

    text: str
    rule: str
    where: str | None

    def format(self) -> str:
        return self.text

    @property
    def loc(self) -> str | None:
        return self.where


@dataclass(frozen=True)
class CachedLowering:
    """What a cached lowering gives back: the graph after the passes and the rest of what the
    build reports."""

    graph: Any  # mason.ir.graph.Graph
    warnings: tuple[str, ...]
    frontend: str
    pipeline: str
    stages: tuple[str, ...]
    checks: tuple[CachedCheck, ...]
    checks_failed: tuple[str, ...]


def _still_same(answers: Sequence[Sequence[Any]], resolver: Any) -> bool:
    for ref, plat, want in answers:
        platform = PlatformSpec.parse(plat) if plat is not None else None
        if platform is not None and str(platform) != plat:
            return False
        if resolver is None:
            return False
        try:
            got = answer_digest(resolver.resolve_image_config(ref, platform))
        except MasonError as e:
            got = _error_digest(e)
        if got != want:
            return False
    return True


class LoweringCache:
    """The cache under ``ROOT/lowering``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.dir = Path(root) / DIRNAME

    @staticmethod
    def key(**parts: Any) -> str | None:
        """The key of a lowering with these inputs (the caller passes every one), None when one
        of them is not plain data."""
        try:
            data = _canon({"code": code_fingerprint(), "host": str(PlatformSpec.default()), **parts})
        except Uncacheable:
            return None
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.llb"

    def get(self, key: str, resolver: Any) -> CachedLowering | None:
        """The entry for ``key`` when every answer it was lowered with is the same now (asked
        through ``resolver``), else None. Never raises for what is on disk."""
        try:
            data = self._path(key).read_bytes()
        except OSError:
            return None
        try:
            meta, stream = _split(data)
            if meta.get("key") != key:
                return None
            if not _still_same(meta["answers"], resolver):
                return None
            from mason.ir import codec

            graph = codec.decode_graph(stream)
            return CachedLowering(graph, tuple(meta["warnings"]), meta["frontend"], meta["pipeline"],
                                  tuple(meta["stages"]), tuple(CachedCheck(*c) for c in meta["checks"]),
                                  tuple(meta["checks_failed"]))
        except (MasonError, ValueError, KeyError, TypeError, IndexError, RecursionError):
            return None

    def put(self, key: str, rec: RecordingResolver, graph: Any, *, warnings: Sequence[str], frontend: str,
            pipeline: str, stages: Sequence[str], checks: Sequence[Any], checks_failed: Sequence[str]) -> bool:
        """Keep a lowering; False (nothing written) when it cannot be kept exactly."""
        if not rec.exact:
            return False
        from mason.ir import codec

        try:
            defs = codec.encode_graph(graph)
            stream = codec.write_stream(defs)
            back = codec.decode_graph(stream)
            if (codec.encode_graph(back) != defs
                    or [o.name for o in back.outputs] != [o.name for o in graph.outputs]
                    or [o.image_config for o in back.outputs] != [o.image_config for o in graph.outputs]):
                return False
        except (MasonError, ValueError, TypeError):
            return False
        meta = {"key": key, "answers": [list(a) for a in rec.answers], "warnings": list(warnings),
                "frontend": frontend, "pipeline": pipeline, "stages": list(stages),
                "checks": [[c.format(), c.rule, str(c.loc) if c.loc is not None else None] for c in checks],
                "checks_failed": list(checks_failed)}
        head = json.dumps(meta, separators=(",", ":")).encode()
        body = MAGIC + len(head).to_bytes(8, "big") + head + stream
        if _has_credentials(body):  # a URL's user:password must reach no file (GHSA-gc89-7gcr-jxqc)
            return False
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".llb")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                os.replace(tmp, self._path(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._trim()
        except OSError:
            return False
        return True

    def _trim(self) -> None:
        try:
            entries = [e for e in os.scandir(self.dir) if e.name.endswith(".llb") and not e.name.startswith(".")]
            if len(entries) <= MAX_ENTRIES:
                return
            entries.sort(key=lambda e: e.stat().st_mtime_ns)
            gone = {e.name[:-len(".llb")] for e in entries[:len(entries) - MAX_ENTRIES]}
            for e in entries[:len(entries) - MAX_ENTRIES]:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
            for e in os.scandir(self.dir):  # their graph drawings (GraphRecords)
                if e.name.partition(".")[0] in gone:
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
        except OSError:
            pass

    def touch(self, key: str) -> None:
        """Mark an entry used (the oldest go first)."""
        with contextlib.suppress(OSError):
            os.utime(self._path(key))


class Deferred:
    """A :class:`LoweringCache` whose writes wait for :meth:`commit`: a build keeps its lowering
    (and the record's drawing of it) only once it has solved and exported — a build that fails,
    even on a bad ``--secret`` after lowering, leaves nothing under the root but its record."""

    def __init__(self, cache: "LoweringCache"):
        self.cache = cache
        self.dir = cache.dir
        self._pending: list[Any] = []
        self._committed = False
        self._lock = threading.Lock()

    def key(self, **parts: Any) -> str | None:
        return self.cache.key(**parts)

    def get(self, key: str, resolver: Any) -> CachedLowering | None:
        return self.cache.get(key, resolver)

    def touch(self, key: str) -> None:
        self.cache.touch(key)

    def later(self, write: Any) -> None:
        """Run ``write()`` now when committed, else at :meth:`commit`."""
        with self._lock:
            if not self._committed:
                self._pending.append(write)
                return
        write()

    def put(self, key: str, rec: RecordingResolver, graph: Any, **kw: Any) -> bool:
        if not rec.exact:
            return False
        self.later(lambda: self.cache.put(key, rec, graph, **kw))
        return True

    def commit(self) -> None:
        with self._lock:
            pending, self._pending, self._committed = self._pending, [], True
        for write in pending:
            write()


class GraphRecords:
    """The graph drawing a build's history record keeps (``mason history --graph``), kept next
    to the lowering entry ``key``: the drawing is a function of that entry's graph, the outputs
    drawn, the values masked and the drawing code (``mason.backends.dump``, by its files' size
    and mtime), all in its name. Every failure is a miss."""

    def __init__(self, cache: "LoweringCache | Deferred", key: str):
        self.cache, self.key = cache, key

    def _path(self, names: Sequence[str], masked: Sequence[str]) -> Path:
        parts = [list(names), sorted(masked), _walk(_PACKAGE, _PACKAGE / "backends" / "dump")]
        h = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        return self.cache.dir / f"{self.key}.graph-{h}.json"

    def get(self, names: Sequence[str], masked: Sequence[str]) -> bytes | None:
        try:
            data = self._path(names, masked).read_bytes()
        except OSError:
            return None
        return data or None

    def put(self, names: Sequence[str], masked: Sequence[str], data: bytes) -> None:
        if isinstance(self.cache, Deferred):
            self.cache.later(lambda: self._write(names, masked, data))
        else:
            self._write(names, masked, data)

    def _write(self, names: Sequence[str], masked: Sequence[str], data: bytes) -> None:
        if not (self.cache.dir / f"{self.key}.llb").exists():  # its entry was not kept (or is gone)
            return
        with contextlib.suppress(OSError):
            path = self._path(names, masked)
            fd, tmp = tempfile.mkstemp(dir=self.cache.dir, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


def clear(root: str | os.PathLike[str]) -> int:
    """Remove every entry under ``root`` (``mason prune --all``); how many went."""
    d = Path(root) / DIRNAME
    n = 0
    try:
        names = os.listdir(d)
    except OSError:
        return 0
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(d / name)
            n += name.endswith(".llb") and not name.startswith(".")
    return n


def _has_credentials(data: bytes) -> bool:
    """Whether ``data`` holds a URL with credentials (``scheme://user:password@``, a token as
    the user): such a lowering is not kept, as mason keeps no credentials on disk."""
    from mason.ir.urls import redact_text

    text = data.decode("latin-1")  # one character per byte: offsets and text unchanged
    return redact_text(text) != text


def _split(data: bytes) -> tuple[dict, bytes]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ValueError("not a lowering cache entry")
    i = len(MAGIC)
    n = int.from_bytes(data[i:i + 8], "big")
    head = data[i + 8:i + 8 + n]
    if len(head) != n:
        raise ValueError("truncated entry")
    meta = json.loads(head)
    if not isinstance(meta, dict):
        raise ValueError("bad header")
    return meta, data[i + 8 + n:]
