"""The lowering cache (``mason.lowering_cache``, issue 17): an unchanged rebuild takes the last
lowering's graph without running the frontend; every input that changes the lowering — the text,
build args, target, platform, ``.dockerignore``, the answers of the image resolver, mason's code —
misses; only the built-in Dockerfile frontend is cached; a damaged entry is a miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from mason import lowering_cache
from mason.driver import LowerRequest, lower_request
from mason.frontends.dockerfile.frontend import DockerfileFrontend
from mason.ir import codec
from mason.ir.resolver import InMemoryResolver
from mason.lowering_cache import LoweringCache

BUSYBOX = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"}}

TEXT = """\
FROM busybox AS base
ARG V=1
RUN echo $V > /v
COPY . /src
from busybox
COPY --from=base /v /v
EXPOSE 80
"""


def resolver(config=BUSYBOX) -> InMemoryResolver:
    r = InMemoryResolver()
    r.add("busybox", config)
    return r


class Counting:
    """Counts the built-in Dockerfile frontend's lowerings."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.n = 0
        real = DockerfileFrontend.lower

        def lower(fe, request):
            self.n += 1
            return real(fe, request)

        monkeypatch.setattr(DockerfileFrontend, "lower", lower)


@pytest.fixture
def lowerings(monkeypatch: pytest.MonkeyPatch) -> Counting:
    return Counting(monkeypatch)


def ctx(tmp_path: Path, text: str = TEXT, ignore: str | None = None) -> Path:
    d = tmp_path / "ctx"
    d.mkdir(exist_ok=True)
    (d / "Dockerfile").write_text(text)
    if ignore is not None:
        (d / ".dockerignore").write_text(ignore)
    return d


def lower(tmp_path: Path, cache: LoweringCache | None, res=None, **kw):
    kw.setdefault("context", str(tmp_path / "ctx"))
    kw.setdefault("lint", True)
    return lower_request(LowerRequest(**kw), resolver=res or resolver(), cache=cache)


def same(a, b) -> None:
    assert codec.encode_graph(a.graph) == codec.encode_graph(b.graph)
    assert [o.image_config for o in a.graph.outputs] == [o.image_config for o in b.graph.outputs]
    assert (a.warnings, a.frontend, a.pipeline, a.stages, a.checks_failed) == \
        (b.warnings, b.frontend, b.pipeline, b.stages, b.checks_failed)
    assert [(c.format(), c.rule, str(c.loc)) for c in a.checks] == [(c.format(), c.rule, str(c.loc)) for c in b.checks]


def test_an_unchanged_lowering_is_taken_from_the_cache(tmp_path: Path, lowerings: Counting) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    first = lower(tmp_path, cache)
    assert lowerings.n == 1
    assert first.checks, "the text has a build-check warning (FromAsCasing) to carry over"
    again = lower(tmp_path, cache)
    assert lowerings.n == 1, "the second lowering ran the frontend"
    same(first, again)
    fresh = lower(tmp_path, None)  # and it is what lowering now gives
    same(fresh, again)


@pytest.mark.parametrize("change", ["text", "build_arg", "target", "platform", "dockerignore", "level"])
def test_every_input_of_the_lowering_is_in_the_key(tmp_path: Path, lowerings: Counting, change: str) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    lower(tmp_path, cache)
    kw: dict = {}
    if change == "text":
        ctx(tmp_path, TEXT.replace("EXPOSE 80", "EXPOSE 81"))
    elif change == "build_arg":
        kw["build_args"] = {"V": "2"}
    elif change == "target":
        kw["target"] = "base"
    elif change == "platform":
        kw["platform"] = "linux/arm64"
    elif change == "dockerignore":
        ctx(tmp_path, ignore="secret\n")
    elif change == "level":
        kw["level"] = 0
    got = lower(tmp_path, cache, **kw)
    assert lowerings.n == 2, f"a changed {change} was served from the cache"
    same(lower(tmp_path, cache, **kw), got)
    assert lowerings.n == 2, "the changed lowering was not kept"
    same(lower(tmp_path, None, **kw), got)


