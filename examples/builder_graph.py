"""A small build written with mason's builder API; writes the LLB Definition to stdout.

    python examples/builder_graph.py > graph.llb
    mason llb dump graph.llb          # or: buildctl debug dump-llb < graph.llb

A "build" stage compiles with a cache mount, a "runtime" stage gets the result copied in,
and a config layer made from scratch is merged on top.
"""

from __future__ import annotations

import sys

from mason.ir.builder import State, cache, image, merge, mkdir, scratch, tmpfs
from mason.ir.imageconfig import empty_image_config


def build_graph() -> tuple[State, dict]:
    build = (
        image("busybox", platform="linux/amd64")
        .with_env("CACHE", "/root/.cache")
        .with_cwd("/src")
        .run("mkdir -p /out && echo 'int main(){}' > main.c && cp main.c /out/app && "
             "date >> /root/.cache/builds",
             mounts=[cache("/root/.cache", id="build-cache", sharing="locked"), tmpfs("/tmp")],
             name="build")
        .root()
    )
    runtime = (
        image("busybox", platform="linux/amd64")
        .file(mkdir("/app", 0o755, parents=True).copy(build, "/out/app", "/app/app", create_dest_path=True),
              name="copy app")
    )
    config = scratch().with_platform("linux/amd64").file(
        mkdir("/etc/app", parents=True).mkfile("/etc/app/config.toml", b"port = 8080\n"), name="config")
    final = merge([runtime, config], name="merge config")
    img = empty_image_config("amd64", "linux")
    img["config"] = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                     "Cmd": ["/app/app"], "WorkingDir": "/app", "ExposedPorts": {"8080/tcp": {}}}
    return final, img


def main() -> None:
    final, img = build_graph()
    sys.stdout.buffer.write(final.marshal(image_config=img))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
