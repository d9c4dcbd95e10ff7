"""-O0 (ConfigOps and history still in the chain, folded by the solver) and -O1 (hoisted by
the pass) must give the same image: same config, same history, same layers."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

DOCKERFILE = """\
FROM {base}
LABEL org.example.title="levels" maintainer="x@example.invalid"
EXPOSE 8080 9090/udp
ENV PORT=8080
WORKDIR /app
COPY hello.txt ./
RUN echo built > stamp && cat hello.txt >> stamp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/stamp"]
"""


def _image(env, digest: str) -> tuple[dict, list[str]]:
    manifest = json.loads(env.client.read_blob(digest))
    config = json.loads(env.client.read_blob(manifest["config"]["digest"]))
    return config, [la["digest"] for la in manifest["layers"]]


def test_O0_and_O1_give_the_same_image(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE.format(base=env.base), "hello.txt": "hi\n"})
    res0, _ = env.build(ctx, level=0, tags=("levels-o0",), source_date_epoch=1700000000)
    res1, _ = env.build(ctx, level=1, tags=("levels-o1",), source_date_epoch=1700000000)
    cfg0, layers0 = _image(env, res0.digest)
    cfg1, layers1 = _image(env, res1.digest)
    assert cfg0["config"] == cfg1["config"]
    assert cfg1["config"]["ExposedPorts"] == {"8080/tcp": {}, "9090/udp": {}}
    assert cfg1["config"]["Labels"]["org.example.title"] == "levels"
    assert cfg1["config"]["WorkingDir"] == "/app"
    strip = lambda h: [(e.get("created_by"), bool(e.get("empty_layer"))) for e in h]  # noqa: E731
    assert strip(cfg0["history"]) == strip(cfg1["history"])
    made = [e["created_by"] for e in cfg1["history"] if not e.get("empty_layer")]
    assert any(c.startswith("RUN /bin/sh -c echo built") for c in made)
    assert any(c.startswith("COPY hello.txt") for c in made)
    assert cfg0["rootfs"]["diff_ids"] == cfg1["rootfs"]["diff_ids"]
    assert len(layers0) == len(layers1) == len(made)  # one non-empty history entry per layer, base included
