"""Python gRPC stubs for BuildKit's control and session API, generated at first use (never
committed), the same way as containerd's (:mod:`mason.ir.protogen`). The one place BuildKit's
protos are turned into stubs: ``mason serve`` uses them, and the gateway frontend adds the
gateway protos here.

Sources: the ``.proto`` files Debian's ``golang-github-docker-docker-dev`` installs under
``/usr/share/gocode/src/github.com/moby/buildkit`` (``api/services/control``, ``api/types``,
``session/{filesync,auth,secrets,sshforward}``, ``frontend/gateway/pb``: the LLBBridge a
``buildctl build`` drives on the same connection) and fsutil's ``types/*.proto`` from
``golang-github-tonistiigi-fsutil-dev``. Rewritten for protoc:

* everything moves under the package ``mason.protos._buildkit``;
* BuildKit's ``solver/pb/ops.proto`` is *not* compiled again: the import points at mason's own
  ``llb.proto`` (the same package ``pb``, the same messages and field numbers), so a
  ``SolveRequest``'s ``Definition`` is a mason ``pb.Definition`` and no second ``pb`` package
  clashes in the descriptor pool;
* the files Debian ships are BuildKit v0.8's. The fields and calls newer clients (buildctl
  v0.32) send or read are added from BuildKit's published field numbers (:data:`ADDITIONS`):
  ``SolveRequest.Exporters`` (13) and friends, ``Control.Info``, status warnings, worker
  versions. Anything else a newer client sends is kept as an unknown field (proto3) and
  ignored.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path

from mason.ir import llb_pb, protogen
from mason.ir.errors import MasonError

BUILDKIT_SRC = "github.com/moby/buildkit"
FSUTIL_SRC = "github.com/tonistiigi/fsutil"
GOOGLEAPIS_SRC = "github.com/gogo/googleapis"
STATUS_PROTO = f"{GOOGLEAPIS_SRC}/google/rpc/status.proto"
# gogo's google.rpc.Status is compiled into containerd's stubs too; two files defining one
# full name cannot share protobuf's descriptor pool, so BuildKit's copy gets its own package
# (the wire format does not carry package names).
STATUS_PACKAGE = "mason.buildkit.rpc"
OPS_PROTO = f"{BUILDKIT_SRC}/solver/pb/ops.proto"
APT_PACKAGES = "golang-github-docker-docker-dev golang-github-tonistiigi-fsutil-dev"

PACKAGE = "mason.protos._buildkit"
_PKG_PATH = PACKAGE.replace(".", "/")
GENERATOR_VERSION = "3"

ROOTS = (
    f"{BUILDKIT_SRC}/api/services/control/control.proto",
    f"{BUILDKIT_SRC}/session/filesync/filesync.proto",
    f"{BUILDKIT_SRC}/session/auth/auth.proto",
    f"{BUILDKIT_SRC}/session/secrets/secrets.proto",
    f"{BUILDKIT_SRC}/session/sshforward/ssh.proto",
    f"{BUILDKIT_SRC}/frontend/gateway/pb/gateway.proto",
    f"{FSUTIL_SRC}/types/wire.proto",
)

# What BuildKit added after v0.8 that mason reads or writes: file -> message -> fields (each
# added unless the message already has its number), plus whole messages and calls.
ADDITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "api/services/control/control.proto": {
        "SolveRequest": ("bool Internal = 11;", "bytes SourcePolicy = 12;", "repeated Exporter Exporters = 13;",
                         "bool EnableSessionExporter = 14;"),
        "StatusResponse": ("repeated VertexWarning warnings = 4;",),
        "Vertex": ("pb.ProgressGroup progressGroup = 8;",),
        "UsageRecord": ("repeated string Parents = 12;",),
    },
    "api/types/worker.proto": {
        "WorkerRecord": ("BuildkitVersion BuildkitVersion = 5;",),
    },
    # what a v0.32 frontend image sends to mason's LLBBridge (mason.gateway)
    "frontend/gateway/pb/gateway.proto": {
        "ResolveImageConfigRequest": ("int32 ResolverType = 5;", "string SessionID = 6;", "string StoreID = 7;"),
        "ResolveImageConfigResponse": ("string Ref = 3;",),
    },
}


def _warning(message: str, subject: str) -> str:
    """A build warning as BuildKit's protos spell it (control's ``VertexWarning``, the gateway's
    ``WarnRequest``): ``subject`` (field 1: what it is about), then the same six fields."""
    return f"""message {message} {{
  {subject} = 1;
  int64 level = 2;
  bytes short = 3;
  repeated bytes detail = 4;
  string url = 5;
  pb.SourceInfo info = 6;
  repeated pb.Range ranges = 7;
}}
"""


NEW_MESSAGES: dict[str, str] = {
    "api/services/control/control.proto": """
