"""Stages, variables and the image config, proved by real builds: WORKDIR (owner, relative
paths), USER, ENV expansion in the instructions Docker expands, ARG before FROM and
``--build-arg``, the automatic platform ARGs, every image-config instruction as BuildKit writes
it (config fields and history), ONBUILD triggers of a base image from mason's image store,
``--target``, and stages referenced by name and index."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from mason.backends.solver.events import VertexDone, VertexStarted
from mason.backends.solver.mounts import mounted_view
from tests.integration.conftest import write

pytestmark = pytest.mark.integration

COMMENT = "buildkit.dockerfile.v0"


def _nonce() -> str:
    return uuid.uuid4().hex


class Tree:
    def __init__(self, root):
        self.root = str(root)

    def host(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def read(self, p):
        with open(self.host(p)) as f:
            return f.read()

    def exists(self, p):
        return os.path.lexists(self.host(p))

    def owner_mode(self, p):
        s = os.lstat(self.host(p))
        return s.st_uid, s.st_gid, s.st_mode & 0o7777


def built(env, res):
    class _Cm:
        def __enter__(self_inner):
            self_inner.cm = mounted_view(env.lease_client, res.result.snapshot)
            return Tree(self_inner.cm.__enter__())

        def __exit__(self_inner, *exc):
            return self_inner.cm.__exit__(*exc)
    return _Cm()


def image_config(env, res) -> dict:
    """The config blob the image writer stored (not the in-memory config)."""
    c = env.client
    manifest = json.loads(c.read_blob(res.image.manifest_digest))
    return json.loads(c.read_blob(manifest["config"]["digest"]))


# --------------------------------------------------------------------------- WORKDIR and USER

def test_workdir_and_user(build_env, tmp_path):
    """* ``USER app`` then ``RUN id``: uid 1000, gid 1000, and what the step creates is
      1000:1000;
    * ``WORKDIR`` after ``USER app`` creates every missing directory owned 1000:1000, mode
      0755; before any USER it is root's;
    * a relative WORKDIR joins the previous one (``/a`` + ``b`` + ``c`` = ``/a/b/c``), RUN
      starts there, and the image's WorkingDir is that path."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
WORKDIR /rootdir/sub
USER app
WORKDIR /srv/app/deep
RUN id -u > uid && id -g > gid && touch made
WORKDIR /a
WORKDIR b
WORKDIR c
RUN pwd > /tmp/pwd
"""
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": df}), tags=(f"it-wd-{_nonce()[:8]}",))
    with built(env, res) as t:
        assert t.read("/srv/app/deep/uid") == "1000\n" and t.read("/srv/app/deep/gid") == "1000\n"
        assert t.owner_mode("/srv/app/deep/made")[:2] == (1000, 1000)
        for d in ("/srv", "/srv/app", "/srv/app/deep", "/a", "/a/b", "/a/b/c"):
            assert t.owner_mode(d) == (1000, 1000, 0o755), d
        for d in ("/rootdir", "/rootdir/sub"):
            assert t.owner_mode(d) == (0, 0, 0o755), d
        assert t.read("/tmp/pwd") == "/a/b/c\n"
    cfg = image_config(env, res)["config"]
    assert cfg["WorkingDir"] == "/a/b/c" and cfg["User"] == "app"


def test_env_expansion_in_instructions(build_env, tmp_path):
    """ENV values are expanded in WORKDIR, COPY, ADD, USER, LABEL, EXPOSE (and the values of
    one ENV use the values from before it)."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce
