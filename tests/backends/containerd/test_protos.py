"""Stub generation from Debian's containerd .proto files: rewriting, caching, racing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mason.backends.containerd import _protos
from mason.ir.errors import MasonError

ROOT = Path(__file__).resolve().parents[3]


def test_rewrite_strips_gogo_and_moves_imports() -> None:
    src = '''syntax = "proto3";
package containerd.types;
import weak "gogoproto/gogo.proto";
import weak "github.com/containerd/containerd/protobuf/plugin/fieldpath.proto";
import "google/protobuf/timestamp.proto";
import "github.com/containerd/containerd/api/types/mount.proto";
option (containerd.plugin.fieldpath_all) = true;
enum Kind {
	option (gogoproto.goproto_enum_prefix) = false;
	VIEW = 1 [(gogoproto.enumvalue_customname) = "KindView"];
}
message M {
	// see [google.rpc.Code][google.rpc.Code]
	string digest = 2 [(gogoproto.customtype) = "github.com/opencontainers/go-digest.Digest", (gogoproto.nullable) = false];
	int32 keep = 3 [deprecated = true, (gogoproto.nullable) = false];
}
'''
    out, deps = _protos.rewrite_proto(src)
    assert deps == ["github.com/containerd/containerd/api/types/mount.proto"]
    assert "gogo" not in out and "containerd.plugin" not in out and "fieldpath" not in out
    assert 'import "mason/backends/containerd/_stubs/api/types/mount.proto";' in out
    assert 'import "google/protobuf/timestamp.proto";' in out
    assert "string digest = 2 ;" in out or "string digest = 2;" in out
    assert "int32 keep = 3 [deprecated = true];" in out
    assert "VIEW = 1 ;" in out or "VIEW = 1;" in out
    assert "[google.rpc.Code][google.rpc.Code]" in out  # comments untouched


def test_load_gives_working_messages() -> None:
    pb = _protos.load()
    opts = pb.runc_options.Options(root="/x/runc")
    assert pb.runc_options.Options.FromString(opts.SerializeToString()).root == "/x/runc"
    assert pb.runc_options.Options.DESCRIPTOR.full_name == "containerd.runc.v1.Options"
    assert pb.content.WriteContentRequest.DESCRIPTOR.full_name == "containerd.services.content.v1.WriteContentRequest"
    assert pb.snapshots.Kind.Name(3) == "COMMITTED"
    assert _protos.load() is pb


def test_generation_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASON_CACHE", str(tmp_path))
    first = _protos.stubs_dir()
    stamp = (first / "INPUTS").stat().st_mtime_ns
    assert _protos.stubs_dir() == first
    assert (first / "INPUTS").stat().st_mtime_ns == stamp  # not regenerated
    assert [p.name for p in (tmp_path / "containerd-stubs").iterdir()] == [first.name]  # no temp left


_RACER = """
import sys
from mason.backends.containerd import _protos
pb = _protos.load()
assert pb.runc_options.Options(root="r").root == "r"
print(_protos.stubs_dir())
"""


def test_generation_is_safe_when_processes_race(tmp_path: Path) -> None:
    env = {**os.environ, "MASON_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _RACER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    dirs = {o.strip() for o, _ in outs}
    assert len(dirs) == 1
    assert [p.name for p in (tmp_path / "containerd-stubs").iterdir()] == [Path(dirs.pop()).name]


def test_missing_debian_package_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_protos, "GOCODE", tmp_path / "nowhere")
    with pytest.raises(MasonError) as e:
        _protos.stubs_dir()
    assert "golang-github-containerd-containerd-dev" in e.value.message


def test_a_services_stubs_load_when_it_is_first_used():
    """A client loads a service's generated modules when it first calls it (issue 17: a rebuild
    whose steps are all cached never needs tasks, diff or the runc options)."""
    import subprocess
    import sys

    child = (
        "import sys\n"
        "from mason.backends.containerd.client import Client\n"
        "c = Client('/nonexistent/containerd.sock')\n"
        "tasks = 'mason.backends.containerd._stubs.api.services.tasks.v1.tasks_pb2'\n"
        "before = tasks in sys.modules\n"
        "stub = c._tasks\n"
        "print(before, tasks in sys.modules, type(stub).__name__, c.pb.tasks.__name__ == tasks)\n")
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True", "TasksStub", "True"], p.stdout
