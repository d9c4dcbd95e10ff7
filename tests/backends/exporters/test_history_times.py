"""History times as BuildKit v0.32.2's image writer gives them (no containerd needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mason.backends.exporters.image import format_time_ns, normalize_history, parse_time

BASE = {"created": "2023-11-14T22:13:20Z", "created_by": "base"}
NOW = "2030-01-01T00:00:00Z"


def _run(name: str) -> dict:
    return {"created_by": f"RUN {name}"}


def _meta(name: str) -> dict:
    return {"created_by": name, "empty_layer": True}


def test_layers_get_their_times_and_metadata_the_neighbouring_layers() -> None:
    hist = [BASE, _meta("ENV A"), _run("c"), _meta("ENV B"), _run("d"), _meta("LABEL")]
    out = normalize_history(hist, 3, created=NOW, layer_times=[None, "T1", "T2"])
    assert [h["created"] for h in out] == [BASE["created"], "T1", "T1", "T1", "T2", "T2"]


def test_no_new_layer_metadata_takes_the_base_images_time() -> None:
    out = normalize_history([BASE, _meta("ENV X"), _meta("LABEL")], 1, created=NOW, layer_times=[None])
    assert [h["created"] for h in out] == [BASE["created"]] * 3


def test_nothing_dated_gets_the_fallback_and_a_layers_own_time_is_kept() -> None:
    out = normalize_history([_run("a")], 1, created=NOW, layer_times=[None])
    assert out[0]["created"] == NOW
    out = normalize_history([{"created_by": "RUN", "created": "OWN"}], 1, created=NOW, layer_times=["T"])
    assert out[0]["created"] == "OWN"


def test_an_epoch_still_clamps() -> None:
    out = normalize_history([BASE, _run("a")], 2, created="1970-01-01T00:00:10Z", source_date_epoch=10,
                            layer_times=[None, "2026-12-07T12:17:15.5Z"])
    assert [h["created"] for h in out] == ["1970-01-01T00:00:10Z"] * 2


def test_format_time_ns_is_rfc3339nano() -> None:
    assert format_time_ns(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert format_time_ns(1_700_000_000_500_782_443) == "2023-11-14T22:13:20.500782443Z"
    assert format_time_ns(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_format_time_ns_reads_back(ns: int) -> None:
    t = parse_time(format_time_ns(ns))
    assert t is not None and abs(t - ns / 1e9) < 1e-5
