"""Compiled code for the methods :mod:`dataclasses` writes, kept between runs as bytecode is.

``@dataclass`` builds each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__``… as source text and compiles it with ``exec`` every time the class is created —
at every import, in every process: about 0.6 ms of a 0.8 ms dataclass, and mason creates some 160
of them before a build does any work (issue 17). This module keeps the compiled code of those
texts in one file next to mason's bytecode (``mason/__pycache__/dataclass-code.<tag>.marshal``),
so a process compiles only texts no earlier one has.

It stays exact: the key is the whole generated text, the value what ``compile`` makes of it,
and the code runs with the same globals and locals the dataclasses module gives it; only the
compile step is skipped. The file follows Python's rules for bytecode: written only when
``sys.dont_write_bytecode`` is off (``PYTHONDONTWRITEBYTECODE``) and the directory is writable,
replaced atomically, ignored when it cannot be read or is not what this module wrote, named by
the interpreter's cache tag (marshal's format is per version). :func:`prime` writes it for the
modules a build imports (``scripts/_setup.sh`` runs it at install), so even a process that may
write no bytecode compiles nothing. Other generated code (the instructions' fast ``__init__``)
goes through :func:`compile_cached` too.

:func:`install` hooks ``dataclasses._create_fn`` of CPython 3.11 and 3.12 — the versions whose
private function has this shape; on any other, dataclasses work as they always do, uncached.
"""

from __future__ import annotations

import atexit
import dataclasses
import marshal
import os
import sys
import tempfile
import threading
import types
from typing import Any

_VERSIONS = ((3, 11), (3, 12))
_SHAPE = ("name", "args", "body", "globals", "locals", "return_type")  # dataclasses._create_fn's parameters
_MAX_ENTRIES = 20000  # a file that grew past this (old texts piling up) starts again from this run's
_lock = threading.Lock()
_code: dict[str, types.CodeType] = {}
_used: set[str] = set()
_new = 0
_installed = False
_path = ""


def cache_path() -> str:
    tag = sys.implementation.cache_tag or "none"
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__", f"dataclass-code.{tag}.marshal")


def _load(path: str) -> dict[str, types.CodeType]:
    try:
        with open(path, "rb") as f:
            data = marshal.loads(f.read())  # marshal.load reads a file in small pieces: far slower
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, types.CodeType)
                                             for k, v in data.items()):
        return {}
    return data


def compile_cached(text: str, filename: str = "<string>") -> types.CodeType:
    """``compile(text, filename, "exec")`` as the standard library does it (no ``__future__``
    flags of the caller), from the cache when an earlier run compiled it."""
    global _new
    key = text if filename == "<string>" else f"{filename}\0{text}"
    code = _code.get(key)
    if code is None:
        code = compile(text, filename, "exec", dont_inherit=True)  # no __future__ flags of this module
        with _lock:
            _code[key] = code
            _new += 1
    _used.add(key)
    return code


def _create_fn(name, args, body, *, globals=None, locals=None, return_type=dataclasses.MISSING):  # noqa: A002
    # The same text as CPython 3.11/3.12's dataclasses._create_fn builds, compiled through the cache.
    if locals is None:
        locals = {}
    return_annotation = ""
    if return_type is not dataclasses.MISSING:
        locals["_return_type"] = return_type
        return_annotation = "->_return_type"
    args = ",".join(args)
    body = "\n".join(f"  {b}" for b in body)
    txt = f" def {name}({args}){return_annotation}:\n{body}"
    local_vars = ", ".join(locals.keys())
    txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
    ns: dict[str, Any] = {}
    exec(compile_cached(txt), globals, ns)  # noqa: S102 - dataclasses' own generated code
    return ns["__create_fn__"](**locals)


def save(force: bool = False) -> bool:
    """Write the cache if this run compiled something new (and may write bytecode; ``force``:
    even if it may not, as ``compileall`` at install does)."""
    global _new
    if not _installed or not (_new or force) or (sys.dont_write_bytecode and not force):
        return False
    with _lock:
        keep = _code if len(_code) <= _MAX_ENTRIES else {k: _code[k] for k in _used if k in _code}
        data = marshal.dumps(dict(keep))
        _new = 0
    d = os.path.dirname(_path)
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".dataclass-code.", dir=d)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # as bytecode files are: readable by whoever runs mason
            f.write(data)
        os.replace(tmp, _path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def install() -> None:
    """Route dataclasses' compiling through the cache (once per process)."""
    global _installed, _path
    if _installed or sys.version_info[:2] not in _VERSIONS or sys.implementation.name != "cpython":
        return
    original = getattr(dataclasses, "_create_fn", None)
    code = getattr(original, "__code__", None)
    if code is None or code.co_varnames[:code.co_argcount + code.co_kwonlyargcount] != _SHAPE:
        return
    _path = cache_path()
    _code.update(_load(_path))
    dataclasses._create_fn = _create_fn  # type: ignore[attr-defined]
    _installed = True
    atexit.register(save)


def stats() -> dict[str, int]:
    """How many texts are cached, used and newly compiled in this process."""
    return {"cached": len(_code), "used": len(_used), "compiled": _new}


def prime() -> int:
    """Import every mason module (generated stubs and ``__main__`` aside), then write the cache."""
    import importlib
    import pkgutil

    import mason

    install()
    for m in pkgutil.walk_packages(mason.__path__, "mason."):
        if m.name.endswith("__main__") or "._stubs" in m.name or "._buildkit" in m.name:
            continue
        try:
            importlib.import_module(m.name)
        except Exception:  # noqa: BLE001 - a module that cannot import here has nothing to cache
            continue
    save(force=True)
    print(f"{cache_path()}: {len(_code)} compiled methods")
    return 0
