"""The exec primitive: processes in containers on overlay snapshots, on a real containerd."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import time
import uuid

import pytest

from mason.backends.containerd import exec as exec_mod
from mason.backends.containerd.layers import diff_snapshot
from mason.backends.containerd.spec import BindMount, Process, build_spec
from mason.ir.errors import MasonError

pytestmark = pytest.mark.integration


def sh(script: str, **kw) -> Process:
    return Process(args=("sh", "-c", script), **kw)


@pytest.fixture(params=[True, False], ids=["levers", "plain"])
def executor(request, containerd_env):
    """An executor in the session lease, with and without shim grouping + background delete;
    afterwards nothing may be left in containerd but committed snapshots."""
    lc = containerd_env.client.with_lease(containerd_env.lease)
    before = {s.name for s in lc.list_snapshots()}
    ex = containerd_env.executor(lc, group_shims=request.param, background_delete=request.param)
    yield ex
    ex.close()
    assert lc.list_containers() == []
    assert lc.list_tasks() == []
    leftover = [s for s in lc.list_snapshots() if s.name not in before and s.kind != "committed"]
    assert leftover == []


def test_echo_hi(executor, containerd_env) -> None:
    res = executor.run_step(Process(args=("echo", "hi")), containerd_env.busybox)
    assert (res.exit_code, res.stdout, res.stderr) == (0, b"hi\n", b"")


def test_nonzero_exit_and_stderr(executor, containerd_env) -> None:
    res = executor.run_step(sh("echo oops >&2; exit 3"), containerd_env.busybox, "never-committed")
    assert (res.exit_code, res.stdout, res.stderr) == (3, b"", b"oops\n")
    assert not executor.client.snapshot_exists("never-committed")


def test_written_file_lands_in_committed_snapshot(executor, containerd_env) -> None:
    lc = executor.client
    name = f"test-step-{uuid.uuid4().hex[:8]}"
    res = executor.run_step(sh("mkdir -p /out && cat /proc/uptime > /out/uptime && echo marker > /marker"),
                            containerd_env.busybox, name)
    assert res.exit_code == 0
    info = lc.stat_snapshot(name)
    assert (info.kind, info.parent) == ("committed", containerd_env.busybox)
    layer = diff_snapshot(lc, name)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(lc.read_blob(layer.digest)))) as tar:
        assert tar.extractfile("marker").read() == b"marker\n"
        assert float(tar.extractfile("out/uptime").read().split()[0]) > 0
    # The next step sees it on top of the committed snapshot.
    res = executor.run_step(Process(args=("cat", "/marker")), name)
    assert res.stdout == b"marker\n"
    lc.remove_snapshot(name)


def test_network_none_has_only_loopback(executor, containerd_env) -> None:
    res = executor.run_step(sh("ls /sys/class/net; cat /proc/net/dev"), containerd_env.busybox)
    assert res.exit_code == 0
    lines = res.stdout.decode().splitlines()
    assert lines[0] == "lo"
    devs = [ln.split(":")[0].strip() for ln in lines[1:] if ":" in ln]
    assert devs == ["lo"]


def test_host_network_sees_host_interfaces(executor, containerd_env) -> None:
    res = executor.run_step(Process(args=("ls", "/sys/class/net"), network="host"), containerd_env.busybox)
    assert res.exit_code == 0
    # veth pairs come and go with other builds' steps on the machine: compare the rest
    stable = lambda names: sorted(n for n in names if not n.startswith("veth"))  # noqa: E731
    assert stable(res.stdout.decode().split()) == stable(os.listdir("/sys/class/net"))


def test_user_cwd_env_hostname_and_bind_mount(executor, containerd_env, tmp_path) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    tmp_path.chmod(0o755)  # readable by nobody
    p = sh('id -u; id -g; pwd; echo "$GREETING"; cat /proc/sys/kernel/hostname; cat /mnt/in/in.txt',
           uid=65534, gid=65534, cwd="/tmp", env=("PATH=/bin", "GREETING=hello"), hostname="step",
           mounts=(BindMount(str(tmp_path), "/mnt/in"),))
    res = executor.run_step(p, containerd_env.busybox)
    assert res.stderr == b""
    assert res.stdout.decode().splitlines() == ["65534", "65534", "/tmp", "hello", "step", "from the host"]


def test_large_output_does_not_stall(executor, containerd_env) -> None:
    # 2 MiB through each pipe: far beyond a FIFO's 64 KiB buffer.
    res = executor.run_step(sh("head -c 2097152 /dev/zero; head -c 2097152 /dev/zero >&2"), containerd_env.busybox)
    assert (res.exit_code, len(res.stdout), len(res.stderr)) == (0, 2097152, 2097152)


def test_output_is_streamed(executor, containerd_env) -> None:
    seen: list[tuple[str, bytes]] = []
    executor.run_step(sh("echo a; echo b >&2"), containerd_env.busybox, output=lambda s, d: seen.append((s, d)))
    assert b"".join(d for s, d in seen if s == "stdout") == b"a\n"
    assert b"".join(d for s, d in seen if s == "stderr") == b"b\n"


def test_missing_program_is_an_error_and_leaves_nothing(executor, containerd_env) -> None:
    with pytest.raises(MasonError, match="no-such-program"):
        executor.run_step(Process(args=("/no-such-program",)), containerd_env.busybox, "never")


def test_interrupt_kills_and_cleans_up(executor, containerd_env, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Ctrl-C while the step runs: the task is killed and removed before the exception leaves.
    def interrupted(c, cid, fut):
        assert c.task(cid).status == "running"
        raise KeyboardInterrupt

    monkeypatch.setattr(exec_mod, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        executor.run_step(Process(args=("sleep", "60")), containerd_env.busybox, "never")
    lc = executor.client
    assert [c for c in lc.list_containers() if lc.container_labels(c).get(exec_mod.MANAGED_LABEL) == "step"] == []


def _shims(address: str) -> set[int]:
    found = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            # (not the short-lived ``containerd-shim-runc-v2 ... start`` / ``... delete`` that
            # containerd runs per task to find the group's shim or clean a bundle: they host nothing)
            if cmd[0].endswith(b"containerd-shim-runc-v2") and address.encode() in cmd and \
                    not {b"start", b"delete"} & set(cmd):
                found.add(int(p))
    # nor a shim's own child between its fork and the exec of runc (it has the shim's cmdline)
    return {p for p in found if _ppid(p) not in found}


def _ppid(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _no_shims_left(address: str, timeout: float = 10.0) -> bool:
    """Shims of deleted tasks exit on their own, a moment after Tasks.Delete returned."""
    deadline = time.monotonic() + timeout
    while _shims(address):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_shim_grouping_runs_every_step_in_the_anchor_shim(containerd_env) -> None:
    lc = containerd_env.client.with_lease(containerd_env.lease)
    assert _no_shims_left(containerd_env.address)  # earlier tests' per-step shims are gone
    with containerd_env.executor(lc, group_shims=True) as ex:
        ex.run_step(Process(args=("true",)), containerd_env.busybox)
        shims = _shims(containerd_env.address)
        assert len(shims) == 1  # the anchor's, which the step joined
        ex.run_step(Process(args=("true",)), containerd_env.busybox)
        assert _shims(containerd_env.address) == shims
    assert _no_shims_left(containerd_env.address)  # gone with the anchor


def test_failing_output_sink_still_cleans_up(executor, containerd_env) -> None:
    def sink(stream: str, data: bytes) -> None:
        raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        executor.run_step(sh("head -c 300000 /dev/zero"), containerd_env.busybox, "never", output=sink)
    assert not executor.client.snapshot_exists("never")


def test_reap_orphans_removes_what_dead_masons_left(containerd_env) -> None:
    lc = containerd_env.client.with_lease(containerd_env.lease)
    dead, alive = "0:0", exec_mod._process_identity(os.getpid())
    for owner, cid in ((dead, "orphan-1"), (alive, "live-1")):
        mounts = lc.prepare(f"{cid}-rootfs", containerd_env.busybox, {exec_mod.OWNER_LABEL: owner})
        lc.create_container(cid, build_spec(Process(args=("true",)), cid), labels={exec_mod.OWNER_LABEL: owner},
                            runc_root=str(containerd_env.daemon.runc_root))
        lc.create_task(cid, mounts)
    assert exec_mod.reap_orphans(lc) == 2  # the orphan's container (with its task) and snapshot
    assert lc.list_containers() == ["live-1"] and lc.list_tasks() == ["live-1"]
    assert not lc.snapshot_exists("orphan-1-rootfs") and lc.snapshot_exists("live-1-rootfs")
    lc.force_delete_task("live-1")
    lc.delete_container("live-1")
    lc.remove_snapshot("live-1-rootfs")


def test_reap_orphans_deletes_dead_builds_leases_only(containerd_env) -> None:
    # A build ended by a second signal (or SIGKILL) never deletes its lease; the next build's
    # sweep does. A live build's lease, and a lease that is no build's, stay.
    c = containerd_env.client
    dead, alive = "0:0", exec_mod._process_identity(os.getpid())
    ids = {name: c.create_lease(lease_id=f"reap-{name}-{uuid.uuid4().hex[:8]}", expire=None, labels=labels)
           for name, labels in (("dead", {"mason.build": "1", exec_mod.OWNER_LABEL: dead}),
                                ("live", {"mason.build": "1", exec_mod.OWNER_LABEL: alive}),
                                ("other", {exec_mod.OWNER_LABEL: dead}))}
    try:
        assert exec_mod.reap_orphans(c) >= 1  # other tests of this containerd may have left some
        left = c.list_leases()
        assert ids["dead"] not in left and ids["live"] in left and ids["other"] in left
    finally:
        for lid in ids.values():
            with contextlib.suppress(MasonError):
                c.delete_lease(lid)


def test_settle_waits_for_the_producing_task(containerd_env) -> None:
    # With background delete and the shim mounting the rootfs, the snapshot is committed while
    # its task may still have it mounted; settle() returns only once that task is gone
    # (run_step settles the parent by itself).
    lc = containerd_env.client.with_lease(containerd_env.lease)
    name = f"test-settle-{uuid.uuid4().hex[:8]}"
    with containerd_env.executor(lc, group_shims=False, background_delete=True, mount_rootfs=False) as ex:
        ex.run_step(Process(args=("touch", "/x")), containerd_env.busybox, name)
        ex.settle(name)
        assert lc.list_tasks() == []
        res = ex.run_step(Process(args=("ls", "/x")), name)
        assert (res.exit_code, res.timings["settle"] >= 0) == (0, True)
    lc.remove_snapshot(name)


def _overlay_uppers() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {o.split("=", 1)[1] for ln in f if " - overlay " in ln
                for o in ln.split(" - ", 1)[1].split()[-1].split(",") if o.startswith("upperdir=")}


def test_mason_mounted_rootfs_is_released_when_execute_returns(containerd_env) -> None:
    # mount_rootfs (the default): mason mounts the overlay and unmounts it as soon as the task has
    # exited, so the committed snapshot is free at once, whatever the background delete does.
    lc = containerd_env.client.with_lease(containerd_env.lease)
    key, name = f"test-active-{uuid.uuid4().hex[:8]}", f"test-released-{uuid.uuid4().hex[:8]}"
    with containerd_env.executor(lc, background_delete=True) as ex:
        mounts = lc.prepare(key, containerd_env.busybox)
        upper = next(o.split("=", 1)[1] for o in mounts[0].options if o.startswith("upperdir="))
        h = ex.execute(Process(args=("sh", "-c", "grep -c ' / overlay ' /proc/mounts; touch /x")), key,
                       parent=containerd_env.busybox, rootfs_mounts=mounts)
        assert (h.result.exit_code, h.result.stdout, h.released) == (0, b"1\n", True)
        assert upper not in _overlay_uppers()
        assert os.path.exists(os.path.join(upper, "x"))
        lc.commit(name, key)
        ex.hold(name, h)  # nothing to hold: settle returns at once
        ex.settle(name)
        res = ex.run_step(Process(args=("ls", "/x")), name)
        assert res.exit_code == 0
        assert not list((ex.io_dir / "rootfs").glob("*/*"))  # every mount point removed
    lc.remove_snapshot(name)


# -- privileged (security=insecure) ------------------------------------------------------------

PRIVILEGED_PROBE = ("mkdir -p /m && busybox mount -t tmpfs tmpfs /m && echo mount-ok; "
                    "echo 42 > /proc/sys/net/ipv4/ip_default_ttl && cat /proc/sys/net/ipv4/ip_default_ttl; "
                    "grep CapEff /proc/self/status; ls /dev")


def test_privileged_step_can_mount_write_sysctls_and_see_host_devices(executor, containerd_env) -> None:
    from mason.backends.containerd.spec import ALL_CAPS, all_caps, host_devices

    host_ttl = open("/proc/sys/net/ipv4/ip_default_ttl").read()
    res = executor.run_step(sh(PRIVILEGED_PROBE, privileged=True), containerd_env.busybox)
    out = res.stdout.decode()
    assert res.exit_code == 0, res.stderr
    assert "mount-ok\n" in out
    assert "\n42\n" in out  # /proc/sys writable; in the step's own network namespace:
    assert open("/proc/sys/net/ipv4/ip_default_ttl").read() == host_ttl
    cap_eff = int(next(ln for ln in out.splitlines() if ln.startswith("CapEff:")).split()[1], 16)
    assert cap_eff == sum(1 << ALL_CAPS.index(c) for c in all_caps())  # every capability we have
    assert cap_eff & (1 << 21)  # CAP_SYS_ADMIN among them
    extra = {os.path.basename(d["path"]) for d in host_devices() if os.path.dirname(d["path"]) == "/dev"}
    assert extra - {"null", "zero", "full", "tty", "random", "urandom"} <= set(out.split())


def test_sandboxed_step_cannot(executor, containerd_env) -> None:
    res = executor.run_step(sh(PRIVILEGED_PROBE), containerd_env.busybox)
    out = res.stdout.decode()
    assert "mount-ok" not in out and "\n42\n" not in out
    cap_eff = int(next(ln for ln in out.splitlines() if ln.startswith("CapEff:")).split()[1], 16)
    assert cap_eff & (1 << 21) == 0  # no CAP_SYS_ADMIN
