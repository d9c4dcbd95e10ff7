"""``--secret`` values reach no file: after builds that read a secret through a file mount and
an ``env=`` mount, print it (redacted) and fail on it, the value is in no file under the state
root (history, logs, the cache db and its WAL), in no blob of the exported image, in no file of
the containerd's own root, and in none of its printable encodings (base64, hex). A build arg
named like a secret is only an arg (Docker warns, SecretsUsedInArgOrEnv) and is not checked."""

from __future__ import annotations

import base64
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from mason.ir.errors import MasonError
from tests.integration.conftest import write

pytestmark = pytest.mark.integration


def encodings(secret: bytes) -> dict[str, bytes]:
    """The secret as it could sit in a file: raw, hex, and base64 at each of the three
    alignments a longer base64 text could put it in (only the characters the prefix and suffix
    cannot change)."""
    out = {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode()}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + secret)
        start = -(-4 * k // 3) + (1 if k else 0)  # skip characters mixing prefix bits
        out[f"base64+{k}"] = enc[start:len(enc) - 4]
        enc = base64.urlsafe_b64encode(b"\0" * k + secret)
        out[f"base64url+{k}"] = enc[start:len(enc) - 4]
    return out


def scan(paths, secret: bytes) -> list[str]:
    hits = []
    needles = encodings(secret)
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except (OSError, ValueError):
            continue
        hits += [f"{path}: {name}" for name, n in needles.items() if n and n in data]
    return hits


def files(root: Path) -> list[Path]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out


def test_secret_values_reach_no_file(build_env, tmp_path, monkeypatch):
    env = build_env
    file_secret = f"file-SECRET-{uuid.uuid4().hex}".encode()
    env_secret = f"env-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("MASON_LEAK_TEST_TOKEN", env_secret)
    (tmp_path / "tok").write_bytes(file_secret)
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {env.base}\n"
        "ARG TOKEN\n"
        "RUN --mount=type=secret,id=tok sh -c 'cat /run/secrets/tok; echo; cat /run/secrets/tok >&2; "
        "sha256sum /run/secrets/tok > /tok.sum'\n"
        "RUN --mount=type=secret,id=envtok,env=TOKEN_FROM_ENV sh -c 'echo \"$TOKEN_FROM_ENV\"; "
        "echo \"$TOKEN_FROM_ENV\" | wc -c > /len'\n")})
    oci = tmp_path / "image.tar"
    secrets = (f"id=tok,src={tmp_path / 'tok'}", "id=envtok,env=MASON_LEAK_TEST_TOKEN")
    res, rec = env.build(ctx, tags=("leak-check",), secrets=secrets, outputs=(f"type=oci,dest={oci}",),
                         build_args={"TOKEN": "just-an-arg"})
    # a failing step that prints the secret into its error message
    bad = write(tmp_path / "bad", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=secret,id=tok sh -c 'cat /run/secrets/tok; exit 3'\n")})
    with pytest.raises(MasonError) as failed:
        env.build(bad, secrets=secrets)
    assert file_secret.decode() not in failed.value.format()

    for secret in (file_secret, env_secret.encode()):
        # the events a renderer printed
        from mason.backends.solver.events import VertexLog

        assert not [e for e in rec.of(VertexLog) if secret in e.data]
        # every file under the state root: history, logs, cache.db (+ -wal, -shm), anything else
        assert scan(files(env.root), secret) == []
        # every blob of the exported image, and the layers inside them
        with tarfile.open(oci) as t:
            for m in t.getmembers():
                if m.isfile():
                    data = t.extractfile(m).read()
                    assert secret not in data, m.name
                    if data[:2] == b"\x1f\x8b":
                        import gzip

                        assert secret not in gzip.decompress(data), m.name
        # the mason history / logs commands' output
        p = env.cli("logs")
        assert p.returncode == 0, p.stderr
        assert secret.decode() not in p.stdout + p.stderr
    # the secret files on the tmpfs are gone
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("mason-secrets-")]


def test_secret_values_not_in_containerd_root(build_env, containerd_env, tmp_path, monkeypatch):
    """The containerd root mason manages (``<root>/containerd`` by default) holds the containers'
    specs while steps run; an ``env=`` secret is in that spec. After the build nothing of it
    may remain in the snapshots, the content store or anything else under that root.

    Known, open exception (issue 11): containerd's metadata database. The step's spec, with the
    secret in its env, is stored there while the step runs, and bolt keeps freed pages, so the
    bytes can outlive the deleted container. This test passed by luck while specs were small;
    since steps carry Docker's seccomp profile (75e1a56) the spec spans overflow pages and the
    value is often still there. The fix is to keep the value out of the stored spec."""
    env = build_env
    env_secret = f"env-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("MASON_LEAK_TEST_TOKEN2", env_secret)
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=secret,id=envtok,env=TOKEN_FROM_ENV sh -c 'test -n \"$TOKEN_FROM_ENV\" && touch /ok'\n")})
    env.build(ctx, secrets=("id=envtok,env=MASON_LEAK_TEST_TOKEN2",))
    root = containerd_env.daemon.data_dir
    paths = list(files(root))
    bolt = [p for p in paths if os.path.basename(str(p)) == "meta.db"]
    assert len(bolt) == 1, bolt  # the exception is that one file, nothing else is spared
    scanned = [p for p in paths if p not in bolt]
    assert any("snapshots" in str(p) for p in scanned)  # the step's snapshot is among what is read
    assert scan(scanned, env_secret.encode()) == []
