"""Soak run (issue 11, "Load and faults"): N concurrent ``mason build`` processes of varied
Dockerfiles for T minutes on one state root (mason's own containerd under it), with random
``kill -9`` of a build and one containerd crash (SIGKILL) half-way. Not a test: it prints figures.

    .venv/bin/python bench/soak.py [--workers 8] [--minutes 10] [--kill-every 30] [--root DIR]

What it reports:

Figures of one run here (N=8, T=10, 2 shared cores, 2026-12-07): 306 builds in 610 s — 291
succeeded, 2 failed cleanly (containerd not answering, right after its kill), 13 killed by the
soak, 0 bad; containerd fds 10–61 (median 12 in the first third and in the last), RSS 38–46 MiB;
mounts under the root 0–35, shims 0–7, scratch dirs 0–8, none left at the end; the final build
of each of the 6 Dockerfiles all cached; prune --all: 76 committed snapshots → 0, no container,
task, active snapshot, build lease or blob left; cache.db integrity ok; 0 mounts after stop.

* builds run, succeeded, failed cleanly (exit 1, one ``error:`` line, no traceback), killed by
  the soak, and *bad* ones (a traceback, an internal error, any other exit code);
* every few seconds, what the machine holds for mason: containerd's open fds and RSS, shim
  processes, step processes, tasks and containers, mounts under the root, scratch dirs — as
  min / median / max over the run and the median of the first and the last third (bounded:
  the last third is not above the first by much);
* afterwards: a final build of each Dockerfile, then the same again, which must be all cached;
  ``mason prune --all`` and what containerd still holds in mason's namespace (containers,
  tasks, active snapshots, build leases, content); ``PRAGMA integrity_check`` of every sqlite
  database under the root; and the mounts left under the root after ``mason daemon stop``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASE = 'FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'

# varied builds: RUN chains, multi-stage copies, cache mounts, file ops, args, heredocs, a slow step
TEMPLATES = {
    "chain": BASE + "FROM base\nARG V=0\n" + "".join(f"RUN echo $V-{i} > /f{i}\n" for i in range(6)),
    "stages": BASE + ("FROM base AS a\nARG V=0\nRUN echo a$V > /a\nFROM base AS b\nARG V=0\nRUN echo b$V > /b\n"
                      "FROM base\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nRUN cat /a /b > /ab\n"),
    "cache": BASE + ("FROM base\nARG V=0\nRUN --mount=type=cache,target=/c sh -c 'echo $V >> /c/log; "
                     "wc -l < /c/log > /lines'\n"),
    "files": BASE + ("FROM base\nARG V=0\nCOPY ctx/ /ctx/\nWORKDIR /w\nRUN cp -r /ctx /w/copy && echo $V > /w/v\n"
                     "COPY --chmod=0755 ctx/a.txt /bin/a\n"),
    "heredoc": BASE + "FROM base\nARG V=0\nRUN <<EOF\nset -e\nfor i in 1 2 3; do echo $V$i >> /h; done\nEOF\n",
    "slow": BASE + "FROM base\nARG V=0\nRUN sleep 3 && echo $V > /slow\nRUN head -c 2m /dev/urandom > /blob\n",
}


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ran: int = 0
    ok: int = 0
    clean_fail: int = 0
    killed: int = 0
    bad: list[str] = field(default_factory=list)
    fail_reasons: dict[str, int] = field(default_factory=dict)


def make_context(d: Path, name: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "Dockerfile").write_text(TEMPLATES[name])
    shutil.copy2("/bin/busybox", d / "busybox")
    (d / "ctx").mkdir(exist_ok=True)
    (d / "ctx" / "a.txt").write_text("a\n")
    (d / "ctx" / "sub").mkdir(exist_ok=True)
    (d / "ctx" / "sub" / "b.txt").write_text("b\n" * 100)
    return d


def mason_env(root: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("MASON_CONTAINERD_ADDRESS", "PYTHONDONTWRITEBYTECODE")}
    e["MASON_ROOT"] = str(root)
    return e


def mason(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mason", *args], capture_output=True, text=True,
                          env=mason_env(root), timeout=timeout, stdin=subprocess.DEVNULL)


def classify(rc: int, err: str, stats: Stats, killed: bool) -> None:
    with stats.lock:
        stats.ran += 1
        if killed:
            stats.killed += 1
        elif rc == 0:
            stats.ok += 1
        elif rc == 1 and "Traceback" not in err and "internal error" not in err and "error:" in err:
            stats.clean_fail += 1
            last = [ln for ln in err.splitlines() if "error:" in ln][-1]
            why = re.sub(r"[0-9a-f]{12,}|/tmp/\S+|:\d+:\d+|\d+(\.\d+)?", "…", last.split("error:", 1)[1].strip())[:90]
            stats.fail_reasons[why] = stats.fail_reasons.get(why, 0) + 1
        else:
            stats.bad.append(f"exit {rc}: " + (err.strip().splitlines() or [""])[-1][:300])


class Worker(threading.Thread):
    def __init__(self, n: int, root: Path, ctxs: dict[str, Path], out: Path, stop: threading.Event, stats: Stats):
        super().__init__(name=f"soak-{n}", daemon=True)
        self.n, self.root, self.ctxs, self.out, self.stop_ev, self.stats = n, root, ctxs, out, stop, stats
        self.proc: subprocess.Popen | None = None
        self.kill_me = False
        self.rng = random.Random(n)

    def run(self) -> None:
        while not self.stop_ev.is_set():
            name = self.rng.choice(sorted(self.ctxs))
            args = ["build", "--progress=plain", "--build-arg", f"V={self.rng.randrange(4)}"]
            dest = None
            if self.rng.random() < 0.3:
                dest = self.out / f"w{self.n}-{self.stats.ran}"
                args += ["-o", f"type=local,dest={dest}"]
            self.kill_me = False
            self.proc = subprocess.Popen([sys.executable, "-m", "mason", *args, str(self.ctxs[name])],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                         stdin=subprocess.DEVNULL, env=mason_env(self.root))
            _, err = self.proc.communicate()
            classify(self.proc.returncode, err, self.stats, self.kill_me)
            self.proc = None
            if dest is not None:
                shutil.rmtree(dest, ignore_errors=True)

    def kill9(self) -> bool:
        p = self.proc
        if p is None or p.poll() is not None:
            return False
        self.kill_me = True
        try:
            p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True


def _cmdlines() -> list[tuple[int, str]]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = Path(f"/proc/{d}/cmdline").read_bytes()
                out.append((int(d), raw.replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                pass
    return out


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [p for p in (line.split()[4] for line in f) if p.startswith(prefix)]


def sample(root: Path) -> dict[str, float]:
    from mason.backends.containerd.daemon import ManagedContainerd

    d = ManagedContainerd.at(root)
    s: dict[str, float] = {}
    pid = d.pid()
    if pid is not None:
        try:
            s["containerd fds"] = len(os.listdir(f"/proc/{pid}/fd"))
            rss = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS:"))
            s["containerd RSS MiB"] = int(rss.split()[1]) / 1024
        except (OSError, StopIteration):
            pass
    cmds = _cmdlines()
    s["shims"] = sum(1 for _, c in cmds if "containerd-shim" in c and str(root) in c)
    s["mason builds"] = sum(1 for pid, c in cmds if " -m mason build " in c and pid != os.getpid())
    s["mounts under root"] = len(_mounts_under(root))
    tmp = root / "solver" / "tmp"
    s["scratch dirs"] = len(list(tmp.glob("build-*"))) if tmp.is_dir() else 0
    return s


def containerd_holds(root: Path) -> dict[str, int]:
    from mason.backends.containerd.client import Client
    from mason.backends.containerd.daemon import ManagedContainerd

    c = Client(ManagedContainerd.at(root).address)
    try:
        snaps = c.list_snapshots()
        leases = c.list_leases()
        return {"containers": len(c.list_containers()), "tasks": len(c.list_tasks()),
                "active snapshots": sum(1 for x in snaps if x.kind != "committed"),
                "committed snapshots": sum(1 for x in snaps if x.kind == "committed"),
                "build leases": sum(1 for v in leases.values() if v.get("mason.build")),
                "content blobs": len(c.list_content())}
    finally:
        c.close()


def steps_that_ran(err: str) -> list[str]:
    """The steps of a ``--progress=plain`` build that ran (DONE, not CACHED), besides the
    internal ones (context loading) and image sources."""
    names: dict[str, str] = {}
    done: set[str] = set()
    cached: set[str] = set()
    for ln in err.splitlines():
        m = re.match(r"#(\d+) (\[.*)", ln)
        if m and m.group(1) not in names:
            names[m.group(1)] = m.group(2)
        m = re.match(r"#(\d+) (DONE|CACHED)", ln)
        if m:
            (done if m.group(2) == "DONE" else cached).add(m.group(1))
    return [names[n] for n in sorted(done - cached) if n in names and not names[n].startswith("[internal]")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kill-every", type=float, default=30.0, help="seconds between kill -9s of a build (mean)")
    ap.add_argument("--sample-every", type=float, default=5.0)
    ap.add_argument("--root", help="state root (default: a fresh one under /tmp, removed afterwards)")
    a = ap.parse_args()
    own = a.root is None
    root = Path(a.root or tempfile.mkdtemp(prefix="mason-soak-"))
    work = Path(tempfile.mkdtemp(prefix="mason-soak-w-"))
    ctxs = {name: make_context(work / name, name) for name in TEMPLATES}
    stats = Stats()
    stop = threading.Event()
    rng = random.Random(0)
    print(f"soak: {a.workers} builds at a time for {a.minutes:g} min on {root}", flush=True)
    boot = mason(root, "daemon", "start")
    if boot.returncode != 0:
        print(boot.stderr, file=sys.stderr)
        return 1
    workers = [Worker(i, root, ctxs, work / "out", stop, stats) for i in range(a.workers)]
    for w in workers:
        w.start()
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()
    end = t0 + a.minutes * 60
    next_kill = t0 + rng.expovariate(1 / a.kill_every)
    restarted = False
    kills = 0
    from mason.backends.containerd.daemon import ManagedContainerd

    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_kill:
            if rng.choice(workers).kill9():
                kills += 1
            next_kill = now + rng.expovariate(1 / a.kill_every)
        if not restarted and now >= t0 + a.minutes * 30:
            pid = ManagedContainerd.at(root).pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # a crash: the next mason command starts it again
                print(f"  {now - t0:6.0f} s: containerd (pid {pid}) killed", flush=True)
            restarted = True
        samples.append(sample(root))
        time.sleep(a.sample_every)
    stop.set()
    for w in workers:
        w.join()
    wall = time.monotonic() - t0
    print(f"\nbuilds: {stats.ran} in {wall:.0f} s — {stats.ok} succeeded, {stats.clean_fail} failed cleanly, "
          f"{stats.killed} killed by the soak ({kills} kill -9 sent), {len(stats.bad)} bad; 1 containerd kill")
    for why, n in sorted(stats.fail_reasons.items(), key=lambda kv: -kv[1]):
        print(f"  clean failure ×{n}: {why}")
    for b in stats.bad[:10]:
        print(f"  BAD: {b}")
    print(f"\n{'resource':22} {'min':>8} {'median':>8} {'max':>8} {'1st third':>10} {'last third':>10}")
    keys = sorted({k for s in samples for k in s})
    third = max(1, len(samples) // 3)
    for k in keys:
        vals = [s[k] for s in samples if k in s]
        first = [s[k] for s in samples[:third] if k in s] or [0]
        last = [s[k] for s in samples[-third:] if k in s] or [0]
        print(f"{k:22} {min(vals):8.1f} {statistics.median(vals):8.1f} {max(vals):8.1f} "
              f"{statistics.median(first):10.1f} {statistics.median(last):10.1f}")
    # the final builds: each Dockerfile once (it may reuse the soak's results), then again (all cached)
    print("\nfinal builds (V=0):")
    reuse_ok = True
    for name, ctx in sorted(ctxs.items()):
        first = mason(root, "build", "--progress=plain", "--build-arg", "V=0", str(ctx))
        again = mason(root, "build", "--progress=plain", "--build-arg", "V=0", str(ctx))
        cached_first, cached_again = not steps_that_ran(first.stderr), not steps_that_ran(again.stderr)
        reuse_ok &= first.returncode == 0 and again.returncode == 0 and cached_again
        print(f"  {name:8} exit {first.returncode}/{again.returncode}  first build all cached: "
              f"{'yes' if cached_first else 'no'}  second: {'yes' if cached_again else 'NO'}")
    before = containerd_holds(root)
    pr = mason(root, "prune", "--all", "--force")
    after = containerd_holds(root)
    print(f"\nmason prune --all: exit {pr.returncode}")
    print("containerd holds (before prune → after): " + ", ".join(f"{k} {before[k]}→{after[k]}" for k in before))
    integrity = {}
    for db in root.rglob("*.db"):
        if "containerd" in db.parts:
            continue
        con = sqlite3.connect(db)
        try:
            integrity[str(db.relative_to(root))] = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
    print("sqlite integrity_check: " + (", ".join(f"{k}={v}" for k, v in sorted(integrity.items())) or "no database"))
    mason(root, "daemon", "stop")
    left = _mounts_under(root)
    print(f"after mason daemon stop: {len(left)} mounts under the root"
          + (f" ({left[:3]})" if left else ""))
    shutil.rmtree(work, ignore_errors=True)
    if own and not left:
        shutil.rmtree(root, ignore_errors=True)
    clean = (not stats.bad and reuse_ok and pr.returncode == 0 and all(v == "ok" for v in integrity.values())
             and not left and all(after[k] == 0 for k in ("containers", "tasks", "active snapshots", "build leases")))
    print(f"\nsoak verdict: {'clean' if clean else 'NOT CLEAN'}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
