"""Docker's default seccomp profile turned into a step's ``linux.seccomp`` (mason/backends/containerd/seccomp.py)."""

from __future__ import annotations

import json

import pytest

from mason.backends.containerd.seccomp import DEFAULT_PROFILE, linux_seccomp
from mason.backends.containerd.spec import DEFAULT_CAPS, Process, build_spec
from mason.ir.errors import MasonError


def _names(prof) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sc in prof["syscalls"]:
        for n in sc["names"]:
            out.setdefault(n, []).append(sc["action"])
    return out


def test_default_profile_for_a_step_on_this_machine() -> None:
    prof = linux_seccomp(DEFAULT_CAPS, machine="x86_64", release="6.1.0-13-amd64")
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = _names(prof)
    assert names["read"] == ["SCMP_ACT_ALLOW"] and "arch_prctl" in names and "ptrace" in names
    assert "chroot" in names  # CAP_SYS_CHROOT is in Docker's default set
    for gated in ("mount", "unshare", "reboot", "init_module", "settimeofday", "bpf"):
        assert gated not in names, gated  # their capabilities are not
    assert names["clone3"] == ["SCMP_ACT_ERRNO"]  # ENOSYS, so libc falls back to clone
    clone3 = next(sc for sc in prof["syscalls"] if sc["names"] == ["clone3"])
    assert clone3["errnoRet"] == 38
    clone = next(sc for sc in prof["syscalls"] if sc["names"] == ["clone"])
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"  # no new namespaces without CAP_SYS_ADMIN


def test_conditions_follow_arch_caps_and_kernel() -> None:
    arm = _names(linux_seccomp(DEFAULT_CAPS, machine="aarch64", release="6.1"))
    assert "arch_prctl" not in arm and "arm_fadvise64_64" in arm
    old = _names(linux_seccomp(DEFAULT_CAPS, machine="x86_64", release="4.4.0"))
    assert "ptrace" not in old  # allowed from kernel 4.8
    admin = _names(linux_seccomp([*DEFAULT_CAPS, "CAP_SYS_ADMIN"], machine="x86_64", release="6.1"))
    assert "mount" in admin and "unshare" in admin and admin["clone3"] == ["SCMP_ACT_ALLOW"]


def test_build_spec_filters_all_but_privileged_steps() -> None:
    spec = build_spec(Process(args=("true",)), "c1")
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert json.loads(json.dumps(spec)) == spec
    assert "seccomp" not in build_spec(Process(args=("true",), privileged=True), "c2")["linux"]


def test_a_missing_or_bad_profile_is_one_error(tmp_path, monkeypatch) -> None:
    with pytest.raises(MasonError, match="seccomp profile .* is missing: install the Debian package"):
        linux_seccomp(DEFAULT_CAPS, path=str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    with pytest.raises(MasonError, match="is not a Docker seccomp profile"):
        linux_seccomp(DEFAULT_CAPS, path=str(bad))
    for i, text in enumerate(('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [1]}',
                              '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"]}]}',
                              '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "A"}]}',
                              '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [], "archMap": [3]}')):
        (tmp_path / f"bad{i}.json").write_text(text)
        with pytest.raises(MasonError, match="is not a Docker seccomp profile"):
            linux_seccomp(DEFAULT_CAPS, path=str(tmp_path / f"bad{i}.json"))
    monkeypatch.setenv("MASON_SECCOMP_PROFILE", str(tmp_path / "none.json"))
    with pytest.raises(MasonError, match="missing"):
        build_spec(Process(args=("true",)), "c3")
    assert DEFAULT_PROFILE.endswith("profiles/seccomp/default.json")
