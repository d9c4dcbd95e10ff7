"""RUN, proved by real builds: shell form through SHELL, exec form, heredocs, and every
``--mount`` type (cache with sharing/uid/gid/mode, bind from a stage read-only and ``rw``,
secret as an environment variable, ssh with a real ``ssh-agent``). Each test states the result
Docker's documented semantics give and reads it from the built filesystem.

Results are shared by cache key across state roots on one containerd, so every Dockerfile
carries a nonce: each test really runs its steps."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import uuid

import pytest

from mason.backends.solver.mounts import mounted_view
from mason.ir.errors import MasonError
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def _nonce() -> str:
    return uuid.uuid4().hex


def build_files(env, ctx, **kw) -> dict[str, bytes]:
    """Build ``ctx`` and return every regular file under ``/out`` of the result."""
    res, _ = env.build(ctx, **kw)
    out: dict[str, bytes] = {}
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        base = os.path.join(root, "out")
        for dirpath, _, names in os.walk(base):
            for n in names:
                p = os.path.join(dirpath, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    out[os.path.relpath(p, base)] = open(p, "rb").read()
    return out


def text(files: dict[str, bytes], name: str) -> str:
    return files[name].decode()


# --------------------------------------------------------------------------- command forms

def test_shell_form_exec_form_and_shell_instruction(build_env, tmp_path):
    """Shell form runs ``/bin/sh -c CMD`` (a failing command in the middle does not stop the
    list); after ``SHELL ["/bin/sh","-ec"]`` it runs with ``-e`` (``$-`` holds ``e``, and the
    same ``false; echo`` line now fails the build). Exec form runs argv directly."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN false; echo after-false > /out/default-shell
SHELL ["/bin/sh", "-ec"]
RUN echo "$0 $-" > /out/shell-flags
RUN ["/bin/echo", "exec", "$HOME"]
RUN ["/bin/sh", "-c", "echo exec-form > /out/exec-form"]
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "default-shell") == "after-false\n"  # sh -c: no errexit
    assert text(files, "shell-flags").split()[0] == "/bin/sh"
    assert "e" in text(files, "shell-flags").split()[1]  # the -e flag is active
    assert text(files, "exec-form") == "exec-form\n"
    failing = df.replace("RUN echo \"$0 $-\" > /out/shell-flags\n",
                         "RUN false; echo after-false > /out/errexit\n")
    with pytest.raises(MasonError) as e:
        env.build(write(tmp_path / "ctx2", {"Dockerfile": failing}))
    assert "RUN false; echo after-false" in str(e.value)


def test_exec_form_does_not_expand_variables(build_env, tmp_path):
    """Exec form is not run through a shell: ``$HOME`` reaches the program literally."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN ["/bin/sh", "-c", "printf '%s' \\"$1\\" > /out/arg", "sh", "$HOME"]
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "arg") == "$HOME"


def test_heredoc_run_script_and_shebang(build_env, tmp_path):
    """``RUN <<EOF`` runs the multi-line body as a shell script (each line a command, state
    kept between lines); with a ``#!`` first line the body becomes a file run by that
    interpreter (here ``/bin/sh -e``: the script's ``$0`` is its path, not ``/bin/sh``)."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN <<EOF
x=heredoc
echo "line1 $x" > /out/heredoc
echo line2 >> /out/heredoc
EOF
RUN <<EOT
#!/bin/sh -e
echo "$0" > /out/shebang-argv0
echo "$-" > /out/shebang-flags
EOT
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "heredoc") == "line1 heredoc\nline2\n"
    argv0 = text(files, "shebang-argv0").strip()
    assert argv0 != "/bin/sh" and argv0.endswith("/EOT"), argv0  # run as a file named EOT
    assert "e" in text(files, "shebang-flags")


