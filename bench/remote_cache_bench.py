"""Remote cache through a registry, mason against BuildKit v0.32.2 (``../shared/tools/buildkit``)
in one run: the seed's three figures (issue 18) on a multi-stage build whose result is pushed, as
a CI runner does — medians, RUN counts and ratios.

Phases, each round, for each builder (alternating which goes first):

* ``cold``: an empty state (no cache, base image not pulled), build and push.
* ``cold+export``: the same with ``--cache-to type=registry,mode=max`` (BuildKit:
  ``--export-cache``) — what exporting the cache costs on top.
* ``local-warm``: right after, the same build again on that state (the daemon-local cache).
* ``remote-warm``: an empty state again (a fresh CI runner), ``--cache-from`` the registry cache
  (BuildKit: ``--import-cache``), build and push. mason pulls no layer here: every step is a
  remote hit, the pushed layers are mounted from the cache's repository.

Ratios: remote-warm / local-warm (the issue's goal: within 10×) and remote-warm / cold (BuildKit
had 0.21 in the seed), and mason / BuildKit per phase.

mason runs as users run it: ``.venv/bin/mason build`` with bytecode caching (no
``PYTHONDONTWRITEBYTECODE``), a new ``MASON_ROOT`` for every empty state; its private containerd is
started (``mason daemon start``) before the timer, as buildkitd is up before BuildKit's builds
(``buildctl prune --all`` empties its state). Both pull the busybox base from the same loopback
``docker-registry`` and push to it.

    .venv/bin/python bench/remote_cache_bench.py [--rounds 3] [--builders mason,buildkit] [--keep]

Prints figures; asserts nothing. Starts and stops its own registry, containerds and buildkitd.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from peers import MARK, MASON, banner, footer, median, ratio, run_counts, teardown, timed  # noqa: E402

PHASES = ("cold", "cold+export", "local-warm", "remote-warm")

DOCKERFILE = """\
FROM {base} AS deps
RUN {m_deps} && mkdir /deps && i=0 && while test $i -lt 100; do \
      head -c 200000 /dev/urandom > /deps/f$i; i=$((i+1)); done && sleep 2