ENV DIR=/data APPUSER=app PORT=8080 FILE=f.txt NAME=expanded
ENV NAME=second OLD=$NAME
WORKDIR $DIR/work
COPY $FILE ${{DIR}}/copied-$NAME
ADD ${{FILE}} $DIR/added/
USER $APPUSER
LABEL name=$NAME "other"="${{OLD}}-2"
EXPOSE $PORT ${{PORT}}/udp
RUN id -un > /tmp/whoami
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "f.txt": "content"})
    res, _ = env.build(ctx, tags=(f"it-envx-{_nonce()[:8]}",))
    with built(env, res) as t:
        assert t.exists("/data/work")
        assert t.read("/data/copied-second") == "content"
        assert t.read("/data/added/f.txt") == "content"
        assert t.read("/tmp/whoami") == "app\n"
    c = image_config(env, res)["config"]
    assert c["WorkingDir"] == "/data/work"
    assert c["User"] == "app"
    assert c["Labels"] == {"name": "second", "other": "expanded-2"}
    assert c["ExposedPorts"] == {"8080/tcp": {}, "8080/udp": {}}
    assert "OLD=expanded" in c["Env"] and "NAME=second" in c["Env"]


# --------------------------------------------------------------------------- ARG

ARGS = """\
ARG BASE=no-such-registry.invalid/none
ARG FLAVOR=alpha
FROM $BASE AS alpha
RUN echo alpha-{nonce} > /flavor

FROM ${{BASE}} AS beta
RUN echo beta-{nonce} > /flavor

FROM ${{FLAVOR}}
ARG FLAVOR
ARG LOCAL=local-default
RUN echo "$FLAVOR" > /declared && echo "${{BASE:-unset}}" > /global-undeclared && echo "$LOCAL" > /local
"""


def test_global_args_in_from_and_build_arg_override(build_env, tmp_path):
    """A global ARG (before the first FROM) is usable in FROM; ``--build-arg`` overrides its
    default (here BASE must be overridden: its default does not exist); inside a stage only
    a re-declared global is visible to RUN, with the overridden value; a stage ARG's default
    applies unless ``--build-arg`` sets it."""
    env = build_env
    nonce = _nonce()
    ctx = write(tmp_path / "ctx", {"Dockerfile": ARGS.format(nonce=nonce)})
    res, _ = env.build(ctx, build_args={"BASE": env.base})
    with built(env, res) as t:
        assert t.read("/flavor") == f"alpha-{nonce}\n"
        assert t.read("/declared") == "alpha\n"
        assert t.read("/global-undeclared") == "unset\n"
        assert t.read("/local") == "local-default\n"
    res, _ = env.build(ctx, build_args={"BASE": env.base, "FLAVOR": "beta", "LOCAL": "from-cli"})
    with built(env, res) as t:
        assert t.read("/flavor") == f"beta-{nonce}\n"
        assert t.read("/declared") == "beta\n"
        assert t.read("/local") == "from-cli\n"


def test_platform_args_visible_when_declared(build_env, tmp_path):
    """``TARGETPLATFORM``/``BUILDPLATFORM`` (and the OS/ARCH parts) are automatic ARGs: RUN
    sees them only after ``ARG NAME`` in the stage; this host builds ``linux/amd64``."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN echo {_nonce()} > /nonce && echo "${{TARGETPLATFORM:-unset}}" > /before
ARG TARGETPLATFORM
ARG BUILDPLATFORM
ARG TARGETOS TARGETARCH
RUN echo "$TARGETPLATFORM $BUILDPLATFORM $TARGETOS $TARGETARCH ${{BUILDARCH:-unset}}" > /after
"""
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": df}))
    with built(env, res) as t:
        assert t.read("/before") == "unset\n"
        assert t.read("/after") == "linux/amd64 linux/amd64 linux amd64 unset\n"


# --------------------------------------------------------------------------- image config

CONFIG_DF = """\
FROM {base}
LABEL a=1 b="two words"
MAINTAINER Someone <someone@example.invalid>
EXPOSE 80 443/tcp 53/UDP 7000-7002
ENV K=v
VOLUME ["/data", "/logs"]
VOLUME /cache
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD ["/bin/check", "x"]
SHELL ["/bin/sh", "-xc"]
ENTRYPOINT echo hi
CMD ["a", "b"]
USER 1000:1000
"""