def test_heredoc_run_with_command_feeds_stdin(build_env, tmp_path):
    """``RUN cat <<EOF > file``: the heredoc is the command's stdin (expanded by the shell,
    since the delimiter is unquoted); a quoted delimiter keeps ``$`` literal."""
    env = build_env
    df = f"""\
FROM {env.base}
ENV WHO=world
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN cat <<EOF > /out/greeting
hello $WHO
EOF
RUN cat <<'EOF' > /out/literal
hello $WHO
EOF
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "greeting") == "hello world\n"
    assert text(files, "literal") == "hello $WHO\n"


# --------------------------------------------------------------------------- cache mounts

LOCKED = """\
FROM {base} AS a
RUN --mount=type=cache,id={cid},target=/c,sharing={sharing} mkdir -p /out && echo {nonce} > /out/nonce && cut -d' ' -f1 /proc/uptime > /out/start && echo a >> /c/writers && sleep 2 && cut -d' ' -f1 /proc/uptime > /out/end && cp /c/writers /out/seen

FROM {base} AS b
RUN --mount=type=cache,id={cid},target=/c,sharing={sharing} mkdir -p /out && echo {nonce} > /out/nonce && cut -d' ' -f1 /proc/uptime > /out/start && echo b >> /c/writers && sleep 2 && cut -d' ' -f1 /proc/uptime > /out/end && cp /c/writers /out/seen

FROM {base}
COPY --from=a /out /out/a
COPY --from=b /out /out/b
"""


def _interval(files, who) -> tuple[float, float]:
    return float(files[f"{who}/start"]), float(files[f"{who}/end"])


def test_cache_mount_sharing_locked_serializes(build_env, tmp_path):
    """Two independent stages use the same cache id with ``sharing=locked``: the second
    writer waits for the first to release the cache, so their run intervals (read from the
    host kernel's ``/proc/uptime``) do not overlap, and the second sees the first's file in
    the same cache directory."""
    env = build_env
    df = LOCKED.format(base=env.base, cid="locked-" + _nonce(), sharing="locked", nonce=_nonce())
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}), jobs=4)
    (as_, ae), (bs, be) = _interval(files, "a"), _interval(files, "b")
    assert ae <= bs or be <= as_, ((as_, ae), (bs, be))  # one after the other
    first, second = ("a", "b") if ae <= bs else ("b", "a")
    assert text(files, f"{first}/seen") == f"{first}\n"
    assert text(files, f"{second}/seen") == f"{first}\n{second}\n"  # the same directory


PRIVATE = """\
FROM {base} AS a
RUN --mount=type=cache,id={sync},target=/sync,sharing=shared --mount=type=cache,id={cid},target=/c,sharing=private mkdir -p /out && echo {nonce} > /out/nonce && echo a > /c/a && touch /sync/a && i=0; while [ ! -e /sync/b ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ls /sync > /out/sync && ls /c > /out/seen

FROM {base} AS b
RUN --mount=type=cache,id={sync},target=/sync,sharing=shared --mount=type=cache,id={cid},target=/c,sharing=private mkdir -p /out && echo {nonce} > /out/nonce && echo b > /c/b && touch /sync/b && i=0; while [ ! -e /sync/a ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ls /sync > /out/sync && ls /c > /out/seen

FROM {base}
COPY --from=a /out /out/a
COPY --from=b /out /out/b
"""


def test_cache_mount_sharing_private_gives_separate_dirs(build_env, tmp_path):
    """Two stages run at the same time (a ``sharing=shared`` rendezvous cache proves both were
    inside their step together) and use one cache id with ``sharing=private``: each writer
    gets its own directory, so each sees only its own file."""
    env = build_env
    df = PRIVATE.format(base=env.base, cid="private-" + _nonce(), sync="sync-" + _nonce(),
                        nonce=_nonce())
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}), jobs=4)
    # both were in their step at the same time (the shared cache held both markers)
    assert text(files, "a/sync").split() == ["a", "b"]
    assert text(files, "b/sync").split() == ["a", "b"]
    assert text(files, "a/seen").split() == ["a"]
    assert text(files, "b/seen").split() == ["b"]


def test_cache_mount_shared_is_one_directory(build_env, tmp_path):
    """The default ``sharing=shared``: two concurrent writers see each other's files."""
    env = build_env
    df = PRIVATE.format(base=env.base, cid="shared-" + _nonce(), sync="sync-" + _nonce(),
                        nonce=_nonce()).replace("sharing=private", "sharing=shared")
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}), jobs=4)
    assert text(files, "a/sync").split() == ["a", "b"]
    assert text(files, "a/seen").split() == ["a", "b"]
    assert text(files, "b/seen").split() == ["a", "b"]


