"""Issue 11 (gap "resource limits"): ``--shm-size`` and ``--ulimit`` as buildx users know them
(BuildKit's ``shm-size`` and ``ulimit`` frontend options: a sized ``/dev/shm`` tmpfs and
``Meta.ulimit`` on every RUN, so they are part of the step's key), ``--memory`` and
``--cpu-quota``/``--cpu-period`` as limits of every step's cgroup (how the machine runs the step,
not part of its key), all applied through the OCI runtime spec — checked from inside real steps
(``df``, ``ulimit``; the step's own cgroup files read by a privileged step) — and one clear line
for every malformed value."""

from __future__ import annotations

import pytest

from mason.backends.containerd.spec import Process, build_spec
from mason.frontends.dockerfile.frontend import DockerfileLowering
from mason.frontends.dockerfile.lower import LowerOptions
from mason.ir.errors import MasonError
from mason.ir.ops import ExecOp, MountType, Ulimit, walk_ops
from mason.ir.runlimits import format_ulimits, parse_size, parse_ulimit, parse_ulimits
from tests.integration.conftest import write


def test_sizes_as_docker_reads_them():
    assert parse_size("64m", "--shm-size") == 64 << 20
    assert parse_size("1g", "x") == 1 << 30
    assert parse_size("1.5G", "x") == 3 << 29
    assert parse_size("512MiB", "x") == 512 << 20
    assert parse_size("1048576", "x") == 1 << 20
    assert parse_size("10kb", "x") == 10 << 10
    for bad in ("", "m", "-1m", "1x", "0", "1 gg", "99999999999p"):
        with pytest.raises(MasonError, match=r"invalid --shm-size "):
            parse_size(bad, "--shm-size")


def test_ulimits_as_docker_reads_them():
    assert parse_ulimit("nofile=1024:2048") == Ulimit("nofile", 1024, 2048)
    assert parse_ulimit("nproc=100") == Ulimit("nproc", 100, 100)
    assert parse_ulimit("core=-1") == Ulimit("core", -1, -1)
    assert parse_ulimit("stack=8192:-1") == Ulimit("stack", 8192, -1)
    assert parse_ulimits(["nofile=1:2,nproc=3", "nofile=5"]) == (Ulimit("nproc", 3, 3), Ulimit("nofile", 5, 5))
    assert parse_ulimits(format_ulimits((Ulimit("nofile", 1, 2),))) == (Ulimit("nofile", 1, 2),)
    for bad, why in [("nofile", "expected NAME=SOFT"), ("files=1", "unknown name 'files'"),
                     ("nofile=x", "'x' is not a number"), ("nofile=2:1", "soft limit must not be above"),
                     ("nofile=-1:10", "soft limit must not be above"), ("nofile=1:", "expected NAME=SOFT"),
                     ("nofile=1:2:3", "expected NAME=SOFT")]:
        with pytest.raises(MasonError, match=why):
            parse_ulimit(bad)


def test_the_runtime_spec_carries_them():
    spec = build_spec(Process(args=("true",), rlimits=(("RLIMIT_NOFILE", 10, 20), ("RLIMIT_CORE", -1, -1)),
                              memory=64 << 20, cpu_quota=50000, cpu_period=100000), "c1")
    rl = {r["type"]: (r["soft"], r["hard"]) for r in spec["process"]["rlimits"]}
    assert rl == {"RLIMIT_NOFILE": (10, 20), "RLIMIT_CORE": (2**64 - 1, 2**64 - 1)}
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20} and res["cpu"] == {"quota": 50000, "period": 100000}
    plain = build_spec(Process(args=("true",)), "c2")
    assert [r["type"] for r in plain["process"]["rlimits"]] == ["RLIMIT_NOFILE"]
    assert set(plain["linux"]["resources"]) == {"devices"}


def _execs(options: LowerOptions) -> list[ExecOp]:
    graph = DockerfileLowering(options).lower("FROM scratch\nRUN a\nRUN b\n", "Dockerfile")
    return [op for op in walk_ops(o.ref.op for o in graph.outputs) if isinstance(op, ExecOp)]


def test_the_dockerfile_frontend_puts_them_on_every_run_as_buildkit():
    plain = _execs(LowerOptions())
    limited = _execs(LowerOptions(shm_size=128 << 20, ulimits=(Ulimit("nofile", 1024, 2048),)))
    assert len(plain) == len(limited) == 2
    for p, op in zip(plain, limited, strict=True):
        assert not p.meta.ulimits and not any(m.dest == "/dev/shm" for m in p.mounts)
        assert op.meta.ulimits == (Ulimit("nofile", 1024, 2048),)
        shm = [m for m in op.mounts if m.dest == "/dev/shm"]
        assert len(shm) == 1 and shm[0].mount_type == MountType.TMPFS and shm[0].tmpfs.size == 128 << 20
        assert op.digest != p.digest  # a part of the step, so of its cache key (as BuildKit)


