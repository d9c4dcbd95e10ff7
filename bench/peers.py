"""mason against its peer, side by side in one run: BuildKit v0.32.2 (``../shared/tools/buildkit``),
the same five cases as ``bench/solver_bench.py``, medians, a ratio column and the RUN counts.

* mason: the daemonless CLI as a user runs it (``.venv/bin/mason build --network-default host -t
  NAME``, bytecode caching on: ``PYTHONDONTWRITEBYTECODE`` is removed from its environment), on its
  own private containerd under a temporary ``MASON_ROOT``; the busybox base comes from ``mason
  load -i busybox.tar`` (an OCI archive made here, the test fixture's busybox image).
* BuildKit: ``buildkitd`` (OCI worker, its own root, host networking) driven by ``buildctl build
  --frontend dockerfile.v0 --output type=image,name=NAME``; the same busybox comes from an OCI
  layout as a named context (``--oci-layout base=DIR --opt context:busybox=oci-layout://base@D``).
* ``--builders NAME=PATH``: another mason CLI in the same run (e.g. ``before=/elsewhere/.venv/bin/mason``),
  each with its own root and a ratio column of its own. (``mason serve`` driven by ``buildctl``
  is to come with that command.)

Cold runs start from emptied caches on both sides: ``buildctl prune --all``; for mason ``mason rmi``
of the built image (``prune --all`` keeps what an image was built from) and ``mason prune --all``
(the loaded busybox stays, as a pulled base would). The other phases follow a cold build of the
same case: a no-op rebuild, a ``touch`` of a copied file, a content edit of it, an EXPOSE edit.
Each round runs every builder once, alternating which goes first. RUNs are counted by the marker
each one prints (``RAN-<id>``, on its own progress line) in ``--progress=plain`` output.

    .venv/bin/python bench/peers.py [--rounds 3] [--cases parallel,chain20,cachebust,metadata,bigcontext]
                                    [--builders mason,buildkit[,NAME=PATH]] [--keep]

Prints figures; asserts nothing. Starts and stops its own containerd and buildkitd.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOOLS = REPO.parent / "shared" / "tools" / "buildkit"
MASON = Path(sys.executable).with_name("mason")
MARK = 'echo "RAN-$(echo {0})"'
RAN = re.compile(r"^#\d+ (?:[\d.]+ )?RAN-", re.M)
IMAGE_NAME = "docker.io/library/busybox:latest"


# ---------------------------------------------------------------- builders


class Builder:
    name = ""

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        """(seconds, RUNs executed) of one build of ``ctx`` naming the image ``tag``."""
        raise NotImplementedError

    def reset(self, tags: list[str]) -> None:
        """Empty the build cache (and drop ``tags``) before a cold run."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _run(cmd: list[str], env: dict[str, str] | None = None, what: str = "") -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{what or cmd[0]} failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def timed(cmd: list[str], env: dict[str, str] | None, what: str) -> tuple[float, int]:
    """(seconds, RUNs executed) of one command: the RUN markers counted in its stderr."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{what} failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-4000:]}")
    return dt, len(RAN.findall(p.stderr))


# ---------------------------------------------------------------- figures (every bench script's)


def median(xs: list[tuple[float, int]]) -> float:
    """The median seconds of (seconds, RUNs) samples."""
    return statistics.median(t for t, _ in xs)


def run_counts(xs: list[tuple[float, int]]) -> str:
    """The RUN counts the samples saw, each once (``3`` or ``3/4``)."""
    return "/".join(str(n) for n in sorted({n for _, n in xs}))


def ratio(a: list[tuple[float, int]], b: list[tuple[float, int]]) -> str:
    """``a``'s median over ``b``'s, as the tables print it."""
    return f"{median(a) / median(b):.2f}×"


def banner(rounds: int, detail: str) -> None:
    """The first line of every bench's output: rounds, CPUs, load, then what runs."""
    print(f"{rounds} rounds, medians; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the start; "
          f"{detail}\n", flush=True)


