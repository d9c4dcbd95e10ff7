"""Multi-platform builds, mason against BuildKit v0.32.2 (``../shared/tools/buildkit``) in one run:
one-, two- and three-platform builds (``linux/amd64``, ``+linux/arm64``, ``+linux/riscv64``), cold
and warm, medians, each builder's cost relative to its own one-platform build, and mason/BuildKit.

Two cases:

* ``emulated`` — ``FROM busybox`` + a RUN doing a little shell work (a 20 000-step loop): every
  platform runs it, arm64 and riscv64 under QEMU user-mode emulation (``qemu-user-static`` through
  binfmt_misc, as both builders use it).
* ``cross`` — a ``FROM --platform=$BUILDPLATFORM`` stage whose RUN writes one file per target
  (it runs once, natively), then ``FROM busybox`` + ``COPY --from=build /out/$TARGETARCH``: no
  emulation at all; what grows with the platforms is export (one image per platform + an index).

The base is a busybox image index of the three platforms, each image with Debian's busybox-static
of its own architecture (``tests/fixtures/foreign.py``: arm64 from the machine's apt sources,
riscv64 from Debian 13's archive through a private apt configuration). mason gets it with
``mason load -i`` (as ``docker.io/library/busybox:latest``), BuildKit from an OCI layout as a named
context (``--oci-layout base=DIR --opt context:busybox=oci-layout://base@INDEX``). Both write
their image store (``mason build -t NAME`` / ``--output type=image,name=NAME``); both drivers,
the cold resets and the RUN counting are ``bench/peers.py``'s. Cold: caches emptied first; warm:
the same build again (no RUN).

What limits it: ``LIMITS`` below, printed after the table.

    .venv/bin/python bench/multiplatform_bench.py [--rounds 3] [--cases emulated,cross] [--keep]

Prints figures; asserts nothing. Starts and stops its own containerd and buildkitd.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

LIMITS = """

* emulated cold: the RUN's CPU time under QEMU, once per platform. On 2 cores the platforms'
  steps compete for the same CPUs, so mason's ×1-platform column grows about linearly (2.0× for
  two, 2.9× for three in the issue-16 audit run); BuildKit's grows faster (3.4×, 5.3×), so the
  mason/buildkit ratio falls with the number of platforms.
* cross cold: flat in the number of platforms for both (the stage runs once); what is left is
  per-build overhead, which is where mason is behind BuildKit (about 2×).
* warm: no step runs and the figure barely grows with platforms (2.6 s → 2.9 s for 1 → 3 in that
  run); it is mason's per-invocation CPU — interpreter start-up, imports, lowering, the cache
  lookups and image-store reads — against a long-running buildkitd. That is issue 17's no-op
  problem, not emulation. For single-platform no-ops a warm daemon (``mason serve``) brings mason
  level with buildkitd (bench/serve_bench.py); multi-platform builds through it are not measured.