# -- real builds -------------------------------------------------------------------------------


def _build(env, ctx, *args, check=True):
    p = env.cli("build", "--progress=plain", *args, str(ctx))
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.mark.integration
def test_shm_size_and_ulimits_reach_the_step(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm && ulimit -Sn > /nofile-soft && "
        "ulimit -Hn > /nofile-hard && ulimit -u > /nproc && ulimit -c > /core\n")})
    out = tmp_path / "out"
    _build(env, ctx, "--shm-size", "96m", "--ulimit", "nofile=1000:2000", "--ulimit", "nproc=4000",
           "--ulimit", "core=-1", "-o", f"type=local,dest={out}")
    assert (out / "shm").read_text().strip() == str(96 * 1024)
    assert (out / "nofile-soft").read_text().strip() == "1000"
    assert (out / "nofile-hard").read_text().strip() == "2000"
    assert (out / "nproc").read_text().strip() == "4000"
    assert (out / "core").read_text().strip() == "unlimited"
    plain = tmp_path / "plain"
    _build(env, ctx, "-o", f"type=local,dest={plain}")  # not the cached step: the options are in its key
    assert (plain / "shm").read_text().strip() == str(64 * 1024)
    assert (plain / "nofile-soft").read_text().strip() != "1000"


_CGROUP = r"""set -e
# the step's own cgroup files: mount each hierarchy it is in (v1: memory's and cpu's, whatever
# they are co-mounted with; v2: the unified one) and read them at the path /proc/self/cgroup names
mkdir -p /cg
v1() { grep -E "^[0-9]+:([^:]*,)?$1(,[^:]*)?:" /proc/self/cgroup | head -n 1; }
if [ -n "$(v1 memory)" ]; then
  for c in memory cpu; do
    line=$(v1 $c); opts=$(echo "$line" | cut -d: -f2); path=$(echo "$line" | cut -d: -f3)
    mkdir -p /cg/$c; mount -t cgroup -o "$opts" none /cg/$c; echo "$path" > /cg/$c.path
  done
  cat /cg/memory$(cat /cg/memory.path)/memory.limit_in_bytes > /memory
  c=/cg/cpu$(cat /cg/cpu.path); echo "$(cat $c/cpu.cfs_quota_us) $(cat $c/cpu.cfs_period_us)" > /cpu
else
  mount -t cgroup2 none /cg
  p=$(sed -n 's/^0:://p' /proc/self/cgroup)
  cat /cg$p/memory.max > /memory; cat /cg$p/cpu.max > /cpu
fi
"""


@pytest.mark.integration
def test_memory_and_cpu_limits_are_the_steps_cgroup(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"cg.sh": _CGROUP, "Dockerfile": (
        f"FROM {env.base}\nCOPY cg.sh /\nRUN --security=insecure sh /cg.sh\n")})
    out = tmp_path / "out"
    _build(env, ctx, "--allow", "security.insecure", "--memory", "300m", "--cpu-quota", "50000",
           "--cpu-period", "200000", "-o", f"type=local,dest={out}")
    assert (out / "memory").read_text().strip() == str(300 << 20)
    assert (out / "cpu").read_text().split() == ["50000", "200000"]


@pytest.mark.integration
def test_a_step_over_its_memory_limit_is_killed_with_a_clear_error(build_env, tmp_path):
    env = build_env
    # tmpfs pages are charged to the writer's cgroup and cannot be reclaimed without swap
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\nRUN dd if=/dev/zero of=/dev/shm/fill bs=1M count=96 && echo filled\n")})
    p = _build(env, ctx, "--shm-size", "128m", "--memory", "32m", check=False)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "exit code: 137 (killed: it may have needed more than --memory 32m)" in p.stderr, p.stderr
    _build(env, ctx, "--shm-size", "128m")  # without the limit the same step fits


@pytest.mark.integration
@pytest.mark.parametrize("args, message", [
    (["--shm-size", "lots"], "error: invalid --shm-size 'lots': expected a size such as 64m"),
    (["--ulimit", "nofile=9:1"], "error: invalid ulimit 'nofile=9:1': the soft limit must not be above"),
    (["--memory", "1m"], "error: invalid --memory '1m': the minimum is 6m"),
    (["--cpu-period", "100000"], "error: --cpu-period needs --cpu-quota"),
])
def test_bad_values_are_one_line_before_anything_runs(build_env, tmp_path, args, message):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN touch /x\n"})
    p = _build(env, ctx, *args, check=False)
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith(message) and len(p.stderr.strip().splitlines()) == 1, p.stderr
