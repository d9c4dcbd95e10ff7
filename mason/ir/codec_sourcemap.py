"""LLB's ``Definition.Source`` as typed values (:class:`SourceMap`): file infos and, per op
digest, locations into them; made from the ops' ``loc`` and read back (see :mod:`.codec`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mason.ir.errors import SourceLoc
from mason.ir.llb_pb import pb
from mason.ir.ops import Op

P = pb()


@dataclass(frozen=True, slots=True)
class SourceInfo:
    filename: str
    data: bytes = b""
    language: str = ""
    definition: bytes | None = None  # a nested Definition, kept serialized


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """``ranges``: (start line, start character, end line, end character)."""

    source_index: int
    ranges: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceMap:
    """LLB's ``Definition.Source``: file infos and, per op digest, locations into them. Like
    BuildKit's source map, kept out of the digests."""

    infos: tuple[SourceInfo, ...] = ()
    locations: tuple[tuple[str, tuple[SourceLocation, ...]], ...] = ()

    def to_pb(self) -> Any:
        src = P.Source()
        for info in self.infos:
            pi = src.infos.add(filename=info.filename, data=info.data, language=info.language)
            if info.definition is not None:
                pi.definition.ParseFromString(info.definition)
                pi.definition.SetInParent()
        for dgst, locs in self.locations:
            pl = src.locations[dgst]
            for loc in locs:
                pbloc = pl.locations.add(sourceIndex=loc.source_index)
                for sl, sc, el, ec in loc.ranges:
                    r = pbloc.ranges.add()
                    r.start.line, r.start.character = sl, sc
                    r.end.line, r.end.character = el, ec
        return src

    @staticmethod
    def from_pb(src: Any) -> "SourceMap":
        infos = tuple(
            SourceInfo(i.filename, i.data, i.language,
                       i.definition.SerializeToString(deterministic=True) if i.HasField("definition") else None)
            for i in src.infos)
        locs = []
        for dgst in sorted(src.locations):
            pl = src.locations[dgst]
            locs.append((dgst, tuple(
                SourceLocation(pbloc.sourceIndex, tuple((r.start.line, r.start.character, r.end.line,
                                                         r.end.character) for r in pbloc.ranges))
                for pbloc in pl.locations)))
        return SourceMap(infos, tuple(locs))

    def loc_for(self, digest: str) -> SourceLoc | None:
        for dgst, locs in self.locations:
            if dgst == digest:
                for sloc in locs:
                    if 0 <= sloc.source_index < len(self.infos) and sloc.ranges:
                        sl, sc, el, ec = sloc.ranges[0]
                        return SourceLoc(self.infos[sloc.source_index].filename, sl, sc + 1, el, ec + 1)
                return None
        return None

    @staticmethod
    def from_ops(ops: Iterable[Op]) -> "SourceMap | None":
        files: dict[str, int] = {}
        locs = []
        seen = set()
        for op in ops:
            loc = op.loc
            if loc is None or op.digest in seen:
                continue
            seen.add(op.digest)
            idx = files.setdefault(loc.file, len(files))
            el = loc.end_line if loc.end_line is not None else loc.line
            ec = loc.end_col if loc.end_col is not None else loc.col
            locs.append((op.digest, (SourceLocation(idx, ((loc.line, loc.col - 1, el, ec - 1),)),)))
        if not locs:
            return None
        return SourceMap(tuple(SourceInfo(f) for f in files), tuple(sorted(locs)))



__all__ = ["SourceInfo", "SourceLocation", "SourceMap"]