FROM {base} AS build
COPY --from=deps /deps /deps
COPY src /src
RUN {m_build} && cat /src/* /deps/f1 | sha256sum > /out && sleep 2
FROM {base}
COPY --from=build /out /app/out
COPY --from=deps /deps/f0 /app/f0
RUN {m_final} && echo ready > /app/ready
"""


class Mason:
    name = "mason"

    def __init__(self, work: Path, registry: str):
        self.work, self.reg = work, registry
        self.image, self.cache = f"{registry}/bench/mason:latest", f"{registry}/cache/mason:latest"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONDONTWRITEBYTECODE", "MASON_CONTAINERD_ADDRESS", "PYTHONPATH")}
        self.roots: list[Path] = []
        self.current: Path | None = None

    def _fresh(self) -> None:
        self.current = self.work / f"mason-root-{len(self.roots)}"
        self.roots.append(self.current)
        subprocess.run([str(MASON), "daemon", "start", "--root", str(self.current)], env=self.env,
                       capture_output=True, check=True)

    def run(self, phase: str, ctx: Path) -> tuple[float, int]:
        if phase != "local-warm":
            self._stop_current()
            self._fresh()
        args = [str(MASON), "build", "--root", str(self.current), "--progress=plain", "--network-default=host",
                "-o", f"type=registry,name={self.image}"]
        if phase == "cold+export":
            args += ["--cache-to", f"type=registry,ref={self.cache},mode=max"]
        if phase == "remote-warm":
            args += ["--cache-from", f"type=registry,ref={self.cache}"]
        return timed([*args, str(ctx)], self.env, f"mason build ({phase})")

    def _stop_current(self) -> None:
        if self.current is not None:
            subprocess.run([str(MASON), "daemon", "stop", "--root", str(self.current)], env=self.env,
                           capture_output=True)
            shutil.rmtree(self.current, ignore_errors=True)
            self.current = None

    def close(self) -> None:
        self._stop_current()


class BuildKit:
    name = "buildkit"

    def __init__(self, work: Path, registry: str):
        from tests.fixtures.buildkitd import start_buildkitd

        self.reg = registry
        self.image, self.cache = f"{registry}/bench/buildkit:latest", f"{registry}/cache/buildkit:latest"
        self.daemon = start_buildkitd(work / "bk", insecure_registries=[registry])

    def run(self, phase: str, ctx: Path) -> tuple[float, int]:
        if phase != "local-warm":
            self.daemon.buildctl("prune", "--all")
        extra: list[str] = []
        if phase == "cold+export":
            extra += ["--export-cache", f"type=registry,ref={self.cache},mode=max"]
        if phase == "remote-warm":
            extra += ["--import-cache", f"type=registry,ref={self.cache}"]
        from tests.fixtures.buildkitd import buildkit_tool

        cmd = [buildkit_tool("buildctl"), "--addr", self.daemon.address, "build", "--progress=plain",
               "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
               "--output", f"type=image,name={self.image},push=true", *extra]
        return timed(cmd, None, f"buildctl build ({phase})")

    def close(self) -> None:
        self.daemon.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--builders", default="mason,buildkit")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    args = ap.parse_args()
    from tests.fixtures.images import build_busybox_layout
    from tests.fixtures.registry import skopeo_copy_layout, start_registry

    work = Path(tempfile.mkdtemp(prefix="mrc-", dir="/tmp"))  # short: buildkitd's socket path
    builders: list = []
    registry = None
    try:
        registry = start_registry(work / "registry")
        layout = work / "busybox-layout"
        build_busybox_layout(layout)
        base = f"{registry.host}/library/busybox:latest"
        skopeo_copy_layout(layout, "latest", base)
        ctx = work / "ctx"
        (ctx / "src").mkdir(parents=True)
        for i in range(20):
            (ctx / "src" / f"m{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n" * 200)
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base, m_deps=MARK.format("deps"),
                                                          m_build=MARK.format("build"), m_final=MARK.format("final")))
        for n in args.builders.split(","):
            builders.append({"mason": Mason, "buildkit": BuildKit}[n](work, registry.host))
        banner(args.rounds, f"mason {MASON} (daemonless CLI, fresh MASON_ROOT per empty state), BuildKit v0.32.2 "
                            f"buildkitd (OCI worker, prune --all per empty state); registry {registry.host}; "
                            "cache mode=max")
        got: dict[str, dict[str, list[tuple[float, int]]]] = {b.name: {p: [] for p in PHASES} for b in builders}
        for r in range(args.rounds):
            order = builders if r % 2 == 0 else builders[::-1]
            for b in order:
                for ph in PHASES:
                    got[b.name][ph].append(b.run(ph, ctx))
        print("| builder | " + " | ".join(f"{p} s (RUNs)" for p in PHASES)
              + " | remote-warm / local-warm | remote-warm / cold |")
        print("|---|" + "---:|" * (len(PHASES) + 2))
        for b in builders:
            g = got[b.name]
            cells = " | ".join(f"{median(g[p]):.2f} ({run_counts(g[p])})" for p in PHASES)
            print(f"| {b.name} | {cells} | {median(g['remote-warm']) / median(g['local-warm']):.1f}× | "
                  f"{median(g['remote-warm']) / median(g['cold']):.2f} |")
        if "mason" in got and "buildkit" in got:
            cells = " | ".join(ratio(got["mason"][p], got["buildkit"][p]) for p in PHASES)
            print(f"| mason / buildkit | {cells} | | |")
        footer()
        print("the seed's BuildKit: remote-warm / local-warm 72×, remote-warm / cold 0.21; the goal for mason: "
              "remote-warm within 10× of local-warm")
    finally:
        teardown(builders, work, args.keep, registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
