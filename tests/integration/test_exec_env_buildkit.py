"""What a RUN step's process sees, against BuildKit v0.32.2 (issue 10, "Same image as BuildKit":
the executor matters as much as the lowering): the same Dockerfile, built by mason and by the
session buildkitd, dumps each aspect of its runtime environment into a file, and the files must
be the same — capabilities, seccomp mode (Docker's default filter), no_new_privs, umask, hostname,
/etc/hosts and resolv.conf, /dev, the mount table (types and options), rlimits, working
directory, environment, read-only /sys and /proc/sys, masked paths, /tmp, /dev/shm, the user's
groups.

Deliberate differences (left out of the comparison, with the reason):

* BuildKit mounts ``/dev/otel-grpc.sock`` and sets ``OTEL_*``/``TRACEPARENT`` for its own
  tracing; mason has no tracing to hand on (so no socket, no variables).
* ``oom_score_adj``: a mason step is a containerd task and inherits its shim's score (containerd's
  + 1), as any containerd container does; buildkitd's OCI worker starts runc itself (0).
* The overlay rootfs's options name each builder's snapshot directories.
"""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

CHECKS = {
    "caps": "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
    "umask": "umask",
    "hostname": "hostname; cat /etc/hostname",
    "hosts": "cat /etc/hosts",
    "resolv": "grep -v '^#' /etc/resolv.conf",
    "dev": "ls -la /dev | awk '{print $1, $3, $4, $NF}' | grep -v otel-grpc.sock",
    "mounts": "awk '{print $2, $3, $4}' /proc/self/mounts | grep -v -e otel-grpc.sock -e '^/ overlay' | sort",
    "limits": "cat /proc/self/limits",
    "cwd": "pwd; ls -ld . | awk '{print $1, $3, $4}'",
    "env": "env | sort | grep -v -E '^(OTEL_|TRACEPARENT)'",
    "sysrw": "touch /sys/x; echo $?; touch /proc/sys/x; echo $?; mkdir /sys/fs/cgroup/x; echo $?",
    "masked": "ls /proc/kcore /proc/keys /proc/timer_list /sys/firmware; head -c 50 /proc/kcore; echo",
    "tmp": "ls -ld /tmp /run; ls -la /run",
    "shm": "df /dev/shm | tail -1 | awk '{print $2}'",
    "pid1": "echo $$",
    "groups": "id",
    "syscalls": "unshare -U true; echo unshare=$?; swapoff -a; echo swapoff=$?",
}


def _results(archive) -> dict[str, str]:
    out = {}
    with tarfile.open(archive) as tar:
        def blob(d):
            return tar.extractfile("blobs/sha256/" + d.split(":", 1)[1]).read()  # type: ignore[union-attr]
        m = json.loads(blob(json.loads(tar.extractfile("index.json").read())["manifests"][0]["digest"]))  # type: ignore[union-attr]
        if "manifests" in m:
            m = json.loads(blob(m["manifests"][0]["digest"]))
        for la in m["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(la["digest"]))) as lt:
                for mem in lt.getmembers():
                    name = mem.name.lstrip("./")
                    if name.startswith("res/") and mem.isfile():
                        out[name[4:]] = lt.extractfile(mem).read().decode()  # type: ignore[union-attr]
    return out


def test_step_runtime_environment_as_buildkit(build_env, buildkitd, tmp_path):
    lines = [f"FROM {build_env.base}", "RUN mkdir /res", "WORKDIR /new/wd"]
    lines += [f"RUN ({cmd}) > /res/{k} 2>&1 || true" for k, cmd in CHECKS.items()]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "\n".join(lines) + "\n"})
    build_env.build(ctx, outputs=(f"type=oci,dest={tmp_path / 'mason.tar'}",))
    buildkitd.build_dockerfile(ctx, f"type=oci,dest={tmp_path / 'buildkit.tar'}")
    got, want = _results(tmp_path / "mason.tar"), _results(tmp_path / "buildkit.tar")
    assert set(got) == set(CHECKS) == set(want)
    diffs = {k: (got[k], want[k]) for k in CHECKS if got[k] != want[k]}
    assert not diffs, "\n".join(f"== {k}\n-- mason:\n{a}-- buildkit:\n{b}" for k, (a, b) in diffs.items())
    # what they agree on, spelled out where it was wrong before
    assert re.search(r"^Seccomp:\s+2$", got["caps"], re.M), got["caps"]  # Docker's default filter
    assert "/sys/fs/cgroup" in got["mounts"] and "/etc/hosts ext4 ro,nosuid,nodev,noexec" in got["mounts"]
    assert "unshare=0" not in got["syscalls"]  # unshare(CLONE_NEWUSER) is filtered
