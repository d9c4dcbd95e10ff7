"""Issue 11 (suite: "secrets absent from disk/layers/history/logs in plain, base64 and hex"): a
build whose steps read a secret as a file and as an env variable, and print it, leaves no trace
of it — neither as is nor base64- or hex-encoded (how a cache record, a JSON blob or a digest
input would hold bytes) — in any file under the state root (cache database, records, logs,
history), in the exported OCI archive (layers, config, history), in ``mason logs`` or
``mason history``, or in what mason printed."""

from __future__ import annotations

import base64
import os
import tarfile

import pytest

from tests.integration.conftest import write

pytestmark = pytest.mark.integration

VALUE = b"s3cr3t-4b1d-value-9c2e"


def _forms(v: bytes) -> list[bytes]:
    return [v, base64.b64encode(v), base64.urlsafe_b64encode(v), v.hex().encode(), v.hex().upper().encode(),
            base64.b64encode(v).rstrip(b"=")]


def _hits(data: bytes) -> list[bytes]:
    return [f for f in _forms(VALUE) if f in data]


def test_secret_leaves_no_trace(build_env, tmp_path):
    env = build_env
    sfile = tmp_path / "secret.txt"
    sfile.write_bytes(VALUE)
    ctx = write(tmp_path / "c", {"Dockerfile": (
        f"FROM {env.base}\n"
        "RUN --mount=type=secret,id=s cat /run/secrets/s; echo; echo done > /f\n"
        "RUN --mount=type=secret,id=s,env=TOK sh -c 'echo \"$TOK\"; test -n \"$TOK\"'\n"
        "RUN --mount=type=secret,id=s,target=/etc/tok cp /etc/tok /dev/null && ls /etc > /etc-list\n")})
    oci = tmp_path / "out.tar"
    p = env.cli("build", "--progress=plain", "--secret", f"id=s,src={sfile}", "-t", "sec/traces:1",
                "-o", f"type=oci,dest={oci}", str(ctx))
    assert p.returncode == 0, p.stderr
    assert _hits((p.stdout + p.stderr).encode()) == []
    for dirpath, _dirs, files in os.walk(env.root):
        for f in files:
            path = os.path.join(dirpath, f)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            assert _hits(data) == [], f"secret found in {path}"
    with tarfile.open(oci) as tf:
        for m in tf.getmembers():
            if m.isfile():
                blob = tf.extractfile(m).read()  # type: ignore[union-attr]
                if blob[:2] == b"\x1f\x8b":
                    import gzip

                    blob = gzip.decompress(blob)
                assert _hits(blob) == [], f"secret found in the archive's {m.name}"
    for args in (("logs",), ("history",)):
        q = env.cli(*args)
        assert q.returncode == 0, q.stderr
        assert _hits((q.stdout + q.stderr).encode()) == [], args
        if args == ("logs",):
            assert "****" in q.stdout + q.stderr, q.stdout  # the printed secret, masked
