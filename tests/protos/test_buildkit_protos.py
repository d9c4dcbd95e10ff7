"""BuildKit's stubs from Debian's v0.8 .proto files, patched with the fields newer clients
(buildctl v0.32) send: generation, the additions, unknown fields kept, LLB shared with mason."""

from __future__ import annotations

from mason.ir import llb_pb
from mason.protos import buildkit


def _unknown_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field the stubs do not declare."""
    tag = (number << 3) | 2
    out = bytearray()
    for v in (tag, len(payload)):
        while v >= 0x80:
            out.append(v & 0x7F | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out) + payload


def test_newer_solve_fields_and_unknown_ones_survive() -> None:
    pb = buildkit.load()
    req = pb.control.SolveRequest(Ref="r1", Frontend="dockerfile.v0", Session="s1")
    req.Exporters.add(Type="image", Attrs={"name": "x:1"})
    req.FrontendAttrs["build-arg:X"] = "1"
    wire = req.SerializeToString() + _unknown_field(99, b"from the future")
    got = pb.control.SolveRequest.FromString(wire)
    assert (got.Ref, got.Frontend, got.Session) == ("r1", "dockerfile.v0", "s1")
    assert [(e.Type, dict(e.Attrs)) for e in got.Exporters] == [("image", {"name": "x:1"})]
    assert got.SerializeToString().endswith(_unknown_field(99, b"from the future"))  # proto3 keeps them


def test_definition_is_masons_llb() -> None:
    pb = buildkit.load()
    assert pb.control.SolveRequest.DESCRIPTOR.fields_by_name["Definition"].message_type.full_name == "pb.Definition"
    req = pb.control.SolveRequest()
    getattr(req.Definition, "def").append(b"op")
    assert type(req.Definition) is llb_pb.pb().Definition  # one pb package, no second ops.proto
    back = llb_pb.pb().Definition.FromString(req.Definition.SerializeToString())
    assert list(getattr(back, "def")) == [b"op"]


def test_patch_adds_only_what_is_missing() -> None:
    src = "syntax = \"proto3\";\nservice Control {\n\trpc Solve(SolveRequest) returns (SolveResponse);\n}\n" \
          "message SolveRequest {\n\tstring Ref = 1;\n\tbool Internal = 11;\n}\nmessage StatusResponse {\n}\n" \
          "message Vertex {\n}\nmessage UsageRecord {\n}\n"
    out = buildkit.patch("github.com/moby/buildkit/api/services/control/control.proto", src)
    assert out.count("= 11;") == 1  # already there: not added again
    assert "repeated Exporter Exporters = 13;" in out
    assert "rpc Info(InfoRequest) returns (InfoResponse);" in out
    assert "message InfoResponse" in out and "message Exporter {" in out
    assert buildkit.patch("github.com/moby/buildkit/api/services/control/control.proto", out) == out


def test_worker_version_and_info() -> None:
    pb = buildkit.load()
    rec = pb.worker.WorkerRecord(ID="w")
    rec.BuildkitVersion.version = "v1"
    assert pb.worker.WorkerRecord.FromString(rec.SerializeToString()).BuildkitVersion.version == "v1"
    assert hasattr(pb.control_grpc.ControlServicer, "Info")


def test_gateway_stubs_share_llb_and_coexist_with_containerd() -> None:
    from mason.backends.containerd import _protos

    _protos.load()  # containerd's stubs hold gogo's google.rpc.Status; both sets load in one process
    pb = buildkit.load()
    g = pb.gateway
    assert g.SolveRequest.DESCRIPTOR.fields_by_name["Definition"].message_type.full_name == "pb.Definition"
    status = g.ReturnRequest.DESCRIPTOR.fields_by_name["error"].message_type
    assert status.full_name == f"{buildkit.STATUS_PACKAGE}.Status"
    req = g.ReturnRequest(result=g.Result(ref=g.Ref(id="r")))
    req.error.code, req.error.message = 2, "boom"
    back = g.ReturnRequest.FromString(req.SerializeToString())
    assert (back.result.ref.id, back.error.code, back.error.message) == ("r", 2, "boom")
    for call in ("Ping", "Solve", "Return", "ReadFile", "ExecProcess"):
        assert hasattr(pb.gateway_grpc.LLBBridgeServicer, call)


def test_status_is_renamed_only_in_the_files_that_use_it() -> None:
    st = buildkit.patch(buildkit.STATUS_PROTO, 'syntax = "proto3";\npackage google.rpc;\nmessage Status {}\n')
    assert f"package {buildkit.STATUS_PACKAGE};" in st
    gw = buildkit.patch("github.com/moby/buildkit/frontend/gateway/pb/gateway.proto",
                        "service LLBBridge {\n}\nmessage ResolveImageConfigRequest {\n}\n"
                        "message ResolveImageConfigResponse {\n}\n"
                        "message ReturnRequest {\n\tgoogle.rpc.Status error = 2;\n}\n")
    assert f"{buildkit.STATUS_PACKAGE}.Status error = 2;" in gw and "google.rpc" not in gw