def test_cache_mount_uid_gid_mode(build_env, tmp_path):
    """A new cache mount with ``uid=1000,gid=1000,mode=0750`` is a directory owned 1000:1000
    with mode 0750; without them it is 0:0 0755. USER app can write into the first."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir -p /out && chmod 777 /out && echo {_nonce()} > /out/nonce
RUN --mount=type=cache,id=perm-{_nonce()},target=/c,uid=1000,gid=1000,mode=0750 stat -c '%u %g %a' /c > /out/owned
RUN --mount=type=cache,id=plain-{_nonce()},target=/c stat -c '%u %g %a' /c > /out/plain
USER app
RUN --mount=type=cache,id=app-{_nonce()},target=/home/app/.cache,uid=1000,gid=1000 touch /home/app/.cache/x && echo wrote > /out/app-wrote
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "owned") == "1000 1000 750\n"
    assert text(files, "plain") == "0 0 755\n"
    assert text(files, "app-wrote") == "wrote\n"


# --------------------------------------------------------------------------- bind mounts

BIND = """\
FROM {base} AS src
RUN mkdir /data && echo original > /data/file && echo {nonce} > /data/nonce

FROM {base} AS ro
RUN mkdir /out
RUN --mount=type=bind,from=src,source=/data,target=/mnt cat /mnt/file > /out/read && (if echo x 2>/out/ro-error >/mnt/new; then echo writable; else echo read-only; fi) > /out/ro

FROM {base} AS rw
RUN mkdir /out
RUN --mount=type=bind,from=src,source=/data,target=/mnt,rw echo changed > /mnt/file && echo new > /mnt/new && cat /mnt/file /mnt/new > /out/in-step
RUN --mount=type=bind,from=src,source=/data,target=/mnt ls /mnt > /out/later-listing && cat /mnt/file > /out/later-file

FROM {base}
COPY --from=ro /out /out/ro
COPY --from=rw /out /out/rw
COPY --from=src /data /out/src
"""


def test_bind_mount_from_stage_read_only_and_rw(build_env, tmp_path):
    """``--mount=type=bind,from=src,source=/data``: the stage's directory at the target,
    read-only by default (a write fails with EROFS); with ``rw`` the step may write, and the
    writes are discarded — neither a later mount of the same source nor the stage itself
    sees them, and the mount target leaves no trace in the step's layer."""
    env = build_env
    df = BIND.format(base=env.base, nonce=_nonce())
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": df}))
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        def read(p):
            return open(os.path.join(root, p), "rb").read().decode()
        assert read("out/ro/read") == "original\n"
        assert read("out/ro/ro") == "read-only\n"
        assert "Read-only file system" in read("out/ro/ro-error")
        assert read("out/rw/in-step") == "changed\nnew\n"
        assert read("out/rw/later-listing").split() == ["file", "nonce"]
        assert read("out/rw/later-file") == "original\n"
        assert read("out/src/file") == "original\n"
        assert not os.path.exists(os.path.join(root, "out/src/new"))
        assert not os.path.exists(os.path.join(root, "mnt"))  # the mount stub is removed


def test_bind_mount_from_context_default(build_env, tmp_path):
    """``--mount=type=bind`` without ``from`` binds the build context (read-only)."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=target=/ctx cat /ctx/input.txt > /out/copied && ls /ctx/sub > /out/sub
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "input.txt": "from context\n", "sub/a": "a"})
    files = build_files(env, ctx)
    assert text(files, "copied") == "from context\n"
    assert text(files, "sub") == "a\n"


# --------------------------------------------------------------------------- secrets

def test_secret_mount_as_env(build_env, tmp_path):
    """``--mount=type=secret,id=tok,env=TOKEN``: the secret's value is in ``$TOKEN`` during the
    step, no file is mounted at ``/run/secrets/tok``, and the variable is not in the image."""
    env = build_env
    value = "env-secret-" + _nonce()[:8]
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'if [ "$TOKEN" = "{value}" ]; then echo match; else echo "mismatch:${{#TOKEN}}"; fi > /out/env; if [ -e /run/secrets/tok ]; then echo file; else echo nofile; fi > /out/file'
RUN echo "${{TOKEN:-unset}}" > /out/later
"""
    sf = tmp_path / "tok"
    sf.write_text(value)
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": df}), secrets=(f"id=tok,src={sf}",))
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        def read(p):
            return open(os.path.join(root, p)).read()
        assert read("out/env") == "match\n"
        assert read("out/file") == "nofile\n"
        assert read("out/later") == "unset\n"
    assert not any(e.startswith("TOKEN=") for e in res.image_config["config"]["Env"])


