"""Loads the LLB protobuf module, generated from ``proto/llb.proto`` at first use.

Generated code is never committed: the first call runs ``grpc_tools.protoc`` on the project's own
``llb.proto`` into a cache directory keyed by the file's hash (``$MASON_CACHE`` or
``~/.cache/mason``), written to a temporary directory and renamed into place so concurrent
processes never see a half-written module. Only ``mason.ir``'s codec and dumpers use this.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from mason.ir.errors import MasonError
from mason.ir.paths import cache_root

PROTO = Path(__file__).with_name("proto") / "llb.proto"
_MODULE_NAME = "mason_llb_pb2"
_module: ModuleType | None = None


def _generate(dest: Path) -> None:
    try:
        from grpc_tools import protoc  # imported only when generating
    except ImportError as e:  # pragma: no cover - dependency is declared
        raise MasonError("grpcio-tools is needed to generate the LLB protobuf module: pip install grpcio-tools") from e
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=dest.parent))
    try:
        shutil.copy(PROTO, tmp / f"{_MODULE_NAME[:-4]}.proto")
        rc = protoc.main(["protoc", f"-I{tmp}", f"--python_out={tmp}", str(tmp / f"{_MODULE_NAME[:-4]}.proto")])
        if rc != 0 or not (tmp / f"{_MODULE_NAME}.py").exists():
            raise MasonError(f"protoc failed to generate the LLB module from {PROTO}")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / f"{_MODULE_NAME}.py").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def pb() -> ModuleType:
    """The generated LLB module (messages ``Op``, ``Definition``, ``ExecOp`` …)."""
    global _module
    if _module is not None:
        return _module
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    dest = cache_root() / "llb-pb" / digest
    path = dest / f"{_MODULE_NAME}.py"
    if not path.exists():
        _generate(dest)
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = mod
    spec.loader.exec_module(mod)
    _module = mod
    return mod