def test_a_changed_base_image_misses(tmp_path: Path, lowerings: Counting) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    first = lower(tmp_path, cache)
    moved = dict(BUSYBOX, config={**BUSYBOX["config"], "Env": ["PATH=/usr/bin"]})  # another config, digest
    got = lower(tmp_path, cache, res=resolver(moved))
    assert lowerings.n == 2
    assert codec.encode_graph(got.graph) != codec.encode_graph(first.graph)
    same(lower(tmp_path, None, res=resolver(moved)), got)


def test_a_base_image_that_is_gone_is_the_error_lowering_gives(tmp_path: Path, lowerings: Counting) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    lower(tmp_path, cache)
    with pytest.raises(Exception, match="busybox"):
        lower(tmp_path, cache, res=InMemoryResolver())


def test_changed_code_misses(tmp_path: Path, lowerings: Counting, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    lower(tmp_path, cache)
    monkeypatch.setattr(lowering_cache, "_fingerprint", "0" * 64)  # as another version of mason
    lower(tmp_path, cache)
    assert lowerings.n == 2


def test_the_fingerprint_follows_the_package_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "frontends").mkdir(parents=True)
    (pkg / "frontends" / "x.py").write_text("a = 1\n")
    monkeypatch.setattr(lowering_cache, "_PACKAGE", pkg)
    monkeypatch.setattr(lowering_cache, "_fingerprint", None)
    one = lowering_cache.code_fingerprint()
    (pkg / "frontends" / "x.py").write_text("a = 22\n")
    monkeypatch.setattr(lowering_cache, "_fingerprint", None)
    assert lowering_cache.code_fingerprint() != one


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other key"])
def test_a_damaged_entry_is_a_miss(tmp_path: Path, lowerings: Counting, damage: str) -> None:
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    first = lower(tmp_path, cache)
    (entry,) = list((tmp_path / "root" / "lowering").glob("*.llb"))
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[:len(data) - 7])
    elif damage == "garbage":
        entry.write_bytes(data[:40] + b"\xff" * 64 + data[104:])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:  # a valid entry of another key under this name
        other = LoweringCache(tmp_path / "other")
        lower(tmp_path, other, build_args={"V": "9"})
        entry.write_bytes(next((tmp_path / "other" / "lowering").glob("*.llb")).read_bytes())
    n = lowerings.n
    got = lower(tmp_path, cache)
    assert lowerings.n == n + 1
    same(first, got)
    lower(tmp_path, cache)
    assert lowerings.n == n + 1, "the entry was not written again"


def test_only_the_builtin_dockerfile_frontend_is_cached(tmp_path: Path) -> None:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Mockerfile.yaml").write_text("apiVersion: v1alpha1\nimages:\n- name: x\n  from: busybox\n")
    cache = LoweringCache(tmp_path / "root")
    try:
        lower_request(LowerRequest(context=str(d), dockerfile=str(d / "Mockerfile.yaml")), resolver=resolver(),
                      cache=cache)
    except Exception:  # noqa: BLE001 - whatever the mockerfile gives, nothing may be cached
        pass
    assert not list((tmp_path / "root").glob("lowering/*.llb"))


def test_ir_dumps_are_never_served_from_the_cache(tmp_path: Path, lowerings: Counting) -> None:
    import io

    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    lower(tmp_path, cache)
    err = io.StringIO()
    lower_request(LowerRequest(context=str(tmp_path / "ctx"), lint=True, print_after_all=True), resolver=resolver(),
                  cache=cache, err=err)
    assert lowerings.n == 2 and err.getvalue()


def test_entries_are_bounded_and_clear_empties_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lowering_cache, "MAX_ENTRIES", 3)
    ctx(tmp_path)
    cache = LoweringCache(tmp_path / "root")
    for v in range(5):
        lower(tmp_path, cache, build_args={"V": str(v)})
    assert len(list((tmp_path / "root" / "lowering").glob("*.llb"))) == 3
    assert lowering_cache.clear(tmp_path / "root") == 3
    assert not list((tmp_path / "root" / "lowering").iterdir())