def test_secret_mount_target_and_mode(build_env, tmp_path):
    """A secret at a chosen ``target`` with ``mode=0440,uid=1000``: the file is there with
    that mode and owner and the secret's bytes, during the step only."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=secret,id=cfg,target=/etc/app.cfg,mode=0440,uid=1000 stat -c '%u %a' /etc/app.cfg > /out/stat && sha256sum < /etc/app.cfg | cut -d' ' -f1 > /out/sum
"""
    sf = tmp_path / "cfg"
    sf.write_text("config-secret")
    import hashlib
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}), secrets=(f"id=cfg,src={sf}",))
    assert text(files, "stat") == "1000 440\n"
    assert text(files, "sum").strip() == hashlib.sha256(b"config-secret").hexdigest()


# --------------------------------------------------------------------------- ssh

@pytest.fixture
def ssh_agent(tmp_path):
    """A real ``ssh-agent`` on a socket under ``tmp_path`` (Debian's openssh-client)."""
    exe = shutil.which("ssh-agent")
    assert exe, "ssh-agent not found: install the Debian package openssh-client"
    sock = tmp_path / "agent.sock"
    p = subprocess.Popen([exe, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            import time
            time.sleep(0.05)
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        # the agent answers on the host side (no keys yet): ssh-add -l exits 1
        r = subprocess.run(["ssh-add", "-l"], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                           capture_output=True, text=True)
        assert r.returncode == 1 and "no identities" in r.stdout.lower() + r.stderr.lower()
        yield sock
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)


def test_ssh_mount_exposes_agent_socket(build_env, tmp_path, ssh_agent):
    """``RUN --mount=type=ssh`` with ``--ssh default=SOCK``: the step's ``SSH_AUTH_SOCK`` names
    the default target ``/run/buildkit/ssh_agent.0``, which is a socket with mode 0600, owned
    by root; the socket is gone from the result and ``SSH_AUTH_SOCK`` is not in the image."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=ssh echo "$SSH_AUTH_SOCK" > /out/env && stat -c '%F %a %u' /run/buildkit/ssh_agent.0 > /out/stat
"""
    res, _ = env.build(write(tmp_path / "ctx", {"Dockerfile": df}), ssh=(f"default={ssh_agent}",))
    with mounted_view(env.lease_client, res.result.snapshot) as root:
        def read(p):
            return open(os.path.join(root, p)).read()
        assert read("out/env") == "/run/buildkit/ssh_agent.0\n"
        assert read("out/stat") == "socket 600 0\n"
        assert not os.path.exists(os.path.join(root, "run/buildkit/ssh_agent.0"))
    assert not any(e.startswith("SSH_AUTH_SOCK=") for e in res.image_config["config"]["Env"])


def test_ssh_mount_target_uid_and_mode(build_env, tmp_path, ssh_agent):
    """``--mount=type=ssh,target=/tmp/agent,uid=1000,mode=0660``: the socket is at the target
    (and ``SSH_AUTH_SOCK`` names it), owned by uid 1000 with mode 0660, as the reference
    documents the options."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=ssh,target=/tmp/agent,uid=1000,mode=0660 echo "$SSH_AUTH_SOCK" > /out/env && stat -c '%F %a %u' /tmp/agent > /out/stat
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}), ssh=(f"default={ssh_agent}",))
    assert text(files, "env") == "/tmp/agent\n"
    assert text(files, "stat") == "socket 660 1000\n"


# --------------------------------------------------------------------------- more mount options

def test_tmpfs_size_and_cache_from_source_readonly(build_env, tmp_path):
    """* ``type=tmpfs,size=1m``: a tmpfs of 1 MiB (``size=1024k`` in ``/proc/mounts``),
      gone afterwards;
    * ``type=cache,from=seed,source=/init``: a new cache starts with the stage's directory;
    * ``type=cache,ro``: the cache is read-only in the step."""
    env = build_env
    cid = "seeded-" + _nonce()
    df = f"""\
FROM {env.base} AS seed
RUN mkdir /init && echo seeded > /init/first && echo {_nonce()} > /init/nonce

FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=tmpfs,target=/t,size=1m grep ' /t ' /proc/mounts | cut -d' ' -f3,4 | tr ',' '\\n' | grep -E '^(tmpfs|size=)' > /out/tmpfs
RUN --mount=type=cache,id={cid},target=/c,from=seed,source=/init cat /c/first > /out/seeded && echo later > /c/second
RUN --mount=type=cache,id={cid},target=/c,ro cat /c/second > /out/kept && (if touch /c/x 2>/dev/null; then echo writable; else echo read-only; fi) > /out/ro
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    fields = text(files, "tmpfs").split()
    assert fields[0].startswith("tmpfs") and "size=1024k" in fields, fields
    assert text(files, "seeded") == "seeded\n"
    assert text(files, "kept") == "later\n"
    assert text(files, "ro") == "read-only\n"


def test_secret_required_and_optional(build_env, tmp_path):
    """A secret mount is optional by default: without ``--secret`` the step runs and the file
    is absent. With ``required=true`` the build fails naming the secret."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out && echo {_nonce()} > /out/nonce
RUN --mount=type=secret,id=maybe (if [ -e /run/secrets/maybe ]; then echo present; else echo absent; fi) > /out/optional
"""
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "optional") == "absent\n"
    req = df + "RUN --mount=type=secret,id=needed,required=true true\n"
    p = env.cli("build", str(write(tmp_path / "req", {"Dockerfile": req})))
    assert p.returncode == 1
    assert "secret needed" in p.stderr and "Dockerfile:4" in p.stderr, p.stderr


