"""CVE-2024-23650 (BuildKit panicked on crafted LLB): a Definition mutated at random — bytes
flipped, cut, inserted, ops' bytes swapped or duplicated — decodes or fails with a
:class:`MasonError`, never another exception (tests/ir/test_codec.py has one case per known
structural defect; this fuzzes past them). Entitlement checks read the decoded ops only."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mason.backends.solver.entitlements import required
from mason.ir.codec import decode_definition
from mason.ir.errors import MasonError
from mason.ir.llb_pb import pb

P = pb()

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT.parent / "shared" / "corpus" / "buildkit-llb-v0.32").glob("*.llb"))[:40]
SEEDS = [p.read_bytes() for p in CORPUS]


def _decode(data: bytes) -> None:
    try:
        dd = decode_definition(data)
    except MasonError:
        return
    for op in dd.ops:
        required(op)


@st.composite
def _byte_mutations(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[i:i + draw(st.integers(1, 16))]
    return bytes(data)


@st.composite
def _op_shuffles(draw):
    d = P.Definition.FromString(draw(st.sampled_from(SEEDS)))
    ops = list(getattr(d, "def"))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["dup", "drop", "swap", "mutate"]))
        i = draw(st.integers(0, len(ops) - 1))
        if kind == "dup":
            ops.insert(draw(st.integers(0, len(ops))), ops[i])
        elif kind == "drop" and len(ops) > 1:
            ops.pop(i)
        elif kind == "swap":
            j = draw(st.integers(0, len(ops) - 1))
            ops[i], ops[j] = ops[j], ops[i]
        else:
            b = bytearray(ops[i])
            if b:
                b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
            ops[i] = bytes(b)
    del getattr(d, "def")[:]
    getattr(d, "def").extend(ops)
    return d.SerializeToString()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_byte_mutations())
def test_cve_2024_23650_mutated_bytes_are_errors_not_crashes(data):
    _decode(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_op_shuffles())
def test_cve_2024_23650_shuffled_ops_are_errors_not_crashes(data):
    _decode(data)


def test_corpus_seeds_present():
    assert len(SEEDS) >= 5
