"""``mason load`` of crafted archives (issue 11; the archive side of CVE-2024-23650's
"malformed input ends in a crash"): every archive error is one clear line and exit code 1 —
never an internal error — and nothing outside the archive is read. Hand-made cases for each
kind of damage (a blob that is a symlink, a hardlink, duplicated, truncated, oversized or
mistyped entries), then hypothesis mutating a valid archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness.conftest import assert_user_error, run_main

pytestmark = pytest.mark.integration


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 6
        t.addfile(ti, io.BytesIO(b"hello\n"))
    return buf.getvalue()


LAYER = _layer()
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [_digest(LAYER)]}}).encode()


def _manifest(config: bytes = CONFIG, layer: bytes = LAYER) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": _digest(config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": _digest(layer), "size": len(layer)}]}).encode()


MANIFEST = _manifest()


def _index(manifest: bytes = MANIFEST, **entry) -> bytes:
    e = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
         "size": len(manifest), "annotations": {"io.containerd.image.name": "docker.io/mason-test/crafted:1"}}
    e.update(entry)
    return json.dumps({"schemaVersion": 2, "manifests": [e]}).encode()


def _blob(b: bytes) -> str:
    return "blobs/sha256/" + hashlib.sha256(b).hexdigest()


def members() -> list[tuple]:
    """A valid OCI archive as (name, kind, data-or-linkname) entries."""
    out = [("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", _index()),
           (_blob(MANIFEST), "file", MANIFEST), (_blob(CONFIG), "file", CONFIG), (_blob(LAYER), "file", LAYER)]
    return out


def tar_of(entries: list[tuple]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                ti.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
    return buf.getvalue()


def _replace(entries, name, kind, data):
    return [(n, kind, data) if n == name else (n, k, d) for n, k, d in entries]


def _cases() -> dict[str, bytes]:
    good = members()
    L, C, M = _blob(LAYER), _blob(CONFIG), _blob(MANIFEST)
    return {
        "layer blob a symlink to a missing member": tar_of(_replace(good, L, "sym", "nosuch")),
        "layer blob a symlink to a host file": tar_of(_replace(good, L, "sym", "/etc/passwd")),
        "layer blob a symlink climbing out": tar_of(_replace(good, L, "sym", "../../../../etc/passwd")),
        "manifest blob a symlink to a missing member": tar_of(_replace(good, M, "sym", "/etc/hostname")),
        "index.json a symlink to a host file": tar_of(_replace(good, "index.json", "sym", "/etc/passwd")),
        "config blob a hardlink to a missing member": tar_of(_replace(good, C, "link", "nosuch")),
        "layer blob a hardlink to another blob": tar_of(_replace(good, L, "link", C)),
        "manifest blob a symlink to itself": tar_of(_replace(good, M, "sym", M.rsplit("/", 1)[1])),
        "duplicated layer, second one wrong": tar_of(good + [(L, "file", b"not the layer")]),
        "duplicated index.json, second one garbage": tar_of(good + [("index.json", "file", b"[1,2")]),
        "truncated in a blob": tar_of(good)[:2048 + 512 * 7],
        "truncated in a header": tar_of(good)[:512 * 3 + 100],
        "oversized layer size": tar_of(_replace(good, M, "file", MANIFEST.replace(
            f'"size": {len(LAYER)}'.encode(), b'"size": 99999999999999999999'))),
        "negative size": tar_of(_replace(good, "index.json", "file", _index(size=-1))),
        "size a string": tar_of(_replace(good, "index.json", "file", _index(size="big"))),
        "digest a number": tar_of(_replace(good, "index.json", "file", _index(digest=7))),
        "digest with a path": tar_of(_replace(good, "index.json", "file", _index(digest="sha256:../../x"))),
        "manifests not a list": tar_of(_replace(good, "index.json", "file", b'{"manifests": 3}')),
        "index.json a list": tar_of(_replace(good, "index.json", "file", b"[]")),
        "manifest entry a string": tar_of(_replace(good, "index.json", "file", b'{"manifests": ["x"]}')),
        "manifest not an object": tar_of(_replace(good, M, "file", b"[]")),
        "manifest without config": tar_of(_replace(good, M, "file", b'{"schemaVersion": 2, "layers": []}')),
        "image name garbage": tar_of(_replace(good, "index.json", "file",
                                              _index(annotations={"io.containerd.image.name": "UPPER CASE::"}))),
        "docker manifest.json entries not objects": tar_of([("manifest.json", "file", b"[1]")]),
        "docker layer a symlink to a host file": tar_of([
            ("manifest.json", "file", json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]).encode()),
            ("c.json", "file", CONFIG), ("l.tar", "sym", "/etc/passwd")]),
        "docker config missing": tar_of([
            ("manifest.json", "file", json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]).encode())]),
        "docker config not JSON": tar_of([
            ("manifest.json", "file", json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]).encode()),
            ("c.json", "file", b"\xff")]),
    }


CASES = _cases()


def _load(containerd_env, tmp_path: Path, data: bytes, capsys):
    p = tmp_path / "in.tar"
    p.write_bytes(data)
    return run_main(["load", "--containerd-address", containerd_env.address, "-i", str(p)], capsys)


def test_the_valid_archive_loads(containerd_env, tmp_path, capsys):
    r = _load(containerd_env, tmp_path, tar_of(members()), capsys)
    assert r.rc == 0, r.err
    assert "docker.io/mason-test/crafted:1" in r.out or "mason-test/crafted:1" in r.out


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_archive_is_a_clear_error(containerd_env, tmp_path, capsys, name):
    r = _load(containerd_env, tmp_path, CASES[name], capsys)
    assert_user_error(r)


_KINDS = st.sampled_from(["truncate", "sym", "link", "dup", "json"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mason_load(containerd_env, tmp_path, capsys, data):
    entries = members()
    kind = data.draw(_KINDS)
    names = [n for n, _, _ in entries]
    target = data.draw(st.sampled_from(names))
    if kind == "truncate":
        raw = tar_of(entries)
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        if kind in ("sym", "link"):
            link = data.draw(st.sampled_from(names + ["/etc/passwd", "../x", "", ".", "/", target]))
            entries = _replace(entries, target, kind, link)
        elif kind == "dup":
            entries = entries + [(target, "file", data.draw(st.binary(max_size=64)))]
        else:
            value = data.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                           lambda s: st.lists(s, max_size=3) | st.dictionaries(st.text(max_size=8), s, max_size=3),
                                           max_leaves=6))
            field = data.draw(st.sampled_from(["mediaType", "digest", "size", "annotations", "manifests"]))
            index = json.loads(_index())
            if field == "manifests":
                index["manifests"] = value
            else:
                index["manifests"][0][field] = value
            entries = _replace(entries, "index.json", "file", json.dumps(index).encode())
        raw = tar_of(entries)
    r = _load(containerd_env, tmp_path, raw, capsys)
    if r.rc != 0:
        assert_user_error(r)