def test_heredoc_run_variants(build_env, tmp_path):
    """``<<-EOF`` strips leading tabs; a heredoc given to a non-shell interpreter through a
    shebang (``#!/bin/awk -f``) runs with that interpreter; two heredocs on one RUN
    feed two commands."""
    env = build_env
    df = (f"FROM {env.base}\n"
          f"RUN mkdir /out && echo {_nonce()} > /out/nonce && ln -sf busybox /bin/awk\n"
          "RUN <<-EOF\n"
          "\techo tabbed > /out/tabs\n"
          "\t\techo two >> /out/tabs\n"
          "\tEOF\n"
          "RUN <<EOF\n"
          "#!/bin/awk -f\n"
          'BEGIN { print "from awk" > "/out/awk" }\n'
          "EOF\n"
          "RUN cat <<A > /out/a && cat <<B > /out/b\n"
          "first\n"
          "A\n"
          "second\n"
          "B\n")
    files = build_files(env, write(tmp_path / "ctx", {"Dockerfile": df}))
    assert text(files, "tabs") == "tabbed\ntwo\n"
    assert text(files, "awk") == "from awk\n"
    assert text(files, "a") == "first\n" and text(files, "b") == "second\n"


def test_security_insecure_needs_the_entitlement(build_env, tmp_path):
    """``RUN --security=insecure`` is refused without ``--allow security.insecure``; with it
    the step has full capabilities (it can mount a tmpfs, which the sandbox forbids)."""
    env = build_env
    df = f"""\
FROM {env.base}
RUN mkdir /out /m && echo {_nonce()} > /out/nonce
RUN (if /bin/busybox mount -t tmpfs none /m 2>/dev/null; then echo mounted; else echo denied; fi) > /out/sandbox
RUN --security=insecure /bin/busybox mount -t tmpfs none /m && echo mounted > /out/insecure && /bin/busybox umount /m
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    p = env.cli("build", str(ctx))
    assert p.returncode == 1 and "security.insecure" in p.stderr, p.stderr
    files = build_files(env, ctx, allow=("security.insecure",))
    assert text(files, "sandbox") == "denied\n"
    assert text(files, "insecure") == "mounted\n"