def test_the_records_graph_drawing_is_kept_with_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph a build's history record keeps is drawn once per lowering entry, outputs and
    masked values: a cached lowering's record gets the same bytes without drawing again."""
    import json

    from mason.backends.dump import graph as dump_graph
    from mason.backends.solver.history import HistoryRecorder
    from mason.driver.records import attach_graph

    ctx(tmp_path, TEXT.replace("ARG V=1", "ARG V=hunter22"))
    cache = LoweringCache(tmp_path / "root")
    drawn: list[int] = []
    real = dump_graph.graph_from_ir
    monkeypatch.setattr(dump_graph, "graph_from_ir", lambda *a, **k: drawn.append(1) or real(*a, **k))

    def record(low, masked: tuple[str, ...]) -> bytes:
        with HistoryRecorder(tmp_path / "state", meta={}) as rec:
            attach_graph(rec, low.graph, ["default"], masked, low.graph_records)
        return (rec.dir / "graph.json").read_bytes()

    first_low = lower(tmp_path, cache)
    assert first_low.graph_records is not None
    first = record(first_low, ("hunter22",))
    assert drawn == [1] and b"hunter22" not in first
    assert json.loads(first) == json.loads(json.dumps(real(first_low.graph, ["default"], mask_env=True,
                                                           masked=("hunter22",)).to_json(), default=str))
    hit = lower(tmp_path, cache)
    assert record(hit, ("hunter22",)) == first and drawn == [1], "the cached lowering's record was drawn again"
    record(hit, ("other",))  # other masked values: another drawing
    assert drawn == [1, 1]
    assert record(lower(tmp_path, None), ("hunter22",)) == first and drawn == [1, 1, 1]  # no cache: drawn


@pytest.mark.parametrize("url", ["http://user:s3cr3t-pw@127.0.0.1:1/f.txt", "https://t0ken-s3cr3t@example.com/f"])
def test_a_lowering_with_url_credentials_is_never_kept(tmp_path: Path, lowerings: Counting, url: str) -> None:
    """Issue 11 (GHSA-gc89-7gcr-jxqc): credentials reach no file under the root — a lowering
    whose Definition holds a URL's user:password (or token) is lowered again each time, never
    written to the cache."""
    ctx(tmp_path, f"FROM busybox\nADD {url} /f\n")
    cache = LoweringCache(tmp_path / "root")
    lower(tmp_path, cache)
    lower(tmp_path, cache)
    assert lowerings.n == 2
    secret = b"s3cr3t"
    assert not [p for p in (tmp_path / "root").rglob("*") if p.is_file() and secret in p.read_bytes()]
    ctx(tmp_path, "FROM busybox\nADD http://127.0.0.1:1/f.txt /f\n")  # without credentials: kept
    lower(tmp_path, cache)
    lower(tmp_path, cache)
    assert lowerings.n == 3


def test_a_deferred_cache_writes_only_when_committed(tmp_path: Path, lowerings: Counting) -> None:
    """A build keeps its lowering only once it succeeded (mason.driver.building commits after
    the solve): before the commit nothing is under the root, after it the entry and the
    record's drawing are, and a later lowering takes them."""
    from mason.lowering_cache import Deferred

    ctx(tmp_path)
    deferred = Deferred(LoweringCache(tmp_path / "root"))
    low = lower(tmp_path, deferred)  # type: ignore[arg-type]
    assert low.graph_records is not None
    low.graph_records.put(["default"], (), b"{}")
    assert not (tmp_path / "root").exists(), "a lowering was kept before its build succeeded"
    deferred.commit()
    assert len(list((tmp_path / "root" / "lowering").glob("*.llb"))) == 1
    assert low.graph_records.get(["default"], ()) == b"{}"
    again = Deferred(LoweringCache(tmp_path / "root"))
    lower(tmp_path, again)  # type: ignore[arg-type]
    assert lowerings.n == 1
    dropped = Deferred(LoweringCache(tmp_path / "other"))  # never committed: a failed build
    lower(tmp_path, dropped)  # type: ignore[arg-type]
    assert not (tmp_path / "other").exists()
