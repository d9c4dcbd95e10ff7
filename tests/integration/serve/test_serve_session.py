"""Secrets and SSH agents reach a ``mason serve`` build through the client's session, as with
buildkitd: ``buildctl --secret`` values are read from the client when a step mounts them (and
redacted from the progress buildctl prints), ``--ssh default=SOCK`` relays the step's agent
connections to the client's ssh-agent."""

from __future__ import annotations

import hashlib
import shutil
import uuid

import pytest

from tests.integration.conftest import write
from tests.integration.serve.conftest import with_libs
from tests.integration.serve.test_serve_build import dockerfile_build

pytestmark = pytest.mark.integration


def test_secrets_from_the_client(served, tmp_path):
    env = served.env
    value = f"s3cr3t-{uuid.uuid4().hex}"
    env_value = f"envval-{uuid.uuid4().hex}"
    (tmp_path / "tok").write_text(value)
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {env.base}\nRUN echo {uuid.uuid4().hex}\n"
        "RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok && cat /run/secrets/tok && echo\n"
        "RUN --mount=type=secret,id=envsec,env=MYSEC echo \"env=$MYSEC\"\n"
        "RUN --mount=type=secret,id=absent echo optional-ok && mkdir /out && ls -a /run/secrets > /out/ls || true\n")})
    dest = tmp_path / "dest"
    p = dockerfile_build(served, ctx, "--secret", f"id=tok,src={tmp_path / 'tok'}", "--secret",
                         "id=envsec,env=MASON_TEST_SECRET", "--output", f"type=local,dest={dest}",
                         env={"MASON_TEST_SECRET": env_value})
    log = p.stderr
    assert hashlib.sha256(value.encode()).hexdigest() in log, log  # the step read the client's file
    assert "env=****" in log and "optional-ok" in log, log
    assert value not in log and env_value not in log, log
    assert value not in served.log.read_text() and env_value not in served.log.read_text()
    leaked = [f for f in dest.rglob("*") if f.is_file() and value.encode() in f.read_bytes()]
    assert not leaked, leaked


def test_missing_required_secret_is_an_error(served, tmp_path):
    env = served.env
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM {env.base}\nRUN --mount=type=secret,id=nope,required "
                                                 f"cat /run/secrets/nope\n"})
    p = dockerfile_build(served, ctx, check=False)
    assert p.returncode != 0 and "secret nope not found" in p.stderr, p.stderr


def test_ssh_agent_is_forwarded_through_the_session(served, tmp_path, agent_with_key):
    env = served.env
    sock, fingerprint = agent_with_key
    ctx = tmp_path / "ctx"
    with_libs(shutil.which("ssh-add") or "ssh-add", ctx / "x")
    write(ctx, {"Dockerfile": (
        f"FROM {env.base}\nCOPY x /x\nRUN echo {uuid.uuid4().hex}\n"
        "RUN --mount=type=ssh /x/ld-linux-x86-64.so.2 --library-path /x /x/ssh-add -l\n"
        "RUN --mount=type=ssh,id=other,required=false test -S \"$SSH_AUTH_SOCK\" || echo other-absent\n")})
    p = dockerfile_build(served, ctx, "--ssh", f"default={sock}")
    assert fingerprint in p.stderr, p.stderr  # the step's ssh-add listed the client's key
    assert "other-absent" in p.stderr, p.stderr  # the client has no agent 'other': no socket
    bad = write(tmp_path / "bad", {"Dockerfile": f"FROM {env.base}\nRUN --mount=type=ssh,id=other,required=true true\n"})
    q = dockerfile_build(served, bad, "--ssh", f"default={sock}", check=False)
    assert q.returncode != 0 and "no SSH agent socket other" in q.stderr, q.stderr
