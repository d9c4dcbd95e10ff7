"""The one stub-loading helper every stub set uses (:func:`mason.ir.protogen.load_stubs`, and
:class:`~mason.ir.protogen.Once` for ``load()``): a small service generated for real, its
messages and gRPC stubs imported by attribute name; ``make`` runs once under concurrent calls."""

from __future__ import annotations

import threading

import pytest

from mason.backends.containerd import _protos
from mason.ir import protogen
from mason.protos import buildkit

PROTO = """syntax = "proto3";
package demo.v1;
message Ping { string text = 1; }
service Echo { rpc Say(Ping) returns (Ping); }
"""
TYPES = """syntax = "proto3";
package demo.v1;
message Only { int32 n = 1; }
"""


def test_load_stubs_imports_services_and_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("MASON_CACHE", str(tmp_path))
    pkg = "mason_test_demo_stubs"  # the tree's top directory: generated imports name it
    tree = protogen.generated_tree("demo-stubs", {f"{pkg}/v1/echo.proto": PROTO, f"{pkg}/v1/types.proto": TYPES},
                                   grpc=True, what="demo stubs", packages=[pkg])
    kw = protogen.load_stubs(pkg, tree / pkg, "demo", {"echo": "v1.echo"}, {"types": "v1.types"})
    assert sorted(kw) == ["echo", "echo_grpc", "types"]
    assert kw["echo"].Ping(text="hi").text == "hi"
    assert hasattr(kw["echo_grpc"], "EchoStub")
    assert kw["types"].Only(n=3).n == 3
    with pytest.raises(ModuleNotFoundError):
        protogen.load_stubs(pkg, tree / pkg, "demo", {"nope": "v1.missing"})


def test_once_makes_the_value_once_for_concurrent_callers():
    calls: list[int] = []
    gate = threading.Event()

    def make() -> object:
        gate.wait(5)
        calls.append(1)
        return object()

    once = protogen.Once(make)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(once())) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)


def test_both_api_stub_sets_load_through_it():
    c = _protos.load()
    assert c is _protos.load() and c.content_grpc.ContentStub and c.mount.Mount
    b = buildkit.load()
    assert b is buildkit.load() and b.control_grpc.ControlStub and b.llb.Definition and b.stat.Stat
