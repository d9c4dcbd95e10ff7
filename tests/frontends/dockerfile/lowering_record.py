"""The Definition bytes of every Dockerfile lowering the tests make, recorded so that a rewrite
of the lowering (issue 12: onto the builder API) can prove it changed nothing.

The cases are the ones :mod:`tests.conformance.collect` finds — the golden files (with their
``# golden:`` options), BuildKit's parser test files, both LLB corpora
(``../shared/corpus/buildkit-llb`` and ``buildkit-llb-v0.32``) and every Dockerfile written inline
in a test module (the integration tests' among them). Each is lowered by the Dockerfile
frontend alone (no passes) in three ways: with the fixed resolver of the v0.32 corpus (pinned
bases, a real base config), offline (no resolver: unpinned bases, the empty config), and
``alt`` (fixed resolver; target linux/arm/v7 unless the case names one, build platform
linux/arm64, proxy build args, another context name and cache namespace). What is
kept per lowering is the SHA-256 of its Definitions (every output, in order, as one
``mason-llb-stream``; op bytes, metadata and source map included), or the error it raised.

``lowering_bytes.json`` holds the list. A corpus or golden case names its file; an inline case
keeps its text (test modules change; the recorded lowering must not move with them).

    python -m tests.frontends.dockerfile.lowering_record          # compare, print the figures
    python -m tests.frontends.dockerfile.lowering_record --write  # re-record (only when an
                                                                  # intended change of output lands)
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpus"
RECORD = Path(__file__).with_name("lowering_bytes.json")
BASE_CONFIG = CORPUS / "buildkit-llb-v0.32" / "base-image-config.json"
BASE_DIGEST = "sha256:a026ada719a4f43dacd393a814a0280695a376827a3c2234c09888fd57d7625c"
VARIANTS = ("fixed", "offline", "alt")


@dataclass(frozen=True)
class Entry:
    """One recorded Dockerfile and its options; ``text`` is None when ``id`` names a file."""

    id: str
    text: str | None
    build_args: tuple[tuple[str, str], ...] = ()
    excludes: tuple[str, ...] = ()
    target: str | None = None
    platform: str | None = None

    def dockerfile(self) -> str:
        if self.text is not None:
            return self.text
        if self.id.startswith("corpus/"):
            return (CORPUS / self.id[len("corpus/"):]).read_text(errors="surrogateescape")
        return (ROOT / self.id).read_text()

    def to_json(self) -> dict:
        d: dict = {"id": self.id}
        if self.text is not None:
            d["text"] = self.text
        if self.build_args:
            d["build_args"] = [list(kv) for kv in self.build_args]
        if self.excludes:
            d["excludes"] = list(self.excludes)
        if self.target is not None:
            d["target"] = self.target
        if self.platform is not None:
            d["platform"] = self.platform
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Entry":
        return cls(d["id"], d.get("text"), tuple(tuple(kv) for kv in d.get("build_args", ())),  # type: ignore[misc]
                   tuple(d.get("excludes", ())), d.get("target"), d.get("platform"))


def collected() -> list[Entry]:
    """The cases of the test suite as it is now."""
    from tests.conformance.collect import all_cases

    out = []
    for c in all_cases():
        text = None if c.kind in ("golden", "seed", "corpus") else c.text
        out.append(Entry(c.id, text, c.build_args, c.excludes, c.target, c.platform))
    return out


def lower(entry: Entry, variant: str) -> str:
    """``defs:SHA256`` of the lowering's Definitions, or ``error:MESSAGE``."""
    from mason.frontends.dockerfile.frontend import DockerfileLowering, LowerOptions
    from mason.ir.codec import encode_graph, write_stream
    from mason.ir.errors import MasonError
    from mason.ir.resolver import FixedResolver, PlatformSpec

    resolver = None
    if variant != "offline":
        resolver = FixedResolver(json.loads(BASE_CONFIG.read_text()), BASE_DIGEST)
    try:
        if variant == "alt":
            args = {"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost", **dict(entry.build_args)}
            options = LowerOptions(build_args=args, platform=PlatformSpec.parse(entry.platform or "linux/arm/v7"),
                                   build_platform=PlatformSpec.parse("linux/arm64"), excludes=entry.excludes,
                                   target=entry.target, cache_ns="", context_name="ctx")
        else:
            options = LowerOptions(build_args=dict(entry.build_args),
                                   platform=PlatformSpec.parse(entry.platform or "linux/amd64"),
                                   build_platform=PlatformSpec.parse("linux/amd64"),
                                   excludes=entry.excludes, target=entry.target, cache_ns="ns")
        graph = DockerfileLowering(options, resolver).lower(entry.dockerfile(), "Dockerfile")
        data = write_stream(encode_graph(graph))
    except MasonError as e:
        return "error:" + str(e)
    return "defs:" + hashlib.sha256(data).hexdigest()


def load() -> list[tuple[Entry, dict[str, str]]]:
    raw = json.loads(RECORD.read_text())
    return [(Entry.from_json(d), d["lowered"]) for d in raw["lowerings"]]


def record(entries: list[Entry]) -> dict:
    rows = []
    for e in entries:
        d = e.to_json()
        d["lowered"] = {v: lower(e, v) for v in VARIANTS}
        rows.append(d)
    return {"comment": "written by python -m tests.frontends.dockerfile.lowering_record --write",
            "lowerings": rows}


def main(argv: list[str]) -> int:
    if "--write" in argv:
        data = record(collected())
        RECORD.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        n = len(data["lowerings"])
        ok = sum(1 for r in data["lowerings"] for v in r["lowered"].values() if v.startswith("defs:"))
        print(f"recorded {n} Dockerfiles x {len(VARIANTS)} = {n * len(VARIANTS)} lowerings "
              f"({ok} lower, {n * len(VARIANTS) - ok} errors) in {RECORD.relative_to(ROOT)}")
        return 0
    same = total = 0
    for entry, lowered in load():
        for v, want in lowered.items():
            total += 1
            got = lower(entry, v)
            if got == want:
                same += 1
            else:
                print(f"DIFF {entry.id} [{v}]: recorded {want[:80]!r}, now {got[:80]!r}")
    print(f"byte-identical lowerings: {same}/{total}")
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
