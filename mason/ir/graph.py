"""A build graph: named outputs (targets, platforms), each a result ref plus its image config.

One output encodes to one Definition (see ``codec.encode_graph``). Traversals are iterative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from mason.ir.errors import MasonError
from mason.ir.ops import Op, OpMetadata, Ref, walk_ops

__all__ = ["Output", "Graph"]


@dataclass(frozen=True, slots=True)
class Output:
    """A named result. ``image_config`` is the OCI image config JSON (a dict) or None;
    ``metadata`` is the terminal op's OpMetadata (caps BuildKit writes there), if any."""

    name: str
    ref: Ref
    image_config: dict | None = field(default=None, compare=False)
    metadata: OpMetadata | None = field(default=None, compare=False, repr=False)

    def __hash__(self) -> int:
        return hash((self.name, self.ref))


@dataclass(frozen=True, slots=True)
class Graph:
    outputs: tuple[Output, ...]

    @staticmethod
    def of(ref: Ref | Op, image_config: dict | None = None, name: str = "default") -> "Graph":
        if isinstance(ref, Op):
            ref = Ref(ref, 0)
        return Graph((Output(name, ref, image_config),))

    def ops(self) -> list[Op]:
        """Every reachable op once (by object), inputs first, outputs in order."""
        return walk_ops(o.ref.op for o in self.outputs)

    def unique_ops(self) -> list[Op]:
        """Like :meth:`ops` but one op per digest (the first met)."""
        seen: set[str] = set()
        out = []
        for op in self.ops():
            if op.digest not in seen:
                seen.add(op.digest)
                out.append(op)
        return out

    def by_digest(self) -> dict[str, Op]:
        out: dict[str, Op] = {}
        for op in self.ops():
            out.setdefault(op.digest, op)
        return out

    def op(self, digest: str) -> Op:
        try:
            return self.by_digest()[digest]
        except KeyError:
            raise MasonError(f"no op {digest} in the graph") from None

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        names = ", ".join(o.name for o in self.outputs) or "none"
        raise MasonError(f"no output {name!r} (outputs: {names})")

    def names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def with_outputs(self, outputs: Iterable[Output]) -> "Graph":
        return Graph(tuple(outputs))

    def __len__(self) -> int:
        return len(self.outputs)
