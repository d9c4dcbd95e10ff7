"""Shared data for the dumper tests: the BuildKit corpus and a builder of small Definitions
(imported as ``tests.backends.dump.llbdata``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mason.ir.llb_pb import pb

# <project root>/../shared/corpus: CI clones the repository elsewhere with shared/ beside it.
CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "buildkit-llb-v0.32"  # BuildKit v0.32.2 (df2llb)
NAMES = sorted(p.stem for p in CORPUS.glob("*.llb"))


def corpus_names() -> list[str]:
    assert NAMES, f"no *.llb files in {CORPUS}"
    return NAMES


def build_definition(ops: list, metadata: dict[int, object] | None = None, terminal_index: int = 0) -> bytes:
    """A serialized Definition of ``ops`` (``P.Op`` messages, in order) plus a terminal op naming
    the last one. An input digest written ``"#k"`` names op k of the list; ``metadata`` maps an
    op's position (``len(ops)`` = the terminal op) to its ``P.OpMetadata``."""
    P = pb()
    d = P.Definition()
    digests: list[str] = []
    for op in ops:
        for inp in op.inputs:
            if inp.digest.startswith("#"):
                inp.digest = digests[int(inp.digest[1:])]
        data = op.SerializeToString(deterministic=True)
        digests.append("sha256:" + hashlib.sha256(data).hexdigest())
        getattr(d, "def").append(data)
    term = P.Op(inputs=[P.Input(digest=digests[-1], index=terminal_index)])
    data = term.SerializeToString(deterministic=True)
    digests.append("sha256:" + hashlib.sha256(data).hexdigest())
    getattr(d, "def").append(data)
    for i, md in (metadata or {}).items():
        d.metadata[digests[i]].CopyFrom(md)
    return d.SerializeToString(deterministic=True)


def digests_of(data: bytes) -> list[str]:
    P = pb()
    d = P.Definition.FromString(data)
    return ["sha256:" + hashlib.sha256(b).hexdigest() for b in getattr(d, "def")]
