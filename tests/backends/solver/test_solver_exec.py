"""The solver on builder-API graphs, against the session containerd and registry: ExecOp with
every mount type, FileOp, MergeOp, DiffOp, ConfigOp, the result store."""

from __future__ import annotations

import os
import stat

import pytest

from mason.backends.solver.events import Recorder, VertexCached, VertexStarted
from mason.backends.solver.secrets import Secrets
from mason.backends.solver.solver import SolveOptions
from mason.ir.builder import bind, cache, diff, image, merge, mkdir, mkfile, scratch, secret, tmpfs
from mason.ir.errors import MasonError
from mason.ir.graph import Graph
from tests.backends.solver.conftest import mounted_result

pytestmark = pytest.mark.integration


def solve(solver, state, **kw):
    rec = Recorder()
    out = solver.solve(Graph.of(state.ref), options=SolveOptions(**kw), events=rec)
    return out["default"], rec


def read(containerd_env, result, path):
    lc = containerd_env.client.with_lease(containerd_env.lease)
    with mounted_result(lc, result) as d:
        p = os.path.join(d, path.lstrip("/"))
        return open(p, "rb").read()


def stat_of(containerd_env, result, path):
    lc = containerd_env.client.with_lease(containerd_env.lease)
    with mounted_result(lc, result) as d:
        return os.lstat(os.path.join(d, path.lstrip("/")))


def exists(containerd_env, result, path):
    lc = containerd_env.client.with_lease(containerd_env.lease)
    with mounted_result(lc, result) as d:
        return os.path.lexists(os.path.join(d, path.lstrip("/")))


@pytest.fixture
def base(busybox_image):
    return image(busybox_image.ref)


def test_run_writes_file_and_second_solve_is_cached(solver, base, containerd_env):
    st = base.run("echo hello > /greeting").root()
    out, rec = solve(solver, st)
    assert read(containerd_env, out.result, "/greeting") == b"hello\n"
    assert len(rec.of(VertexStarted)) == 2  # the image source and the RUN
    out2, rec2 = solve(solver, st)
    assert out2.result.snapshot == out.result.snapshot
    assert [e.name for e in rec2.of(VertexCached)] == ["/bin/sh -c 'echo hello > /greeting'"]
    out3, rec3 = solve(solver, st, no_cache=True)
    assert len(rec3.of(VertexCached)) == 0


def test_failing_run_names_op_and_shows_output(solver, base, containerd_env):
    st = base.run("echo line1; echo secret-free >&2; exit 3", name="RUN fail").root()
    with pytest.raises(MasonError) as ei:
        solve(solver, st)
    msg = ei.value.format()
    assert "RUN fail" in msg and "exit code: 3" in msg and "line1" in msg and "secret-free" in msg
    lc = containerd_env.client
    assert lc.list_tasks() == [] and lc.list_containers() == []
    assert not [s for s in lc.list_snapshots() if s.kind == "active" and "mason-exec" in s.name]


def test_mount_types(solver, base, containerd_env, tmp_path):
    data = scratch().file(mkdir("/d").mkfile("/d/f", b"bound\n"))
    script = ("cat /in/f > /out.txt; echo x >> /cache/n; wc -l < /cache/n > /cachecount; "
              "echo t > /tmpfs/t; cat /run/secrets/tok > /dev/null && echo secret-ok > /sec; "
              "id -u > /uid; cat /etc/hosts > /hosts; mount | grep -c ' /tmpfs ' > /tmpfsmount; "
              "echo w > /rw/new")
    ex = base.run(script, mounts=[bind(data, "/in", selector="/d", readonly=True),
                                  cache("/cache", id="c1"), tmpfs("/tmpfs"),
                                  secret("/run/secrets/tok", id="tok"),
                                  bind(data, "/rw")])
    secrets = Secrets(values={"tok": b"hunter2-value"})
    out, rec = solve(solver, ex.root(), secrets=secrets)
    r = out.result
    assert read(containerd_env, r, "/out.txt") == b"bound\n"
    assert read(containerd_env, r, "/cachecount").strip() == b"1"
    assert read(containerd_env, r, "/sec") == b"secret-ok\n"
    assert read(containerd_env, r, "/uid") == b"0\n"
    assert b"localhost" in read(containerd_env, r, "/hosts")
    for stub in ("/in", "/cache", "/tmpfs", "/run", "/rw", "/etc/hosts", "/etc/resolv.conf"):
        assert not exists(containerd_env, r, stub), stub
    # the writable bind mount's own output
    rw = solver.solve(Graph.of(ex.get_mount("/rw").ref), options=SolveOptions(secrets=secrets))["default"].result
    assert read(containerd_env, rw, "/new") == b"w\n"
    assert read(containerd_env, rw, "/d/f") == b"bound\n"