"""

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from peers import MARK, TOOLS, BuildKit, Mason, banner, footer, median, ratio, run_counts, teardown, timed  # noqa: E402

IMAGE_NAME = "docker.io/library/busybox:latest"
ARCHES = ("amd64", "arm64", "riscv64")
PLATFORM_SETS = tuple(",".join(f"linux/{a}" for a in ARCHES[:n]) for n in (1, 2, 3))


class MultiMason(Mason):
    def build_for(self, ctx: Path, tag: str, platforms: str) -> tuple[float, int]:
        return timed([str(self.bin), "build", "--progress=plain", "--network-default=host", "--platform", platforms,
                       "-t", tag, str(ctx)], self.env, f"mason build {ctx.name} --platform {platforms}")


class MultiBuildKit(BuildKit):
    def build_for(self, ctx: Path, tag: str, platforms: str) -> tuple[float, int]:
        return timed(self.ctl("build", "--progress=plain", "--frontend", "dockerfile.v0",
                               "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                               "--opt", f"platform={platforms}",
                               "--oci-layout", f"base={self.layout}",
                               "--opt", f"context:busybox=oci-layout://base@{self.digest}",
                               "--output", f"type=image,name={tag}"), None,
                      f"buildctl build {ctx.name} --opt platform={platforms}")


def base_image(work: Path) -> tuple[Path, str, Path]:
    """(OCI layout, index digest, OCI archive naming it busybox) of the three-platform busybox."""
    from tests.fixtures.foreign import debian_busybox
    from tests.fixtures.images import build_busybox_index_layout

    binaries = {f"linux/{a}": debian_busybox(a, work / "debs" / a) for a in ARCHES[1:]}
    layout = work / "busybox-layout"
    info = build_busybox_index_layout(layout, tuple(f"linux/{a}" for a in ARCHES), binaries=binaries)
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        m.setdefault("annotations", {})["io.containerd.image.name"] = IMAGE_NAME
    archive = work / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout / "oci-layout", "oci-layout")
        tar.add(layout / "blobs", "blobs")
        data = json.dumps(index).encode()
        ti = tarfile.TarInfo("index.json")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return layout, info.index_digest, archive


def write_cases(work: Path, names: list[str]) -> dict[str, Path]:
    dockerfiles = {
        "emulated": ("FROM busybox\n"
                     f"RUN {MARK.format('emu')} && uname -m > /arch && i=0 && "
                     "while [ $i -lt 20000 ]; do i=$((i+1)); done && echo $i > /count\n"),
        "cross": ("FROM --platform=$BUILDPLATFORM busybox AS build\n"
                  f"RUN {MARK.format('cross')} && mkdir /out && "
                  "for a in amd64 arm64 riscv64; do echo \"$a from $(uname -m)\" > /out/$a; done\n"
                  "FROM busybox\n"
                  "ARG TARGETARCH\n"
                  "COPY --from=build /out/$TARGETARCH /app\n"),
    }
    out = {}
    for n in names:
        if n not in dockerfiles:
            raise SystemExit(f"unknown case {n!r} ({', '.join(dockerfiles)})")
        ctx = work / n
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfiles[n])
        out[n] = ctx
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="emulated,cross")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mason-multiplatform-"))
    builders: list[MultiMason | MultiBuildKit] = []
    try:
        layout, digest, archive = base_image(work)
        cases = write_cases(work, args.cases.split(","))
        builders = [MultiMason(work, archive), MultiBuildKit(work, layout, digest)]
        banner(args.rounds, f"mason: {builders[0].bin} (daemonless CLI, --network-default=host); BuildKit: "
                            f"{TOOLS / 'buildkitd'} (OCI worker, host network); arm64 and riscv64 RUNs under "
                            "qemu-user-static")
        print("| case | platforms | phase | mason s | mason RUNs | mason ×1-platform | buildkit s | buildkit RUNs "
              "| buildkit ×1-platform | mason/buildkit |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        tags = [f"docker.io/library/multi-{case}-{n}:latest" for case in cases for n in (1, 2, 3)]
        for case, ctx in cases.items():
            one: dict[tuple[str, str], float] = {}
            for platforms in PLATFORM_SETS:
                tag = f"docker.io/library/multi-{case}-{platforms.count(',') + 1}:latest"
                for phase in ("cold", "warm"):
                    got: dict[str, list[tuple[float, int]]] = {b.name: [] for b in builders}
                    for r in range(args.rounds):
                        for b in (builders if r % 2 == 0 else builders[::-1]):
                            if phase == "cold":  # every image of the run: mason's prune keeps what they hold
                                b.reset(tags)
                            elif not got[b.name] and r == 0:
                                b.build_for(ctx, tag, platforms)  # warm follows a build of the same set
                            got[b.name].append(b.build_for(ctx, tag, platforms))
                    m, k = median(got["mason"]), median(got["buildkit"])
                    if platforms == PLATFORM_SETS[0]:
                        one[("mason", phase)], one[("buildkit", phase)] = m, k
                    n = platforms.count(",") + 1
                    print(f"| {case} | {n} ({platforms.replace('linux/', '')}) | {phase} "
                          f"| {m:.2f} | {run_counts(got['mason'])} | {m / one[('mason', phase)]:.2f}× "
                          f"| {k:.2f} | {run_counts(got['buildkit'])} | {k / one[('buildkit', phase)]:.2f}× "
                          f"| {ratio(got['mason'], got['buildkit'])} |", flush=True)
        print("\nwhat limits it:" + LIMITS, end="")
        footer()
    finally:
        teardown(builders, work, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