def test_image_config_as_buildkit_writes_it(build_env, tmp_path):
    """The config fields and history entries BuildKit (dockerfile frontend) writes for every
    config instruction: ports normalised to ``N/proto`` (ranges expanded, protocol lower
    case), volumes as a set, HEALTHCHECK durations in nanoseconds, SHELL kept and used to
    wrap the shell-form ENTRYPOINT, MAINTAINER as the top-level ``author``, ``ArgsEscaped``
    with CMD, no ``OnBuild`` (v0.32.2 omits it; v0.11.6 wrote null); one ``empty_layer`` history entry per instruction with
    BuildKit's ``created_by`` text."""
    env = build_env
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": CONFIG_DF.format(base=env.base)}),
                       tags=(f"it-config-{_nonce()[:8]}",))
    img = image_config(env, res)
    assert img["author"] == "Someone <someone@example.invalid>"
    c = img["config"]
    assert c["Labels"] == {"a": "1", "b": "two words"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}, "53/udp": {}, "7000/tcp": {},
                                 "7001/tcp": {}, "7002/tcp": {}}
    assert c["Env"] == ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "K=v"]
    assert c["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert c["StopSignal"] == "SIGKILL"
    assert c["Healthcheck"] == {"Test": ["CMD", "/bin/check", "x"], "Interval": 5_000_000_000,
                                "Timeout": 2_000_000_000, "StartPeriod": 1_000_000_000,
                                "Retries": 4}
    assert c["Shell"] == ["/bin/sh", "-xc"]
    assert c["Entrypoint"] == ["/bin/sh", "-xc", "echo hi"]
    assert c["Cmd"] == ["a", "b"]
    assert c["ArgsEscaped"] is True
    assert c["User"] == "1000:1000"
    assert c["WorkingDir"] == "/"
    assert "OnBuild" not in c
    ours = [h for h in img["history"] if h.get("comment") == COMMENT]
    assert all(h.get("empty_layer") is True for h in ours)
    assert [h["created_by"] for h in ours] == [
        "LABEL a=1 b=two words",
        "MAINTAINER Someone <someone@example.invalid>",
        "EXPOSE [443/tcp 53/udp 7000/tcp 7001/tcp 7002/tcp 80/tcp]",
        "ENV K=v",
        "VOLUME [/data /logs]",
        "VOLUME [/cache]",
        "STOPSIGNAL SIGKILL",
        "HEALTHCHECK {Test:[CMD /bin/check x] Interval:5s Timeout:2s StartPeriod:1s StartInterval:0s Retries:4}",
        "SHELL [/bin/sh -xc]",
        'ENTRYPOINT ["/bin/sh" "-xc" "echo hi"]',
        'CMD ["a" "b"]',
        "USER 1000:1000",
    ]
    assert len(img["rootfs"]["diff_ids"]) == 1  # only the base layer: no instruction made one


def test_entrypoint_resets_inherited_cmd_and_healthcheck_none(build_env, tmp_path):
    """ENTRYPOINT without a CMD in the same stage drops the base image's Cmd (busybox's
    ``/bin/sh``); a shell-form CMD runs through the default ``/bin/sh -c``; ``HEALTHCHECK
    NONE`` writes ``Test: ["NONE"]``; a numeric STOPSIGNAL stays a string."""
    env = build_env
    df = f"""\
FROM {env.base} AS ep
ENTRYPOINT ["/bin/echo"]

FROM {env.base}
COPY --from=ep /etc/group /g
CMD echo $HOME
HEALTHCHECK NONE
STOPSIGNAL 9
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    res, _ = env.build(ctx, target="ep", tags=(f"it-ep-{_nonce()[:8]}",))
    c = image_config(env, res)["config"]
    assert c["Entrypoint"] == ["/bin/echo"]
    assert c.get("Cmd") is None
    res, _ = env.build(ctx, tags=(f"it-cmd-{_nonce()[:8]}",))
    c = image_config(env, res)["config"]
    assert c["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]
    assert c.get("Entrypoint") is None
    assert c["Healthcheck"] == {"Test": ["NONE"]}
    assert c["StopSignal"] == "9"


# --------------------------------------------------------------------------- ONBUILD

def test_onbuild_triggers_run_in_the_child_build(build_env, tmp_path):
    """An image built with ``ONBUILD RUN echo triggered > /onbuild`` keeps the trigger in its
    config (and does not run it); a build ``FROM`` that image (found in mason's image store
    by its tag) runs the trigger right after FROM, before its own instructions, and its
    own image has no triggers left."""
    env = build_env
    tag = f"it-onbuild-{_nonce()[:12]}"
    parent = write(tmp_path / "parent", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo {_nonce()} > /nonce\nONBUILD RUN echo triggered > /onbuild\n")})
    res, _ = env.build(parent, tags=(tag,))
    assert image_config(env, res)["config"]["OnBuild"] == ["RUN echo triggered > /onbuild"]
    with built(env, res) as t:
        assert not t.exists("/onbuild")
    child = write(tmp_path / "child", {"Dockerfile": f"FROM {tag}\nRUN cat /onbuild > /seen-by-child\n"})
    res, _ = env.build(child, tags=(tag + "-child",))
    with built(env, res) as t:
        assert t.read("/onbuild") == "triggered\n"
        assert t.read("/seen-by-child") == "triggered\n"
    assert image_config(env, res)["config"].get("OnBuild") is None


# --------------------------------------------------------------------------- stages

STAGES = """\
FROM {base} AS build
ENV FROM_BUILD=yes
WORKDIR /src
RUN echo build-{nonce} > /stage

FROM build AS test
RUN echo "test $FROM_BUILD $(pwd)" > /stage

FROM {base}
RUN echo final-{nonce} > /stage
COPY --from=1 /stage /from-index-1
COPY --from=build /stage /from-name
RUN --mount=type=bind,from=build,target=/s cat /s/stage > /from-mount
"""


def test_target_builds_an_intermediate_stage(build_env, tmp_path):
    """``--target test`` builds the ``test`` stage (which inherits ``build``'s ENV and
    WORKDIR) and nothing of the last stage runs; without it the last stage reads the
    others by index (``--from=1``) and by name (``--from=build``, ``--mount from=build``: a
    mount's ``from=0`` would be the image ``0``, as in BuildKit v0.32.2)."""
    env = build_env
    nonce = _nonce()
    ctx = write(tmp_path / "ctx", {"Dockerfile": STAGES.format(base=env.base, nonce=nonce)})
    res, rec = env.build(ctx, target="test")
    with built(env, res) as t:
        assert t.read("/stage") == "test yes /src\n"
    started = [e.name for e in rec.of(VertexStarted)]
    assert not any("final-" in n for n in started), started
    assert any("echo build-" in n for n in started)
    assert all(e.error is None for e in rec.of(VertexDone))
    res, _ = env.build(ctx)
    with built(env, res) as t:
        assert t.read("/stage") == f"final-{nonce}\n"
        assert t.read("/from-index-1") == "test yes /src\n"
        assert t.read("/from-name") == f"build-{nonce}\n"
        assert t.read("/from-mount") == f"build-{nonce}\n"


def test_onbuild_of_a_stage_runs_in_the_stage_built_from_it(build_env, tmp_path):
    """ONBUILD in a stage is not run there; ``FROM thatstage`` runs it first."""
    env = build_env
    df = f"""\
FROM {env.base} AS parent
RUN echo {_nonce()} > /nonce
ONBUILD RUN echo stage-trigger > /t

FROM parent
RUN cat /t > /seen
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    res, _ = env.build(ctx, target="parent")
    with built(env, res) as t:
        assert not t.exists("/t")
    res, _ = env.build(ctx)
    with built(env, res) as t:
        assert t.read("/seen") == "stage-trigger\n"
