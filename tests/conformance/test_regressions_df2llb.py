"""Issue 10: one regression test per lowering bug, each against the bytes BuildKit v0.32.2 gives
for a minimal Dockerfile. ``../shared/tools/buildkit/df2llb`` lowers it in the test session (with
the v0.32 corpus's fixed resolver, see tests/conformance/run.py); mason must give the same op
bytes and terminal digest, with the same caps. Each case also states the fact the bug was about,
checked on BuildKit's ops and on mason's, so a case whose Dockerfile stops exercising it fails
instead of passing vacuously."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from mason.ir.codec import digest_of
from mason.ir.llb_pb import pb
from tests.conformance.collect import Case
from tests.conformance.run import compare
from tests.fixtures.buildkitd import buildkit_tool


@dataclass(frozen=True)
class Regression:
    dockerfile: str
    fact: Callable[[list[Any]], bool]  # over the decoded ops (terminal included)
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    files: dict[str, str] = field(default_factory=dict)


def _execs(ops: list[Any]) -> list[Any]:
    return [o.exec for o in ops if o.WhichOneof("op") == "exec"]


def _sources(ops: list[Any]) -> list[str]:
    return [o.source.identifier for o in ops if o.WhichOneof("op") == "source"]


def _env(ops: list[Any]) -> list[list[str]]:
    return [list(e.meta.env) for e in _execs(ops)]


CASES: dict[str, Regression] = {
    # item 5: a global ARG's default sees the global ARGs before it
    "global-arg-refers-to-earlier": Regression(
        "ARG A=x\nARG B=${A}y\nFROM busybox\nARG B\nRUN echo $B\n",
        lambda ops: any("B=xy" in env for env in _env(ops))),
    "global-arg-chain-in-from": Regression(
        "ARG A=busybox:1.36\nARG B=$A\nFROM $B\nRUN true\n",
        lambda ops: any(s.startswith("docker-image://docker.io/library/busybox:1.36@") for s in _sources(ops))),
    "global-arg-chain-build-arg": Regression(
        "ARG A=busybox\nARG B=${A}:1.36\nFROM $B\nRUN true\n",
        lambda ops: any(s.startswith("docker-image://docker.io/library/alpine:1.36@") for s in _sources(ops)),
        build_args=(("A", "alpine"),)),
    # item 4: a bind/cache/tmpfs mount without a target is at the working directory (read-only
    # for a bind)
    "mount-from-stage-no-target": Regression(
        "FROM busybox AS s\nRUN echo > /x\nFROM busybox\nWORKDIR /w\nRUN --mount=from=s true\n",
        lambda ops: any(m.dest == "/w" and m.readonly and m.input == 1 for e in _execs(ops) for m in e.mounts)),
    "mount-cache-tmpfs-no-target": Regression(
        "FROM busybox\nWORKDIR /w\nRUN --mount=type=cache true\nRUN --mount=type=tmpfs,size=1k true\n",
        lambda ops: sorted((m.dest, m.mountType) for e in _execs(ops) for m in e.mounts if m.dest != "/")
        == [("/w", 3), ("/w", 4)]),
    # item 6: COPY --link --chmod is a plain copy onto the stage, no MergeOp; a symbolic mode
    # leaves mode unset (0) beside modeStr
    "copy-link-chmod-no-merge": Regression(
        "FROM busybox\nCOPY --link --chmod=700 a /a\nCOPY --link --chmod=u+x a /b\nCOPY --link a /c\n",
        lambda ops: sum(o.WhichOneof("op") == "merge" for o in ops) == 1
        and sorted((c.dest, c.mode, c.modeStr) for c in _copies(ops)) == [("/a", 0o700, ""), ("/b", 0, "u+x"),
                                                                          ("/c", -1, "")],
        files={"a": "a\n"}),
    # item 7: BuildKit's non-env args are no RUN environment (nor seen by expansion); the rest
    # of BUILDKIT_* are
    "non-env-build-args": Regression(
        "FROM busybox\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\n"
        "ARG BUILDKIT_INLINE_CACHE=1\nWORKDIR /w-$BUILDKIT_SBOM_SCAN_STAGE\nRUN true\n",
        lambda ops: _env(ops) == [["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "BUILDKIT_INLINE_CACHE=1"]]
        and any(a.mkdir.path == "/w-" for o in ops if o.WhichOneof("op") == "file" for a in o.file.actions)),
    # COPY --parents: a source without wildcards is a required path, from the source's root
    # (found by the conformance harness on tests/integration/test_copy_modes_buildkit.py)
    "copy-parents-required-paths": Regression(
        "FROM busybox\nCOPY --parents ./dir/./sub/b.txt dir/*/c /p/\n",
        lambda ops: sorted((c.src, tuple(c.include_patterns), tuple(c.required_paths)) for c in _copies(ops))
        == [("/", ("dir/*/c",), ()), ("/dir", ("sub/b.txt",), ("/dir/sub/b.txt",))]),
    # item 8: --chown names are looked up in input 0 for every copy action of the chain
    "chown-name-lookup-input-0": Regression(
        "FROM busybox\nCOPY --chown=app:app a b /d/\n",
        lambda ops: [(c.owner.user.byName.input, c.owner.group.byName.input) for c in _copies(ops)]
        == [(0, 0), (0, 0)] and any(a.input == 2 for o in ops if o.WhichOneof("op") == "file"
                                    for a in o.file.actions),
        files={"a": "a\n", "b": "b\n"}),
    # item 9: without --target, local.followpaths lists only what the last stage reaches
    "followpaths-of-reached-stages": Regression(
        "FROM busybox AS a\nCOPY a /a\nFROM busybox AS b\nCOPY b /b\nFROM busybox\nCOPY --from=a /a /x\nCOPY c /c\n",
        lambda ops: [dict(o.source.attrs).get("local.followpaths") for o in ops
                     if o.source.identifier.startswith("local://")] == ['["a","c"]'],
        files={"a": "a\n", "b": "b\n", "c": "c\n"}),
    # secret and ssh mounts: output unset (0) as llb leaves it; an ssh mount without id has none
    "secret-ssh-mounts": Regression(
        "FROM busybox\nRUN --mount=type=secret,id=s --mount=type=ssh --mount=type=ssh,id=k,target=/k "
        "--mount=type=secret,id=e,env=E true\n",
        lambda ops: [(m.mountType, m.output, m.SSHOpt.ID if m.mountType == 2 else m.secretOpt.ID)
                     for e in _execs(ops) for m in e.mounts if m.dest != "/"] == [(1, 0, "s"), (2, 0, ""), (2, 0, "k")]),
    # ADD of a URL: the file is named from Go's url.Parse path (decoded), __unnamed__ when the URL
    # has no file name or does not parse (a port that is not digits, a bad % escape)
    "add-url-file-names": Regression(
        "FROM busybox\nADD http://x/ /a/\nADD http://x:x2/f /b/\nADD http://x/a%zz /c/\nADD http://x/%C3%A9t%C3%A9%20b /d/\n",
        lambda ops: [dict(o.source.attrs)["http.filename"] for o in ops if o.source.identifier.startswith("http")]
        == ["__unnamed__", "__unnamed__", "__unnamed__", "\u00e9t\u00e9 b"]),
    # COPY/ADD --exclude patterns are not expanded (v0.32.2), as the UndefinedVar check assumes
    "copy-exclude-not-expanded": Regression(
        "FROM busybox\nARG E=*.log\nCOPY --exclude=$E --exclude=${E}x a /\n",
        lambda ops: [tuple(c.exclude_patterns) for c in _copies(ops)] == [("$E", "${E}x")], files={"a": "a\n"}),
    # RUN --mount from= names a stage by name only: a number is an image (v0.32.2), while
    # COPY --from=0 is stage 0
    "mount-from-number-is-an-image": Regression(
        "FROM busybox AS a\nRUN echo > /a\nFROM busybox\nCOPY --from=0 /a /b\n"
        "RUN --mount=from=0,target=/s --mount=type=cache,from=0,target=/c true\n",
        lambda ops: sum(s.startswith("docker-image://docker.io/library/0:latest@") for s in _sources(ops)) == 1
        and sum(o.WhichOneof("op") == "exec" for o in ops) == 2),
    # COPY heredoc sources are every word that parses as one, an fd prefix too (3<<"TWO"); chomp
    # and expand are the source word's (found on tests/frontends/dockerfile/test_syntax.py)
    "copy-heredoc-with-fd": Regression(
        "FROM busybox\nENV V=v\nCOPY <<-'ONE' 3<<\"TWO\" <<X /dest/\n\tfirst $V\n\tONE\nsecond $V\nTWO\n\t$V\nX\n",
        lambda ops: sorted((a.mkfile.path, a.mkfile.data) for o in ops if o.WhichOneof("op") == "file"
                           for a in o.file.actions if a.WhichOneof("action") == "mkfile")
        == [("/ONE", b"first $V\n"), ("/TWO", b"second $V\n"), ("/X", b"\tv\n")]
        and not any(s.startswith("local://") for s in _sources(ops))),
    # ... and in the JSON form too, where the instruction has no heredoc body (an empty file)
    "copy-heredoc-json-form": Regression(
        'FROM busybox\nCOPY ["<<EOF", "/dest/"]\n',
        lambda ops: [(a.mkfile.path, a.mkfile.data) for o in ops if o.WhichOneof("op") == "file"
                     for a in o.file.actions if a.WhichOneof("action") == "mkfile"] == [("/EOF", b"")]
        and not any(s.startswith("local://") for s in _sources(ops))),
    # ADD of a git@ source names it in the context's local.followpaths (every non-http(s) source
    # is followed), when the stage reads the context at all
    "add-git-at-in-followpaths": Regression(
        "FROM busybox\nADD git@github.com:moby/buildkit.git /src\nCOPY a /a\n",
        lambda ops: [json.loads(o.source.attrs["local.followpaths"]) for o in ops
                     if o.WhichOneof("op") == "source" and o.source.identifier.startswith("local://")]
        == [["a", "git@github.com:moby/buildkit.git"]],
        files={"a": "x\n"}),
    # a RUN --mount=type=tmpfs in a reached stage is a use of the whole context: no followpaths
    # for the context another stage copies from
    "tmpfs-mount-whole-context": Regression(
        "FROM busybox AS b\nCOPY a /a\nFROM busybox\nRUN --mount=type=tmpfs,target=/s true\nCOPY --from=b /a /a\n",
        lambda ops: [dict(o.source.attrs) for o in ops if o.WhichOneof("op") == "source"
                     and o.source.identifier.startswith("local://")] == [{"local.sharedkeyhint": "context"}],
        files={"a": "x\n"}),
}


def _copies(ops: list[Any]) -> list[Any]:
    return [a.copy for o in ops if o.WhichOneof("op") == "file" for a in o.file.actions
            if a.WhichOneof("action") == "copy"]


def _ops(data: bytes) -> list[Any]:
    return [pb().Op.FromString(b) for b in getattr(pb().Definition.FromString(data), "def")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_lowering_matches_df2llb(name: str) -> None:
    buildkit_tool("df2llb")
    reg = CASES[name]
    r = compare(Case(name, reg.dockerfile, "inline", build_args=reg.build_args, target=reg.target,
                     files=reg.files))
    assert r.buildkit.error is None, r.buildkit.error
    assert r.mason.error is None, r.mason.error
    assert r.buildkit.data is not None and r.mason.data is not None
    assert reg.fact(_ops(r.buildkit.data)), "the Dockerfile no longer exercises the bug in BuildKit's lowering"
    assert reg.fact(_ops(r.mason.data))
    assert sorted(r.mason.ops) == sorted(r.buildkit.ops)
    assert digest_of(r.mason.ops[-1]) == digest_of(r.buildkit.ops[-1])
    assert r.caps_diffs() == []
