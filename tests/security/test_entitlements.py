"""CVE-2024-23653 class (BuildKit: a frontend got an insecure container without the grant):
here the way around an entitlement would be the cache. A build with ``--allow`` leaves the
privileged step's result in the cache; the same build without the grant must still be refused
— through the Dockerfile, through ``mason solve`` of hand-made LLB — and refused before
anything is loaded or run."""

from __future__ import annotations

import pytest

from mason.backends.solver.events import Recorder, VertexCached, VertexStarted
from mason.ir.builder import image
from mason.ir.errors import MasonError
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

STEPS = {
    "security.insecure": "RUN --security=insecure cat /proc/self/status > /status",
    "network.host": "RUN --network=host cat /proc/net/dev > /netdev",
}


@pytest.mark.parametrize("ent", sorted(STEPS))
def test_cve_2024_23653_entitlement_holds_on_a_cache_hit_dockerfile(build_env, tmp_path, ent):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\n{STEPS[ent]}\n"})
    env.build(ctx, allow=(ent,))  # the grant: the step runs and its result is cached
    _, rec = env.build(ctx, allow=(ent,))
    assert rec.of(VertexCached), "the second granted build should be a cache hit"
    rec = Recorder()
    with pytest.raises(MasonError, match=f"needs the {ent} entitlement"):
        env.build(ctx, events=rec)
    assert not rec.of(VertexStarted) and not rec.of(VertexCached), "refused only after loading"


def test_cve_2024_23653_entitlement_holds_on_a_cache_hit_cli(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\n{STEPS['security.insecure']}\n"})
    p = env.cli("build", "--allow", "security.insecure", "--progress=plain", str(ctx))
    assert p.returncode == 0, p.stderr
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1, p.stderr
    assert "--allow security.insecure" in p.stderr and "Traceback" not in p.stderr
    assert "CACHED" not in p.stderr


def test_cve_2024_23653_entitlement_holds_on_a_cache_hit_llb(build_env, tmp_path):
    """Hand-made LLB through ``mason solve``: the same, with no frontend in between."""
    env = build_env
    st = image(env.base).run("cat /proc/net/dev > /netdev", network="host").root()
    path = tmp_path / "def.llb"
    path.write_bytes(st.marshal())
    p = env.cli("solve", "--allow", "network.host", str(path))
    assert p.returncode == 0, p.stderr
    p = env.cli("solve", "--progress=plain", str(path))
    assert p.returncode == 1, p.stderr
    assert "--allow network.host" in p.stderr and "CACHED" not in p.stderr


def test_entitlement_unknown_name_is_one_clear_line(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\n"})
    p = env.cli("build", "--allow", "network.hots", str(ctx))
    assert p.returncode == 1 and "unknown entitlement 'network.hots'" in p.stderr
    assert "Traceback" not in p.stderr


def test_explicit_network_default_host_is_the_grant(build_env, tmp_path):
    """docs/network-default.md: ``--network-default host`` implies ``--allow network.host`` (as
    buildx's ``--network=host``); without either, ``RUN --network=host`` stays refused."""
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": f"FROM {env.base}\nRUN --network=host echo hi > /h\n"})
    p = env.cli("build", "--progress=plain", str(ctx))
    assert p.returncode == 1 and "--allow network.host" in p.stderr, p.stderr
    p = env.cli("build", "--progress=plain", "--network-default", "host", str(ctx))
    assert p.returncode == 0, p.stderr
    p = env.cli("build", "--progress=plain", str(ctx))  # the grant is not remembered by the cache
    assert p.returncode == 1 and "--allow network.host" in p.stderr and "CACHED" not in p.stderr, p.stderr
