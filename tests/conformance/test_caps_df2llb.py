"""Issue 10 item 2: the caps mason writes in each op's metadata are BuildKit v0.32.2's. Each
Dockerfile below is lowered by ``../shared/tools/buildkit/df2llb`` and by mason; the caps of
every op (compared as the multiset of (op type, caps) pairs, so the check holds even where an
op's bytes still differ) and of the terminal op must be equal."""

from __future__ import annotations

import pytest

from mason.ir.llb_pb import pb
from tests.conformance.collect import Case
from tests.conformance.run import compare
from tests.fixtures.buildkitd import buildkit_tool

CHECKSUM = "sha256:" + "a" * 64

DOCKERFILES = {
    "mounts-and-modes": f"""FROM busybox
COPY --link a /a
COPY --chmod=0644 --exclude=*.x a /b
RUN --mount=type=secret,id=s,env=S --mount=type=ssh --mount=type=tmpfs,target=/t,size=10 \\
    --mount=type=bind,from=busybox,source=/etc,target=/e --network=none --security=insecure true
ADD --checksum={CHECKSUM} --chmod=600 --chown=1:2 https://x.example/f /f
ADD --keep-git-dir https://github.com/moby/buildkit.git#v0.1 /g
RUN --mount=type=cache,target=/c,from=busybox,source=/x true
RUN --mount=type=bind,target=/m,rw true
COPY <<EOF /h
hi
EOF
WORKDIR /w
COPY --parents a /p/
ADD --unpack=true a /u
""",
    "sources": """FROM busybox AS first
ADD --keep-git-dir git@github.com:moby/buildkit.git#v0.1 /g
RUN --network=host --mount=type=cache,target=/c,sharing=private true
ADD https://example.com/x /x
RUN --mount=type=secret,id=a true
FROM scratch
COPY --link --from=busybox / /
FROM busybox AS b
RUN --mount=type=bind,from=first,target=/x ls
""",
}


def _caps_by_kind(data: bytes) -> list[tuple[str, tuple[str, ...]]]:
    from mason.ir.codec import digest_of

    d = pb().Definition.FromString(data)
    out = []
    for b in getattr(d, "def"):
        kind = pb().Op.FromString(b).WhichOneof("op") or "terminal"
        out.append((kind, tuple(sorted(d.metadata[digest_of(b)].caps))))
    return out


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_caps_match_buildkit(name: str) -> None:
    buildkit_tool("df2llb")
    r = compare(Case(name, DOCKERFILES[name], "inline", files={"a": "a\n"}))
    assert r.buildkit.error is None and r.mason.error is None
    bk, ms = _caps_by_kind(r.buildkit.data), _caps_by_kind(r.mason.data)  # type: ignore[arg-type]
    assert len(bk) > 3 and all(caps for _, caps in bk)
    assert sorted(ms) == sorted(bk)
    assert r.caps_diffs() == []
