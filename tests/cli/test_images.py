"""``mason images`` / ``rmi`` / ``load`` against the session's containerd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mason.cli.main import main
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_load_list_and_remove(containerd_env, busybox_layout, tmp_path: Path, capsys) -> None:
    addr = ("--containerd-address", containerd_env.address)
    archive = tmp_path / "bb.tar"
    skopeo("copy", f"oci:{busybox_layout.layout}:latest", f"oci-archive:{archive}:mason-cli/bb:1")
    rc, out, err = run(capsys, "load", *addr, "-i", str(archive))
    assert (rc, err) == (0, "")
    assert out == f"Loaded image: mason-cli/bb:1 ({busybox_layout.manifest_digest})\n"

    rc, out, _ = run(capsys, "images", *addr)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DIGEST", "SIZE"]
    row = next(line.split() for line in lines if line.startswith("mason-cli/bb:1 "))
    assert row[1] == busybox_layout.manifest_digest[:19] and row[2].endswith("MB")
    rc, out, _ = run(capsys, "images", *addr, "--no-trunc")
    assert busybox_layout.manifest_digest in out
    rc, out, _ = run(capsys, "images", *addr, "-q")
    assert "mason-cli/bb:1" in out.splitlines()

    record = containerd_env.client.get_image("docker.io/mason-cli/bb:1")
    assert json.loads(containerd_env.client.read_blob(record.target.digest))["layers"]

    rc, out, _ = run(capsys, "rmi", *addr, "mason-cli/bb:1")
    assert (rc, out) == (0, "Untagged: mason-cli/bb:1\n")
    rc, out, _ = run(capsys, "images", *addr, "-q")
    assert "mason-cli/bb:1" not in out.splitlines()
    rc, out, err = run(capsys, "rmi", *addr, "mason-cli/bb:1")
    assert (rc, err) == (1, "error: no such image: mason-cli/bb:1\n")


def test_load_errors(containerd_env, tmp_path: Path, capsys) -> None:
    addr = ("--containerd-address", containerd_env.address)
    rc, _, err = run(capsys, "load", *addr, "-i", str(tmp_path / "nope.tar"))
    assert (rc, err) == (1, f"error: cannot read archive {tmp_path / 'nope.tar'}: No such file or directory\n")
