"""Solver benchmark: five cases through the real CLI (``python -m mason build``: interpreter
start, imports, lowering, keys, solve, export), printing medians of cold / warm / rebuild
times and how many RUNs executed (counted by the marker each RUN prints, ``RAN-<id>``).

* ``parallel``  — two independent stages each ``RUN sleep 2``, a final stage copying both.
* ``chain20``   — 20 sequential RUNs.
* ``cachebust`` — COPY a file, RUNs after it: ``touch`` it (0 RUNs should run), edit it.
* ``metadata``  — an EXPOSE edit (0 RUNs should run).
* ``bigcontext``— 2,000 small files + one 200 MB file, ``COPY . /ctx``: cold (fresh state
  root: every file hashed and copied) and warm (nothing changed).

BuildKit's figures on these machines: parallel cold 2.3–2.5 s, no-op rebuild 0.10–0.12 s,
content edit 0.27 s, warm 200 MB context 0.18 s. Prints figures; asserts nothing.

    .venv/bin/python bench/solver_bench.py [--rounds 5] [--cases parallel,chain20,...]

Starts a private containerd under a temporary root and stops it afterwards. The base stage
is busybox on scratch (no registry).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASE = ('FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
MARK = 'echo "RAN-$(echo {0})"'


class Bench:
    def __init__(self, root: Path, address: str, work: Path):
        self.root, self.address, self.work = root, address, work

    def context(self, name: str, dockerfile: str, files: dict[str, bytes | str] | None = None) -> Path:
        d = self.work / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "Dockerfile").write_text(dockerfile)
        if not (d / "busybox").exists():
            shutil.copy2("/bin/busybox", d / "busybox")
        for k, v in (files or {}).items():
            p = d / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(v.encode() if isinstance(v, str) else v)
        return d

    def build(self, ctx: Path, *args: str, root: Path | None = None) -> tuple[float, int]:
        """(seconds, RUNs that ran) of one ``mason build`` process."""
        env = dict(os.environ, MASON_ROOT=str(root or self.root), MASON_CONTAINERD_ADDRESS=self.address)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "mason", "build", "--progress=plain", "--network-default=host",
                            *args, str(ctx)], env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"build of {ctx} failed:\n{p.stderr}")
        return dt, len(re.findall(r"^#\d+ (?:[\d.]+ )?RAN-", p.stderr, re.M))


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.3f}s"


def row(case: str, what: str, times: list[float], steps: int) -> None:
    print(f"{case:<11} {what:<26} {med(times)}  (n={len(times)})  RUNs executed: {steps}", flush=True)


def case_parallel(b: Bench, rounds: int) -> None:
    df = BASE + "".join(
        f"FROM base AS s{i}\nRUN {MARK.format(f's{i}')} && echo {i} > /out{i} && sleep 2\n" for i in (1, 2))
    df += "FROM scratch\nCOPY --from=s1 /out1 /out1\nCOPY --from=s2 /out2 /out2\n"
    ctx = b.context("parallel", df)
    b.build(ctx)
    cold = [b.build(ctx, "--no-cache") for _ in range(rounds)]
    warm = [b.build(ctx) for _ in range(rounds)]
    row("parallel", "cold (--no-cache)", [t for t, _ in cold], cold[-1][1])
    row("parallel", "warm (no change)", [t for t, _ in warm], warm[-1][1])


def case_chain20(b: Bench, rounds: int) -> None:
    df = BASE + "FROM base\n" + "".join(f"RUN {MARK.format(f'c{i}')} && echo {i} > /c{i}\n" for i in range(20))
    ctx = b.context("chain20", df)
    b.build(ctx)
    cold = [b.build(ctx, "--no-cache") for _ in range(rounds)]
    warm = [b.build(ctx) for _ in range(rounds)]
    row("chain20", "cold (--no-cache)", [t for t, _ in cold], cold[-1][1])
    row("chain20", "warm (no change)", [t for t, _ in warm], warm[-1][1])


def case_cachebust(b: Bench, rounds: int) -> None:
    df = (BASE + "FROM base\n" + f"RUN {MARK.format('before')} && echo 1 > /before\n" + "COPY a.txt /a.txt\n"
          + f"RUN {MARK.format('after1')} && cat /a.txt > /seen\n"
          + f"RUN {MARK.format('after2')} && echo 1 > /after2\n")
    ctx = b.context("cachebust", df, {"a.txt": "0\n", "other.txt": "x\n"})
    b.build(ctx)
    touch, edit = [], []
    for i in range(rounds):
        t = time.time() + i + 1
        os.utime(ctx / "a.txt", (t, t))
        touch.append(b.build(ctx))
        (ctx / "a.txt").write_text(f"{i + 1}\n")
        edit.append(b.build(ctx))
    row("cachebust", "touch a.txt", [t for t, _ in touch], touch[-1][1])
    row("cachebust", "edit a.txt (2 RUNs after)", [t for t, _ in edit], edit[-1][1])


def case_metadata(b: Bench, rounds: int) -> None:
    def df(port: int) -> str:
        return (BASE + "FROM base\n" + f"RUN {MARK.format('m1')} && echo 1 > /m1\n" + f"EXPOSE {port}\n"
                + f"RUN {MARK.format('m2')} && echo 1 > /m2\n")

    ctx = b.context("metadata", df(8000))
    b.build(ctx)
    out = []
    for i in range(rounds):
        (ctx / "Dockerfile").write_text(df(8001 + i))
        out.append(b.build(ctx))
    row("metadata", "EXPOSE edit", [t for t, _ in out], out[-1][1])


def case_bigcontext(b: Bench, rounds: int) -> None:
    files: dict[str, bytes | str] = {f"small/{i // 100:02d}/f{i}.txt": f"file {i}\n" for i in range(2000)}
    ctx = b.context("bigcontext", BASE + "FROM base\nCOPY . /ctx\n" + f"RUN {MARK.format('big')} && echo 1 > /big\n",
                    files)
    big = ctx / "big.bin"
    if not big.exists():
        with open(big, "wb") as f:
            for _ in range(200):
                f.write(os.urandom(1 << 20))
    cold = []
    for i in range(max(1, rounds // 2)):
        fresh = b.work / f"bigroot{i}"  # a fresh state root: nothing hashed or cached yet
        cold.append(b.build(ctx, root=fresh))
    b.build(ctx)
    warm = [b.build(ctx) for _ in range(rounds)]
    row("bigcontext", "cold (fresh state root)", [t for t, _ in cold], cold[-1][1])
    row("bigcontext", "warm (no change)", [t for t, _ in warm], warm[-1][1])


CASES = {"parallel": case_parallel, "chain20": case_chain20, "cachebust": case_cachebust,
         "metadata": case_metadata, "bigcontext": case_bigcontext}


def main() -> int:
    from mason.backends.containerd.daemon import ManagedContainerd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mason-solverbench-"))
    work = Path(tempfile.mkdtemp(prefix="mason-solverbench-ctx-"))
    daemon = ManagedContainerd.at(root)
    try:
        daemon.ensure_running()
        b = Bench(root, str(daemon.address), work)
        print(f"mason build via the CLI, {args.rounds} rounds, medians\n")
        for name in args.cases.split(","):
            CASES[name](b, args.rounds)
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
