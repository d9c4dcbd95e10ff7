"""The LLBBridge's bookkeeping: a bridge Solve records the request and answers with a reference;
Return hands the referenced request (or the client's error) to the Control/Solve waiting."""

from __future__ import annotations

import threading

import grpc
import pytest

from mason.ir.errors import MasonError
from mason.protos import buildkit
from mason.server.gateway import BUILD_ID_HEADER, LLB_CAPS, Bridge, FrontendCall


class Aborted(Exception):
    pass


class Ctx:
    def __init__(self, ref: str | None):
        self.md = [(BUILD_ID_HEADER, ref)] if ref else []

    def invocation_metadata(self):
        return self.md

    def abort(self, code, details):
        raise Aborted(code, details)


@pytest.fixture
def bridge():
    pb = buildkit.load()
    return Bridge(pb, lambda: pb.worker.WorkerRecord(ID="mason"))


def _solve_req(pb, **attrs):
    return pb.gateway.SolveRequest(Frontend="dockerfile.v0", FrontendOpt=attrs, allowResultReturn=True)


def test_solve_then_return_hands_over_the_request(bridge):
    pb = bridge.pb
    fwd = bridge.register("b1")
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(fwd.wait(lambda: False)))
    waiter.start()
    pong = bridge.Ping(pb.gateway.PingRequest(), Ctx("b1"))
    enabled = {c.ID for c in pong.FrontendAPICaps if c.Enabled}
    assert {"solve.base", "return", "proto.refarray"} <= enabled and "readfile" not in enabled
    assert {c.ID for c in pong.LLBCaps} == set(LLB_CAPS) and pong.Workers[0].ID == "mason"
    resp = bridge.Solve(_solve_req(pb, **{"build-arg:X": "1"}), Ctx("b1"))
    rid = resp.result.ref.id
    assert rid in fwd.refs
    bridge.Return(pb.gateway.ReturnRequest(result=pb.gateway.Result(ref=pb.gateway.Ref(id=rid))), Ctx("b1"))
    waiter.join(10)
    assert got == [FrontendCall("dockerfile.v0", {"build-arg:X": "1"}, b"")]
    bridge.unregister(fwd)


def test_the_clients_error_fails_the_build(bridge):
    pb = bridge.pb
    fwd = bridge.register("b2")
    req = pb.gateway.ReturnRequest()
    req.error.code, req.error.message = 2, "failed to solve: boom"
    bridge.Return(req, Ctx("b2"))
    with pytest.raises(MasonError, match="boom"):
        fwd.wait(lambda: False)


def test_unknown_reference_and_missing_build(bridge, monkeypatch):
    pb = bridge.pb
    fwd = bridge.register("b3")
    bridge.Return(pb.gateway.ReturnRequest(result=pb.gateway.Result(ref=pb.gateway.Ref(id="nope"))), Ctx("b3"))
    with pytest.raises(MasonError, match="unknown reference"):
        fwd.wait(lambda: False)
    with pytest.raises(Aborted) as e:
        bridge.Ping(pb.gateway.PingRequest(), Ctx(None))
    assert e.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
    monkeypatch.setattr("mason.server.gateway.WAIT_FOR_BUILD", 0.01)
    with pytest.raises(Aborted) as e:
        bridge.Ping(pb.gateway.PingRequest(), Ctx("nobody"))
    assert e.value.args[0] == grpc.StatusCode.NOT_FOUND


def test_cancelled_while_waiting_and_refused_calls(bridge):
    pb = bridge.pb
    fwd = bridge.register("b4")
    with pytest.raises(MasonError, match="cancelled"):
        fwd.wait(lambda: True)
    with pytest.raises(MasonError, match="already running"):
        bridge.register("b4")
    with pytest.raises(Aborted) as e:
        bridge.ReadFile(pb.gateway.ReadFileRequest(), Ctx("b4"))
    assert e.value.args[0] == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(Aborted, match="subrequest"):
        bridge.Solve(_solve_req(pb, requestid="frontend.outline"), Ctx("b4"))
    bridge.unregister(fwd)


def test_every_bridge_call_of_the_stubs_has_a_handler(bridge):
    """Every LLBBridge method the generated stubs list (they gain calls as BuildKit's API
    grows: ResolveSourceMeta) registers — an unsupported one is UNIMPLEMENTED, and the daemon
    still starts."""
    from concurrent import futures

    from mason.server.gateway import register

    pb = buildkit.load()
    methods = [m.name for m in pb.gateway.DESCRIPTOR.services_by_name["LLBBridge"].methods]
    assert "ResolveSourceMeta" in methods and "Solve" in methods
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        register(server, pb, bridge)  # raised AttributeError for ResolveSourceMeta
    finally:
        server.stop(None)
    with pytest.raises(Aborted) as e:
        bridge.ResolveSourceMeta(None, Ctx("x"))
    assert e.value.args[0] == grpc.StatusCode.UNIMPLEMENTED