def footer() -> None:
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")


def teardown(builders: Iterable[Builder], work: Path, keep: bool, *services: object) -> None:
    """The end of every bench: close each builder, stop each service (``stop()``: a registry),
    then keep the work directory (its path printed) or remove it."""
    for b in builders:
        b.close()
    for s in services:
        if s is not None:
            s.stop()
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


class Mason(Builder):
    """The daemonless CLI, as a user runs it."""

    def __init__(self, work: Path, archive: Path, name: str = "mason", binary: Path = MASON):
        self.name, self.bin = name, binary
        self.root = work / f"{name}-root"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONDONTWRITEBYTECODE", "MASON_CONTAINERD_ADDRESS", "PYTHONPATH")}
        self.env["MASON_ROOT"] = str(self.root)
        self.mason(["load", "-i", str(archive)])

    def mason(self, args: list[str]) -> subprocess.CompletedProcess:
        return _run([str(self.bin), *args], self.env, "mason " + args[0])

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed([str(self.bin), "build", "--progress=plain", "--network-default=host", "-t", tag, str(ctx)],
                      self.env, f"mason build {ctx.name}")

    def reset(self, tags: list[str]) -> None:
        for t in tags:  # absent when the last build of the case failed: not an error here
            subprocess.run([str(self.bin), "rmi", t], env=self.env, capture_output=True)
        self.mason(["prune", "--all", "--force"])

    def close(self) -> None:
        subprocess.run([str(self.bin), "daemon", "stop"], env=self.env, capture_output=True)


