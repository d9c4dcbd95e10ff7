"""Loads the LLB protobuf module, generated from ``proto/llb.proto`` at first use.

Generated code is never committed: the first call runs ``grpc_tools.protoc`` on the project's own
``llb.proto`` (as ``mason_llb.proto``) into a cache directory keyed by the file's hash
(:mod:`mason.ir.protogen`: ``$MASON_CACHE`` or ``~/.cache/mason``, written atomically so
concurrent processes never see a half-written module). The module is ``mason_llb_pb2``; other
stub sets that name BuildKit's ``ops.proto`` import it instead (:func:`include_dir`). Only
``mason.ir``'s codec and dumpers use the messages.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from mason.ir import protogen

PROTO = Path(__file__).with_name("proto") / "llb.proto"
PROTO_NAME = "mason_llb.proto"  # the file name other .proto files import it by
_MODULE_NAME = "mason_llb_pb2"


def include_dir() -> Path:
    """The generated directory, which holds ``mason_llb.proto`` itself (an ``-I`` directory for
    .proto files that import it)."""
    return protogen.generated_tree("llb-pb", {PROTO_NAME: PROTO.read_text()}, grpc=False,
                                   what="the LLB protobuf module")


def _load() -> ModuleType:
    path = include_dir() / f"{_MODULE_NAME}.py"
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = mod
    spec.loader.exec_module(mod)
    return mod


_once = protogen.Once(_load)


def pb() -> ModuleType:
    """The generated LLB module (messages ``Op``, ``Definition``, ``ExecOp`` …), loaded once."""
    return _once()
