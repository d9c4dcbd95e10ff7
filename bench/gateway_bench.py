"""The cost of a frontend image on mason, next to BuildKit v0.32.2 in the same run.

* ``mason``: the daemonless CLI with its built-in Dockerfile frontend (as ``bench/peers.py``);
* ``mason-gw``: the same CLI building through a frontend image — BuildKit v0.32.2's own Dockerfile
  frontend (``../shared/tools/buildkit/dockerfile-frontend``) packaged into an image by mason
  (``--frontend <that image>``: the image is solved, its container started, the LLBBridge served
  over its stdio; every build pays that, cached or not);
* ``buildkit``: buildkitd with its built-in ``dockerfile.v0`` — the same frontend code, in-process;
* ``mason-img`` (``--mason-image``): the CLI building through mason's *own* Dockerfile frontend
  packaged with ``mason frontend-image dockerfile`` (on Debian bookworm — the test session's
  debootstrap layer from its cache — with apt's python3; the Python start-up, the import of mason
  and the LLB over the bridge are what it pays over ``mason``).

``mason-gw``/``buildkit`` is what running an image frontend costs on mason against BuildKit's
usual path; ``mason-gw``/``mason`` the price of the image over mason's built-in.

    .venv/bin/python bench/gateway_bench.py [--rounds 3] [--cases parallel,metadata]

Prints figures; asserts nothing. Starts and stops its own containerd and buildkitd.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import TOOLS, Builder, BuildKit, Mason, drive, layout_archive, timed  # noqa: E402

FRONTEND_TAG = "localhost/bench/dockerfile-frontend:v0.32.2"
CAPS = "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
FRONTEND_DOCKERFILE = f"""FROM scratch
COPY dockerfile-frontend /bin/dockerfile-frontend
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="{CAPS}"
ENTRYPOINT ["/bin/dockerfile-frontend"]
"""


class MasonGateway(Mason):
    """mason building through BuildKit's Dockerfile frontend as an image."""

    def __init__(self, work: Path, archive: Path):
        super().__init__(work, archive, "mason-gw")
        ctx = work / "frontend-image"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(FRONTEND_DOCKERFILE)
        shutil.copy(TOOLS / "dockerfile-frontend", ctx / "dockerfile-frontend")
        self.mason(["build", "-t", FRONTEND_TAG, str(ctx)])

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed([str(self.bin), "build", "--progress=plain", "--network-default=host", "--frontend", FRONTEND_TAG,
                      "-t", tag, str(ctx)], self.env, f"mason build --frontend {ctx.name}")

    def reset(self, tags: list[str]) -> None:
        super().reset(tags)  # the frontend image stays (it is a tagged image, as a pulled one would)


MASON_IMAGE_TAG = "localhost/bench/mason-dockerfile-frontend:1"


class MasonImage(MasonGateway):
    """mason building through its own Dockerfile frontend packaged by ``mason frontend-image``."""

    def __init__(self, work: Path, archive: Path):
        Mason.__init__(self, work, archive, "mason-img")
        from tests.fixtures.debian import SUITE, build_debian_layout

        layout = work / "debian-layout"
        build_debian_layout(layout)
        deb = work / "debian.tar"
        layout_archive(layout, f"localhost/bench/debian:{SUITE}", deb)
        self.mason(["load", "-i", str(deb)])
        ctx = work / "python-base"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM localhost/bench/debian:{SUITE}\n"
                                        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends "
                                        "python3 && rm -rf /var/lib/apt/lists/*\n")
        self.mason(["build", "--network-default=host", "-t", "localhost/bench/debian-python3:1", str(ctx)])
        self.mason(["frontend-image", "dockerfile", "--base", "localhost/bench/debian-python3:1", "-t",
                    MASON_IMAGE_TAG])

    def build(self, ctx: Path, tag: str) -> tuple[float, int]:
        return timed([str(self.bin), "build", "--progress=plain", "--network-default=host", "--frontend",
                      MASON_IMAGE_TAG, "-t", tag, str(ctx)], self.env, f"mason build --frontend(mason) {ctx.name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="parallel,metadata")
    ap.add_argument("--mason-image", action="store_true",
                    help="Also build through mason's own Dockerfile frontend as an image (mason frontend-image).")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mason-gateway-bench-"))

    def add(builders: list[Builder], layout: Path, digest: str, archive: Path) -> None:
        builders.extend([Mason(work, archive), MasonGateway(work, archive), BuildKit(work, layout, digest)])
        if args.mason_image:
            builders.insert(2, MasonImage(work, archive))

    return drive(args, work, add, lambda builders: (
        f"mason and mason-gw: {builders[0].bin} (daemonless CLI; mason-gw with --frontend "
        f"{FRONTEND_TAG}); BuildKit: {TOOLS / 'buildkitd'} with dockerfile.v0"))


if __name__ == "__main__":
    sys.exit(main())