message Exporter {
  string Type = 1;
  map<string, string> Attrs = 2;
}

""" + _warning("VertexWarning", "string vertex") + """
message InfoRequest {}

message InfoResponse {
  moby.buildkit.v1.types.BuildkitVersion buildkitVersion = 1;
}
""",
    "api/types/worker.proto": """
message BuildkitVersion {
  string package = 1;
  string version = 2;
  string revision = 3;
}
""",
    "frontend/gateway/pb/gateway.proto": """
message EvaluateRequest {
  string Ref = 1;
}

message EvaluateResponse {}

""" + _warning("WarnRequest", "string digest") + """
message WarnResponse {}

message ResolveSourceMetaRequest {
  pb.SourceOp Source = 1;
  pb.Platform Platform = 2;
  string LogName = 3;
  string ResolveMode = 4;
  ResolveSourceGitRequest Git = 5;
  ResolveSourceImageRequest Image = 6;
}

message ResolveSourceImageRequest {
  bool NoConfig = 1;
  bool AttestationChain = 2;
  repeated string ResolveAttestations = 3;
}

message ResolveSourceGitRequest {
  bool ReturnObject = 1;
}

message ResolveSourceMetaResponse {
  pb.SourceOp Source = 1;
  ResolveSourceImageResponse Image = 2;
  ResolveSourceGitResponse Git = 3;
  ResolveSourceHTTPResponse HTTP = 4;
}

message ResolveSourceImageResponse {
  string Digest = 1;
  bytes Config = 2;
}

message ResolveSourceGitResponse {
  string Checksum = 1;
  string Ref = 2;
  string CommitChecksum = 3;
}

