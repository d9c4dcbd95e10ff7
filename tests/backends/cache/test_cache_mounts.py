"""Restoring a cache mount layer (mason.backends.cache.mounts.restore_dir): a good archive
unpacks with owners and modes; an archive that reaches outside its directory, is truncated or
is not an archive at all is one MasonError and leaves nothing behind; fuzzed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from mason.backends.cache.mounts import _tar_dir, content_size, restore_dir
from mason.ir.errors import MasonError

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = kind, link, mode
    return ti


def chunks(data: bytes, n: int = 7):
    for i in range(0, len(data), n):
        yield data[i:i + n]


def test_a_directory_round_trips_with_owners(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "n").write_text("41\n")
    (src / "sub" / "f").write_bytes(b"x" * 3000)
    os.symlink("n", src / "link")
    os.chown(src / "sub" / "f", 1234, 5678)
    os.chmod(src / "n", 0o600)
    buf = io.BytesIO()
    _tar_dir(str(src), buf, None)
    assert content_size(str(src)) == 3 + 3000
    for mt, data in ((GZ, gzip.compress(buf.getvalue())), (ZSTD, zstandard.ZstdCompressor().compress(buf.getvalue()))):
        dest = tmp_path / mt.rsplit("+", 1)[1]
        restore_dir(chunks(data, 100), mt, str(dest))
        assert (dest / "n").read_text() == "41\n"
        assert os.readlink(dest / "link") == "n"
        st_ = os.stat(dest / "sub" / "f")
        assert (st_.st_uid, st_.st_gid, st_.st_size) == (1234, 5678, 3000)
        assert os.stat(dest / "n").st_mode & 0o777 == 0o600


@pytest.mark.parametrize("members", [
    [(entry("../escape"), b"x")],
    [(entry("a/../../escape"), b"x")],
    [(entry("l", tarfile.SYMTYPE, "/etc"), None), (entry("l/passwd"), b"x")],
    [(entry("l", tarfile.SYMTYPE, "../.."), None), (entry("l/x"), b"x")],
    [(entry("h", tarfile.LNKTYPE, "../outside"), None)],
], ids=["dotdot", "inner-dotdot", "abs-symlink-write", "rel-symlink-write", "hardlink-out"])
def test_an_archive_reaching_outside_is_refused_and_nothing_is_left(tmp_path, members):
    dest = tmp_path / "d"
    with pytest.raises(MasonError):
        restore_dir(iter([gzip.compress(archive(members))]), GZ, str(dest))
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == []


def test_an_absolute_name_lands_inside(tmp_path):
    dest = tmp_path / "d"
    restore_dir(iter([gzip.compress(archive([(entry("/abs/file"), b"x")]))]), GZ, str(dest))
    assert (dest / "abs" / "file").read_bytes() == b"x"
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_truncated_and_garbage_archives_are_errors(tmp_path):
    good = gzip.compress(archive([(entry("f"), b"y" * 5000)]))
    for i, data in enumerate([good[: len(good) // 2], b"not an archive", b""]):
        dest = tmp_path / f"d{i}"
        with pytest.raises(MasonError):
            restore_dir(iter([data]), GZ, str(dest))
        assert not dest.exists()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), compressed=st.sampled_from([GZ, ZSTD, "application/vnd.oci.image.layer.v1.tar"]))
def test_fuzz_any_bytes_restore_or_are_a_mason_error(tmp_path_factory, data, compressed):
    dest = tmp_path_factory.mktemp("fuzz") / "d"
    try:
        restore_dir(iter([data]), compressed, str(dest))
    except MasonError:
        assert not dest.exists()