def test_cache_mount_persists(solver, base, containerd_env):
    a = base.run("echo a >> /c/log; cp /c/log /seen", mounts=[cache("/c", id="persist")]).root()
    b = base.run("echo b >> /c/log; cp /c/log /seen", mounts=[cache("/c", id="persist")]).root()
    ra, _ = solve(solver, a)
    rb, _ = solve(solver, b)
    assert read(containerd_env, rb.result, "/seen") == b"a\nb\n"


def test_user_cwd_env(solver, base, containerd_env):
    st = (base.with_user("nobody").with_cwd("/work/dir").with_env("FOO", "bar")
          .run("id -u > /tmp/u; id -g > /tmp/g; pwd > /tmp/pwd; echo $FOO > /tmp/foo").root())
    out, _ = solve(solver, st)
    r = out.result
    assert read(containerd_env, r, "/tmp/u") == b"65534\n"
    assert read(containerd_env, r, "/tmp/pwd") == b"/work/dir\n"
    assert read(containerd_env, r, "/tmp/foo") == b"bar\n"


def test_unknown_user_is_an_error(solver, base):
    with pytest.raises(MasonError, match="unable to find user nosuch"):
        solve(solver, base.with_user("nosuch").run("true").root())


def test_network_none_has_only_loopback(solver, base, containerd_env):
    st = base.run("ls /sys/class/net > /ifaces", network="none").root()
    out, _ = solve(solver, st)
    assert read(containerd_env, out.result, "/ifaces").split() == [b"lo"]


def test_network_host_needs_entitlement(solver, base):
    st = base.run("true", network="host").root()
    with pytest.raises(MasonError, match="network.host"):
        solve(solver, st)
    solve(solver, st, entitlements=frozenset({"network.host"}))


def test_fileop_merge_diff(solver, base, containerd_env):
    a = scratch().file(mkdir("/a").mkfile("/a/x", b"1"))
    b = scratch().file(mkfile("/b", b"2", mode=0o600))
    m = merge([base, a, b])
    out, _ = solve(solver, m)
    assert read(containerd_env, out.result, "/a/x") == b"1"
    assert read(containerd_env, out.result, "/b") == b"2"
    assert stat.S_IMODE(stat_of(containerd_env, out.result, "/b").st_mode) == 0o600
    assert exists(containerd_env, out.result, "/bin/busybox")
    changed = base.run("echo new > /new; rm /etc/group").root()
    d = diff(base, changed)
    out, _ = solve(solver, d)
    assert read(containerd_env, out.result, "/new") == b"new\n"
    assert not exists(containerd_env, out.result, "/bin/busybox")
    # the diff carries the deletion when merged onto the base again
    back = merge([base, d])
    out, _ = solve(solver, back)
    assert not exists(containerd_env, out.result, "/etc/group")
    assert read(containerd_env, out.result, "/new") == b"new\n"


def test_config_op_is_identity(solver, base, containerd_env):
    st = base.run("echo 1 > /one").root().config(("env", "A", "b"), created_by="ENV A=b")
    out, _ = solve(solver, st)
    assert read(containerd_env, out.result, "/one") == b"1\n"
    assert "A=b" in out.image_config["config"]["Env"]


def test_parallel_independent_runs(solver, base, containerd_env):
    a = base.run("cat /proc/uptime > /t; sleep 1; cat /proc/uptime >> /t").root()
    b = base.run("cat /proc/uptime > /u; sleep 1; cat /proc/uptime >> /u").root()
    m = merge([a, b])
    out, _ = solve(solver, m)
    ta = [float(x.split()[0]) for x in read(containerd_env, out.result, "/t").splitlines()]
    tb = [float(x.split()[0]) for x in read(containerd_env, out.result, "/u").splitlines()]
    assert ta[0] < tb[1] and tb[0] < ta[1]  # the intervals overlap


def test_security_insecure_needs_entitlement(solver, base):
    st = base.run("true", security="insecure").root()
    with pytest.raises(MasonError, match="security.insecure"):
        solve(solver, st)


def test_security_insecure_runs_privileged_with_the_entitlement(solver, base, containerd_env):
    script = "mkdir -p /m && busybox mount -t tmpfs tmpfs /m && touch /m/x && echo ok > /mounted"
    st = base.run(script, security="insecure").root()
    out, _ = solve(solver, st, entitlements=frozenset({"security.insecure"}))
    assert read(containerd_env, out.result, "/mounted") == b"ok\n"
    assert not exists(containerd_env, out.result, "/m/x")  # the tmpfs, not the layer, had it
    with pytest.raises(MasonError, match="exit code"):  # the same step in the sandbox
        solve(solver, base.run(script).root())