message ResolveSourceHTTPResponse {
  string Checksum = 1;
  string Filename = 2;
}
""",
}
NEW_RPCS = {"api/services/control/control.proto": ("rpc Info(InfoRequest) returns (InfoResponse);",),
            "frontend/gateway/pb/gateway.proto": ("rpc Evaluate(EvaluateRequest) returns (EvaluateResponse);",
                                                  "rpc Warn(WarnRequest) returns (WarnResponse);",
                                                  "rpc ResolveSourceMeta(ResolveSourceMetaRequest) returns "
                                                  "(ResolveSourceMetaResponse);")}


def _relative(path: str) -> str | None:
    for src in (BUILDKIT_SRC, FSUTIL_SRC):
        if path.startswith(src + "/"):
            return path[len(src) + 1:]
    return None


def _map_import(path: str) -> str | tuple[str, str] | None:
    if path == OPS_PROTO:
        return ("external", llb_pb.PROTO_NAME)
    if path == "stat.proto":  # fsutil's wire.proto imports its sibling by bare name
        path = f"{FSUTIL_SRC}/types/stat.proto"
    if path == STATUS_PROTO:
        return f"{_PKG_PATH}/googleapis/google/rpc/status.proto"
    if path.startswith(BUILDKIT_SRC + "/"):
        return f"{_PKG_PATH}/buildkit/{path[len(BUILDKIT_SRC) + 1:]}"
    if path.startswith(FSUTIL_SRC + "/"):
        return f"{_PKG_PATH}/fsutil/{path[len(FSUTIL_SRC) + 1:]}"
    return None


def _source_file(path: str) -> Path:
    if path == "stat.proto":
        path = f"{FSUTIL_SRC}/types/stat.proto"
    return protogen.GOCODE / path


def _message_span(text: str, name: str) -> tuple[int, int] | None:
    """(start of the body, index of the closing brace) of top-level ``message NAME``."""
    m = re.search(rf"^message\s+{name}\s*\{{", text, re.M)
    if m is None:
        return None
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return m.end(), i - 1


def patch(path: str, text: str) -> str:
    """Add :data:`ADDITIONS`, :data:`NEW_MESSAGES` and :data:`NEW_RPCS` to one original file
    (what a newer Debian file already has is left as it is)."""
    if path == STATUS_PROTO:
        return re.sub(r"^package\s+google\.rpc\s*;", f"package {STATUS_PACKAGE};", text, count=1, flags=re.M)
    if path.endswith("/frontend/gateway/pb/gateway.proto"):
        text = re.sub(r"\bgoogle\.rpc\.Status\b", f"{STATUS_PACKAGE}.Status", text)
    rel = _relative(path) or path
    for message, fields in ADDITIONS.get(rel, {}).items():
        span = _message_span(text, message)
        if span is None:
            raise MasonError(f"{path}: no message {message} to extend; reinstall {APT_PACKAGES}")
        body = text[span[0]:span[1]]
        new = [f for f in fields if not re.search(rf"=\s*{f.rsplit('=', 1)[1].strip(' ;')}\s*[;\[]", body)]
        if new:
            text = text[:span[1]] + "".join(f"\t{f}\n" for f in new) + text[span[1]:]
    block = NEW_MESSAGES.get(rel, "")
    for name in re.findall(r"^message\s+(\w+)", block, re.M):
        span = _message_span(block, name)
        if span is not None and _message_span(text, name) is None:
            start = block.index(f"message {name}")
            text += "\n" + block[start:span[1] + 1] + "\n"
    for rpc in NEW_RPCS.get(rel, ()):
        call = rpc.split("(")[0]
        if not re.search(rf"^\s*{re.escape(call)}\s*\(", text, re.M):
            svc = re.search(r"^service\s+\w+\s*\{", text, re.M)
            if svc is None:
                raise MasonError(f"{path}: no service to extend; reinstall {APT_PACKAGES}")
            text = text[:svc.end()] + f"\n\t{rpc}" + text[svc.end():]
    return text


def _collect() -> dict[str, str]:
    if not (protogen.GOCODE / BUILDKIT_SRC / "api").is_dir() or not (protogen.GOCODE / FSUTIL_SRC / "types").is_dir():
        raise MasonError(f"BuildKit's API definitions are missing (under {protogen.GOCODE}); "
                         f"install the Debian packages {APT_PACKAGES}")
    return protogen.collect(ROOTS, _map_import, _source_file, package_hint=APT_PACKAGES, patch=patch)


def source_files() -> list[Path]:
    """The ``.proto`` files under ``MASON_GOCODE`` the stubs are made from (a frontend image
    carries them, so the stubs it was built with are found again by their inputs)."""
    read: list[Path] = []

    def record(path: str) -> Path:
        read.append(_source_file(path))
        return read[-1]

    protogen.collect(ROOTS, _map_import, record, package_hint=APT_PACKAGES, patch=patch)
    return read


def stubs_dir() -> Path:
    """The directory holding the generated tree, generating it if needed."""
    llb = llb_pb.include_dir()
    return protogen.generated_tree("buildkit-stubs", _collect(), grpc=True, includes=[llb],
                                   version=f"{GENERATOR_VERSION}/{llb.name}", what="BuildKit's API stubs",
                                   packages=[_PKG_PATH])


@dataclass(frozen=True)
class Stubs:
    control: types.ModuleType  # moby.buildkit.v1 messages
    control_grpc: types.ModuleType
    worker: types.ModuleType  # moby.buildkit.v1.types
    filesync: types.ModuleType
    filesync_grpc: types.ModuleType
    auth: types.ModuleType
    auth_grpc: types.ModuleType
    secrets: types.ModuleType
    secrets_grpc: types.ModuleType
    ssh: types.ModuleType
    ssh_grpc: types.ModuleType
    gateway: types.ModuleType  # moby.buildkit.v1.frontend (LLBBridge)
    gateway_grpc: types.ModuleType
    caps: types.ModuleType  # moby.buildkit.v1.apicaps APICap
    fsutil: types.ModuleType  # fsutil.types Packet
    stat: types.ModuleType  # fsutil.types Stat
    llb: types.ModuleType  # mason's pb (Definition, Platform)


_MODULES = {
    "control": "buildkit.api.services.control.control",
    "filesync": "buildkit.session.filesync.filesync",
    "auth": "buildkit.session.auth.auth",
    "secrets": "buildkit.session.secrets.secrets",
    "ssh": "buildkit.session.sshforward.ssh",
    "gateway": "buildkit.frontend.gateway.pb.gateway",
}

_MESSAGES = {  # modules with messages only
    "worker": "buildkit.api.types.worker",
    "fsutil": "fsutil.types.wire",
    "stat": "fsutil.types.stat",
    "caps": "buildkit.util.apicaps.pb.caps",
}


def _load() -> Stubs:
    llb = llb_pb.pb()  # registers mason_llb_pb2, which control_pb2 imports
    kw = protogen.load_stubs(PACKAGE, stubs_dir() / _PKG_PATH, "BuildKit API stubs generated by mason",
                             _MODULES, _MESSAGES)
    return Stubs(llb=llb, **kw)


_once = protogen.Once(_load)


def load() -> Stubs:
    """Generate (once per machine and input set) and import BuildKit's stubs (once per process)."""
    return _once()
