"""The Dockerfile cut into stages for the checks that follow scope: each node with its typed
instruction (None when it does not parse: the build reports that, the checks skip it), the
stage's parent stage, and which stages a target needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mason.frontends.dockerfile.instructions import (
    Add,
    Arg,
    BindMount,
    CacheMount,
    Copy,
    From,
    Instruction,
    Run,
    parse_instruction,
)
from mason.frontends.dockerfile.nodes import Node, ParseResult
from mason.ir.errors import MasonError

__all__ = ["StageInfo", "Layout", "split_stages"]


@dataclass
class StageInfo:
    index: int
    node: Node
    inst: From | None
    name: str | None  # lower-cased, as BuildKit keeps it
    body: list[tuple[Node, Instruction | None]] = field(default_factory=list)
    parent: int | None = None  # the stage this one is FROM, if it is a stage of this file
    base: str | None = None  # the base image as written (None: a parent stage)


@dataclass
class Layout:
    meta: list[tuple[Node, Arg | None]]
    stages: list[StageInfo]

    def stage_index(self, ref: str, before: int) -> int | None:
        """The stage ``ref`` (a name or an index) names among the stages before ``before``."""
        low = ref.lower()
        for s in self.stages[:before]:
            if s.name == low:
                return s.index
        if low.isdigit() and int(low) < before:
            return int(low)
        return None

    def resolve_parents(self, expand: Callable[[str], str | None]) -> None:
        """Set each stage's parent (a FROM naming an earlier stage, after ``expand`` with the
        global ARGs) or its base image."""
        for st in self.stages:
            if st.inst is None:
                continue
            base = expand(st.inst.image)
            parent = self.stage_index(base, st.index) if base and not base.isdigit() else None
            if parent is not None:
                st.parent = parent
            else:
                st.base = st.inst.image

    def needed(self, target: str | None) -> set[int]:
        """The stages building ``target`` (a name; None: the last stage) runs."""
        if not self.stages:
            return set()
        start = len(self.stages) - 1
        if target:
            idx = self.stage_index(target, len(self.stages))
            if idx is None:
                return set(range(len(self.stages)))
            start = idx
        seen: set[int] = set()
        todo = [start]
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            st = self.stages[i]
            if st.parent is not None:
                todo.append(st.parent)
            for _, inst in st.body:
                for ref in _from_refs(inst):
                    j = self.stage_index(ref, i)
                    if j is not None:
                        todo.append(j)
        return seen


def _from_refs(inst: Instruction | None) -> list[str]:
    if isinstance(inst, (Copy, Add)) and inst.from_:
        return [inst.from_]
    if isinstance(inst, Run):
        return [m.from_ for m in inst.mounts
                if isinstance(m, (BindMount, CacheMount)) and m.from_]
    return []


def _typed(node: Node, text: str | None) -> Instruction | None:
    try:
        return parse_instruction(node, text)
    except MasonError:
        return None


def split_stages(result: ParseResult, text: str | None) -> Layout:
    """Cut ``result`` into the meta ARGs and the stages (parents not resolved yet: see
    :meth:`Layout.resolve_parents`)."""
    meta: list[tuple[Node, Arg | None]] = []
    stages: list[StageInfo] = []
    for node in result.nodes:
        inst = _typed(node, text)
        if node.name == "from":
            f = inst if isinstance(inst, From) else None
            stages.append(StageInfo(len(stages), node, f, f.stage_name if f else None))
        elif stages:
            stages[-1].body.append((node, inst))
        elif node.name == "arg":
            meta.append((node, inst if isinstance(inst, Arg) else None))
    return Layout(meta, stages)
