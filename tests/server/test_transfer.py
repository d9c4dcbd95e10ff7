"""fsutil's diff-copy (mason.server.transfer) between a sender and a receiver in one process:
what crosses on a first and on a warm transfer, and that a hostile listing cannot write
outside the receiver's directory."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import pytest

from mason.backends.sources.local import select_local
from mason.ir.errors import MasonError
from mason.protos import buildkit
from mason.server import transfer


class _End:
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def send(self, p):
        self.outbox.put(p.SerializeToString())

    def recv(self):
        raw = self.inbox.get(timeout=30)
        return None if raw is None else buildkit.load().fsutil.Packet.FromString(raw)


def _pair():
    a, b = queue.Queue(), queue.Queue()
    return _End(a, b), _End(b, a)


def sync(src: Path, dest: Path):
    pb = buildkit.load()
    snd, rcv = _pair()
    out: dict = {}

    def sender():
        try:
            root, entries = select_local(src)
            out["sent"] = transfer.send_dir(snd, pb, str(root), entries)
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["error"] = e
        snd.outbox.put(None)

    t = threading.Thread(target=sender)
    t.start()
    try:
        got = transfer.receive_dir(rcv, pb, str(dest))
    finally:
        t.join(30)
    assert "error" not in out, out.get("error")
    return got


def tree(d: Path) -> dict[str, bytes | str]:
    res: dict[str, bytes | str] = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        res[rel] = ("->" + os.readlink(p)) if p.is_symlink() else ("dir" if p.is_dir() else p.read_bytes())
    return res


def test_first_then_warm_transfer(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(3 << 20))
    (src / "link").symlink_to("a.txt")
    os.chmod(src / "a.txt", 0o640)
    first = sync(src, dest)
    assert tree(dest) == tree(src)
    assert (first.requested, first.data_bytes) == (2, 5 + (3 << 20))
    assert (dest / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (dest / "a.txt").stat().st_mtime_ns == (src / "a.txt").stat().st_mtime_ns

    warm = sync(src, dest)
    assert (warm.requested, warm.data_bytes) == (0, 0)

    (src / "a.txt").write_text("alpha, edited")
    (src / "sub" / "gone").write_text("x")
    added = sync(src, dest)
    assert (added.requested, added.data_bytes) == (2, len("alpha, edited") + 1)
    (src / "sub" / "gone").unlink()
    removed = sync(src, dest)
    assert (removed.requested, removed.data_bytes) == (0, 0)
    assert not (dest / "sub" / "gone").exists()
    assert tree(dest) == tree(src)


def test_edit_sends_only_the_changed_file(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(1000))
    sync(src, dest)
    (src / "f7").write_bytes(b"new content")
    edit = sync(src, dest)
    assert (edit.requested, edit.data_bytes) == (1, len(b"new content"))
    assert (dest / "f7").read_bytes() == b"new content"


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/../../x", "", "sub/./x"])
def test_hostile_paths_are_refused(tmp_path, bad):
    pb = buildkit.load()
    dest = tmp_path / "dest"
    snd, rcv = _pair()
    snd.send(pb.fsutil.Packet(type=transfer.STAT, stat=pb.stat.Stat(path=bad, mode=0o644, size=1)))
    snd.send(pb.fsutil.Packet(type=transfer.STAT))
    with pytest.raises(MasonError, match="invalid path"):
        transfer.receive_dir(rcv, pb, str(dest))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()


def test_no_write_through_a_symlinked_directory(tmp_path):
    pb = buildkit.load()
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    snd, rcv = _pair()
    snd.send(pb.fsutil.Packet(type=transfer.STAT, stat=pb.stat.Stat(path="d", mode=transfer.GO_SYMLINK | 0o777,
                                                                    linkname=str(outside))))
    snd.send(pb.fsutil.Packet(type=transfer.STAT, stat=pb.stat.Stat(path="d/f", mode=0o644, size=1)))
    snd.send(pb.fsutil.Packet(type=transfer.STAT))
    with pytest.raises(MasonError, match="before .or without. its directory"):
        transfer.receive_dir(rcv, pb, str(dest))
    assert list(outside.iterdir()) == []
