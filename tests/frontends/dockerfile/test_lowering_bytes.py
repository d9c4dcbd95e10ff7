"""The Dockerfile lowering's output, byte for byte, is what ``lowering_bytes.json`` recorded (see
:mod:`tests.frontends.dockerfile.lowering_record`): the proof that porting the lowering onto the
builder API (issue 12) changed nothing. Re-record only when a change of output is intended."""

from __future__ import annotations

import pytest

from tests.frontends.dockerfile.lowering_record import CORPUS, ROOT, VARIANTS, load, lower

RECORDED = load()


def test_the_record_is_the_whole_set() -> None:
    lowered = [v for _, row in RECORDED for v in row.values()]
    assert len(RECORDED) >= 300
    assert sum(v.startswith("defs:") for v in lowered) >= 600
    assert {k for _, row in RECORDED for k in row} == set(VARIANTS)
    texts = {e.dockerfile() for e, _ in RECORDED}
    files = sorted((ROOT / "tests" / "frontends" / "dockerfile" / "golden").glob("*.Dockerfile"))
    for d in ("buildkit-llb", "buildkit-llb-v0.32"):
        files += sorted((CORPUS / d).glob("*.Dockerfile"))
    assert len(files) >= 15
    missing = [str(p) for p in files if p.read_text() not in texts]
    assert missing == []
    assert sum(e.id.startswith("tests/integration/") for e, _ in RECORDED) >= 50


@pytest.mark.parametrize("entry, lowered", RECORDED, ids=[e.id for e, _ in RECORDED])
def test_lowering_is_byte_identical(entry, lowered) -> None:
    got = {v: lower(entry, v) for v in lowered}
    assert got == lowered
