"""What the dumpers draw: one record per op of a Definition, in ``def`` order.

A record is the op as its wire message (``P.Op``, rebuilt from the typed IR by the codec's
``op_to_pb``), its digest and its metadata (``P.OpMetadata`` or ``None``). The renderers read
nothing else, so they work the same for BuildKit's ops and mason's ``ConfigOp``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mason.ir.llb_pb import pb


@dataclass(frozen=True, slots=True)
class DumpedOp:
    digest: str
    op: Any  # P.Op
    metadata: Any | None = None  # P.OpMetadata


def op_digest(op: Any) -> str:
    """The LLB digest of an op message: sha256 over its encoding as BuildKit marshals it."""
    from mason.ir.codec import marshal_op_pb

    return "sha256:" + hashlib.sha256(marshal_op_pb(op)).hexdigest()


def terminal_op(digest: str, index: int = 0) -> Any:
    """The bare last op of a Definition, naming its result."""
    P = pb()
    return P.Op(inputs=[P.Input(digest=digest, index=index)])
