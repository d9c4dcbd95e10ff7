"""The attack suite's runtime classes (issue 11): what a step can reach while it runs.

* CVE-2024-21626 (runc "Leaky Vessels"): a step must inherit no file descriptor of mason's or of
  the runtime's (only 0, 1, 2), and a WORKDIR of ``/proc/self/fd/N`` must not give it a working
  directory on the host.
* CVE-2024-23651 (BuildKit cache-mount race / path escapes): a cache mount's ``id`` and
  ``source`` are names inside mason's cache-mount store; ``..`` or an absolute path in them must
  not reach a host directory.
* CVE-2024-1753 (buildah: a rw bind of a stage's ``/`` wrote to the host): ``--mount=type=bind,rw``
  of a stage's or the context's root is a copy-on-write view; writes through it reach neither the
  host, nor the stage, nor the build context.

Each test plants a host canary and asserts it is untouched (and that the build failed cleanly or
the step saw only its own files)."""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _cli_build(env, ctx, *args):
    return env.cli("build", "--progress=plain", *args, str(ctx))


def test_cve_2024_21626_step_inherits_no_fds(build_env, tmp_path):
    env = build_env
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN ls -l /proc/self/fd/ > /fds\n")})
    out = tmp_path / "out"
    p = _cli_build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr
    links = dict(line.split(" -> ")[0].split()[-1:] + [line.split(" -> ")[1]]
                 for line in (out / "fds").read_text().splitlines() if " -> " in line)
    # ls's own: 0-2 (stdout is /fds) and the directory it is reading
    extra = {fd: t for fd, t in links.items() if fd not in ("0", "1", "2") and "/fd" not in t}
    assert extra == {}, f"fds leaked into the step: {links}"
    assert links["1"] == "/fds"


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 9])
def test_cve_2024_21626_workdir_proc_self_fd(build_env, tmp_path, canary, n):
    env = build_env
    canary.file("victim", b"host\n")
    canary.record()
    up = "../" * 12 + str(canary.path).lstrip("/")
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        f"WORKDIR /proc/self/fd/{n}\n"
        f"RUN echo pwned > {up}/victim; echo pwned > {up}/new; pwd -P > /cwd; cat {up}/victim > /seen; true\n")})
    out = tmp_path / "out"
    p = _cli_build(env, ctx, "-o", f"type=local,dest={out}")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    canary.assert_untouched()
    if p.returncode == 0:  # then the step ran inside its own root
        assert not (out / "seen").exists() or (out / "seen").read_text() != "host\n"
    else:  # runc refuses the working directory (it is no directory in the container): one error
        assert p.returncode == 1 and "error: " in p.stderr, p.stderr


@pytest.mark.parametrize("spec", [
    "id=../../../../../../../{host}",
    "id={host}",
    "id=x,source=../../../../../../../{host}",
    "id=x,source={host}",
    "id=../../..,source=../../../../../../../{host}",
])
def test_cve_2024_23651_cache_mount_id_and_source_stay_in_the_store(build_env, tmp_path, canary, spec):
    env = build_env
    canary.dir("cachedir")
    canary.file("cachedir/keep", b"host\n")
    canary.record()
    mount = "type=cache,target=/c," + spec.format(host=str(canary.path / "cachedir").lstrip("/"))
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        f"RUN --mount={mount} sh -c 'ls /c > /listed; echo pwned > /c/new; rm -f /c/keep; true'\n")})
    out = tmp_path / "out"
    p = _cli_build(env, ctx, "-o", f"type=local,dest={out}")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    canary.assert_untouched()
    if p.returncode == 0:
        assert "keep" not in (out / "listed").read_text()


def test_cve_2024_23651_parallel_cache_sharing_modes(build_env, tmp_path):
    """Two stages built in parallel on one cache id: ``locked`` serialises them (each sees the
    other's complete write or none), ``private`` gives each its own directory."""
    env = build_env
    body = ("sh -c 'echo $0 > /c/who; sleep 1; test \"$(cat /c/who)\" = $0 && echo ok > /r || echo raced > /r'")
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base} AS a\n"
        f"RUN --mount=type=cache,id=shared,sharing=locked,target=/c {body} a\n"
        f"FROM {env.base} AS b\n"
        f"RUN --mount=type=cache,id=shared,sharing=locked,target=/c {body} b\n"
        f"FROM {env.base} AS p1\n"
        f"RUN --mount=type=cache,id=priv,sharing=private,target=/c {body} p1\n"
        f"FROM {env.base} AS p2\n"
        f"RUN --mount=type=cache,id=priv,sharing=private,target=/c {body} p2\n"
        "FROM scratch\n"
        "COPY --from=a /r /a\nCOPY --from=b /r /b\nCOPY --from=p1 /r /p1\nCOPY --from=p2 /r /p2\n")})
    out = tmp_path / "out"
    p = _cli_build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr
    assert {n: (out / n).read_text().strip() for n in ("a", "b", "p1", "p2")} == \
        {"a": "ok", "b": "ok", "p1": "ok", "p2": "ok"}


@pytest.mark.parametrize("source", ["stage", "context"])
def test_cve_2024_1753_rw_bind_of_root_writes_nowhere(build_env, tmp_path, canary, source):
    env = build_env
    canary.file("victim", b"host\n")
    canary.record()
    host = str(canary.path).lstrip("/")
    frm = ",from=st" if source == "stage" else ""
    ctx = write(tmp_path / "c", {"inctx.txt": "ctx\n", "Dockerfile": (
        f"FROM {env.base} AS st\n"
        "RUN echo stage > /marker\n"
        f"FROM {env.base}\n"
        f"RUN --mount=type=bind{frm},source=/,target=/x,rw sh -c "
        f"'echo pwned > /x/marker; echo pwned > /x/inctx.txt; echo pwned > /x/new; "
        f"mkdir -p /x/{host} && echo pwned > /x/{host}/victim; "
        f"ls /x/{host} > /listed 2>&1; true'\n"
        "COPY --from=st /marker /stage-marker\n")})
    out = tmp_path / "out"
    p = _cli_build(env, ctx, "-o", f"type=local,dest={out}")
    assert p.returncode == 0, p.stderr
    canary.assert_untouched()
    assert (ctx / "inctx.txt").read_text() == "ctx\n" and not (ctx / "new").exists()
    assert (out / "stage-marker").read_text() == "stage\n"
    assert not (out / "x").exists() or not os.listdir(out / "x")