class BuildKit(Builder):
    """buildkitd v0.32.2 (OCI worker, host network) driven by buildctl."""

    name = "buildkit"

    def __init__(self, work: Path, layout: Path, digest: str):
        self.dir = work / "buildkit"
        self.dir.mkdir()
        self.addr = f"unix://{self.dir}/buildkitd.sock"
        self.layout, self.digest = layout, digest
        self.log = open(self.dir / "buildkitd.log", "wb")
        self.proc = subprocess.Popen(
            [str(TOOLS / "buildkitd"), "--root", str(self.dir / "root"), "--addr", self.addr,
             "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctl("debug", "workers"), capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"buildkitd did not start; see {self.dir / 'buildkitd.log'}")
            time.sleep(0.2)

    def ctl(self, *args: str) -> list[str]:
        return [str(TOOLS / "buildctl"), "--addr", self.addr, *args]

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed(self.ctl("build", "--progress=plain", "--frontend", "dockerfile.v0",
                               "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                               "--oci-layout", f"base={self.layout}",
                               "--opt", f"context:busybox=oci-layout://base@{self.digest}",
                               "--output", f"type=image,name={tag}"), None, f"buildctl build {ctx.name}")

    def reset(self, tags: list[str]) -> None:
        _run(self.ctl("prune", "--all"), what="buildctl prune")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- cases

BASE = "FROM busybox\n"


@dataclass
class Phase:
    name: str
    prepare: Callable[[int], None]  # round -> mutate the context (before every builder's build)
    cold: bool = False  # reset every builder before its build


@dataclass
class Case:
    name: str
    ctx: Path
    phases: list[Phase] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"docker.io/library/peers-{self.name}:latest"


def _write(ctx: Path, files: dict[str, str | bytes]) -> None:
    for k, v in files.items():
        p = ctx / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(v.encode() if isinstance(v, str) else v)


def _nothing(_: int) -> None:
    pass


def case_parallel(work: Path) -> Case:
    df = "".join(f"FROM busybox AS s{i}\nRUN {MARK.format(f's{i}')} && echo {i} > /out{i} && sleep 2\n"
                 for i in (1, 2))
    df += "FROM scratch\nCOPY --from=s1 /out1 /out1\nCOPY --from=s2 /out2 /out2\n"
    c = Case("parallel", work / "parallel")
    _write(c.ctx, {"Dockerfile": df})
    c.phases = [Phase("cold", _nothing, cold=True), Phase("no-op", _nothing)]
    return c


def case_chain20(work: Path) -> Case:
    df = BASE + "".join(f"RUN {MARK.format(f'c{i}')} && echo {i} > /c{i}\n" for i in range(20))
    c = Case("chain20", work / "chain20")
    _write(c.ctx, {"Dockerfile": df})
    c.phases = [Phase("cold", _nothing, cold=True), Phase("no-op", _nothing)]
    return c


def case_cachebust(work: Path) -> Case:
    df = BASE + "".join(f"RUN {MARK.format(f'b{i}')} && echo {i} > /b{i}\n" for i in range(7))
    df += "COPY a.txt /a.txt\n" + f"RUN {MARK.format('a0')} && cat /a.txt > /seen\n"
    df += "".join(f"RUN {MARK.format(f'a{i}')} && echo {i} > /a{i}\n" for i in (1, 2))
    c = Case("cachebust", work / "cachebust")
    _write(c.ctx, {"Dockerfile": df, "a.txt": "0\n", "other.txt": "x\n"})

    def touch(i: int) -> None:
        t = time.time() + 10 * (i + 1)
        os.utime(c.ctx / "a.txt", (t, t))

    def edit(i: int) -> None:
        (c.ctx / "a.txt").write_text(f"edit {time.time_ns()}\n")

    c.phases = [Phase("cold", _nothing, cold=True), Phase("touch", touch),
                Phase("content edit (3 of 10 rerun)", edit)]
    return c


def case_metadata(work: Path) -> Case:
    def df(port: int) -> str:
        return (BASE + f"RUN {MARK.format('m0')} && echo 0 > /m0\n" + f"EXPOSE {port}\n"
                + "".join(f"RUN {MARK.format(f'm{i}')} && echo {i} > /m{i}\n" for i in range(1, 6)))

    c = Case("metadata", work / "metadata")
    _write(c.ctx, {"Dockerfile": df(8000)})
    ports = iter(range(8001, 9000))

    def expose(_: int) -> None:
        (c.ctx / "Dockerfile").write_text(df(next(ports)))

    c.phases = [Phase("cold", lambda _: (c.ctx / "Dockerfile").write_text(df(8000)), cold=True),
                Phase("EXPOSE edit (0 rerun)", expose)]
    return c


def case_bigcontext(work: Path) -> Case:
    c = Case("bigcontext", work / "bigcontext")
    files: dict[str, str | bytes] = {f"small/{i // 100:02d}/f{i}.txt": f"file {i}\n" for i in range(2000)}
    files["Dockerfile"] = BASE + "COPY . /ctx\n" + f"RUN {MARK.format('big')} && echo 1 > /big\n"
    _write(c.ctx, files)
    with open(c.ctx / "big.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    c.phases = [Phase("cold", _nothing, cold=True), Phase("no-op", _nothing)]
    return c


CASES = {"parallel": case_parallel, "chain20": case_chain20, "cachebust": case_cachebust,
         "metadata": case_metadata, "bigcontext": case_bigcontext}


# ---------------------------------------------------------------- base image


def busybox_base(work: Path) -> tuple[Path, str, Path]:
    """(OCI layout, manifest digest, OCI archive naming it busybox) of the test fixture's busybox."""
    from tests.fixtures.images import build_busybox_layout

    layout = work / "busybox-layout"
    info = build_busybox_layout(layout)
    archive = work / "busybox.tar"
    layout_archive(layout, IMAGE_NAME, archive)
    return layout, info.manifest_digest, archive


def layout_archive(layout: Path, name: str, archive: Path) -> None:
    """An OCI archive of ``layout`` whose manifests are named ``name`` (for ``mason load``)."""
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        m.setdefault("annotations", {})["io.containerd.image.name"] = name
        m["annotations"]["org.opencontainers.image.ref.name"] = name
    with tarfile.open(archive, "w") as tar:
        tar.add(layout / "oci-layout", "oci-layout")
        tar.add(layout / "blobs", "blobs")
        data = json.dumps(index).encode()
        ti = tarfile.TarInfo("index.json")
        ti.size = len(data)
        import io

        tar.addfile(ti, io.BytesIO(data))


# ---------------------------------------------------------------- main


def run(cases: list[Case], builders: list[Builder], rounds: int) -> list[tuple[str, str, dict]]:
    rows = []
    for c in cases:
        # the other phases follow a build of the case
        for b in builders:
            b.build(c.ctx, c.tag)
        for ph in c.phases:
            got: dict[str, list[tuple[float, int]]] = {b.name: [] for b in builders}
            for r in range(rounds):
                ph.prepare(r)
                order = builders if r % 2 == 0 else builders[::-1]
                for b in order:
                    if ph.cold:
                        b.reset([c.tag])
                    got[b.name].append(b.build(c.ctx, c.tag))
            rows.append((c.name, ph.name, got))
            print_row(c.name, ph.name, got, [b.name for b in builders])
    return rows


HEADER_DONE = False


def print_row(case: str, phase: str, got: dict, names: list[str]) -> None:
    """One Markdown row: each builder's median and RUN counts, then each mason's ratio to BuildKit."""
    global HEADER_DONE
    masons = [n for n in names if n != "buildkit"] if "buildkit" in names else []
    if not HEADER_DONE:
        cols = " | ".join(f"{n} s | {n} RUNs" for n in names)
        ratios = "".join(f" | {n}/buildkit" for n in masons)
        print(f"| case | phase | {cols}{ratios} |")
        print("|---|---|" + "---:|" * (2 * len(names) + len(masons)))
        HEADER_DONE = True
    cells = " | ".join(f"{median(got[n]):.2f} | {run_counts(got[n])}" for n in names)
    ratios = "".join(f" | {ratio(got[n], got['buildkit'])}" for n in masons)
    print(f"| {case} | {phase} | {cells}{ratios} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--builders", default="mason,buildkit",
                    help="mason, buildkit, and NAME=PATH for another mason binary (e.g. an older checkout's)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    args = ap.parse_args()
    names = args.builders.split(",")
    work = Path(tempfile.mkdtemp(prefix="mason-peers-"))

    def add(builders: list[Builder], layout: Path, digest: str, archive: Path) -> None:
        for n in names:
            if n == "buildkit":
                builders.append(BuildKit(work, layout, digest))
            elif n == "mason":
                builders.append(Mason(work, archive))
            elif "=" in n:  # another mason, e.g. before=/path/to/old/.venv/bin/mason
                label, _, binary = n.partition("=")
                builders.append(Mason(work, archive, label, Path(binary)))
            else:
                raise SystemExit(f"unknown builder {n!r} (mason, buildkit, NAME=PATH-TO-MASON)")

    return drive(args, work, add, lambda builders: (
        f"mason: {', '.join(f'{b.name}={b.bin}' for b in builders if isinstance(b, Mason))} "
        f"(daemonless CLI, --network-default=host); BuildKit: {TOOLS / 'buildkitd'} (OCI worker, host network)"))


def drive(args: argparse.Namespace, work: Path, add_builders: Callable[[list[Builder], Path, str, Path], None],
          detail: Callable[[list[Builder]], str]) -> int:
    """The main loop of a bench over :data:`CASES`: the busybox base, the ``--cases``, the
    builders ``add_builders(builders, layout, digest, archive)`` appends, the banner (``detail``
    of the builders), the table, the footer, then :func:`teardown` (``--keep`` if the bench has it)."""
    builders: list[Builder] = []
    try:
        layout, digest, archive = busybox_base(work)
        cases = [CASES[n](work) for n in args.cases.split(",")]
        add_builders(builders, layout, digest, archive)
        banner(args.rounds, detail(builders))
        run(cases, builders, args.rounds)
        footer()
    finally:
        teardown(builders, work, getattr(args, "keep", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
