"""Several outputs of one build result at once, through the dispatcher the driver calls."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mason.backends.exporters.export import run_outputs
from mason.backends.exporters.outputs import check_outputs, parse_outputs
from tests.backends.exporters.conftest import HELLO
from tests.fixtures.registry import skopeo

pytestmark = pytest.mark.integration


def test_several_outputs_from_one_image(containerd_env, chain, registry, tmp_path: Path) -> None:
    c = containerd_env.client
    pushed = registry.ref("mason-test/multi:1")
    outs = parse_outputs([f"type=oci,dest={tmp_path}/o.tar", f"type=docker,dest={tmp_path}/d.tar",
                          str(tmp_path / "rootfs"), f"type=tar,dest={tmp_path}/r.tar",
                          f"type=image,name={pushed},push=true"], ["mason-test/multi:local"])
    check_outputs(outs)
    results = run_outputs(c, outs, chain=chain.sources, config=chain.config(), snapshot=chain.top,
                          source_date_epoch=1_600_000_000)
    image = results[0].image
    assert image is not None and all(r.image is image for r in results if r.spec.needs_image)
    assert c.get_image(pushed).target.digest == image.manifest_digest
    assert results[4].pushed[0].digest == image.manifest_digest
    assert json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{pushed}"))["Digest"] == image.manifest_digest
    assert json.loads(skopeo("inspect", f"oci-archive:{tmp_path}/o.tar"))["Digest"] == image.manifest_digest
    assert (tmp_path / "rootfs" / "hello.txt").read_bytes() == HELLO

    # the docker archive's layers are real: copy it to a layout and unpack it with umoci
    skopeo("copy", f"docker-archive:{tmp_path}/d.tar", f"oci:{tmp_path}/layout:t")
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path}/layout:t", str(tmp_path / "bundle")], check=True,
                   capture_output=True, timeout=120)
    assert (tmp_path / "bundle" / "rootfs" / "hello.txt").read_bytes() == HELLO
    assert not (tmp_path / "bundle" / "rootfs" / "etc" / "group").exists()


def test_loading_the_exporters_looks_up_no_library():
    """``ctypes.util.find_library`` runs ``ldconfig -p`` in a child process: the exporters do it
    on the first mount, not when a build that mounts nothing loads them (issue 17)."""
    import subprocess
    import sys

    child = (
        "import ctypes.util\n"
        "calls = []\n"
        "real = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: calls.append(name) or real(name)\n"
        "import mason.backends.exporters.export\n"
        "from mason.backends.exporters import _mount\n"
        "before = list(calls)\n"
        "from mason.backends import libc\n"
        "lib = libc.libc()\n"
        "print(before, calls, libc.libc() is lib, _mount.libc is libc)\n")
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["[]", "['c']", "True", "True"], p.stdout
