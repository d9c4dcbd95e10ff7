"""User and group resolution from a root's /etc/passwd and /etc/group."""

from __future__ import annotations

import os

import pytest

from mason.backends.solver.users import exec_ids, lookup_group, parse_group, parse_passwd, read_passwd, resolve_user
from mason.ir.errors import MasonError

PASSWD = """root:x:0:0:root:/root:/bin/sh
# comment
app:x:1000:1001:App:/home/app:/bin/sh
broken line
bad:x:notanumber:1:::
"""
GROUP = """root:x:0:
staff:x:50:app,bob
appgrp:x:1001:
"""


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text(PASSWD)
    (r / "etc/group").write_text(GROUP)
    return r


def test_parse():
    users = parse_passwd(PASSWD)
    assert [(u.name, u.uid, u.gid) for u in users] == [("root", 0, 0), ("app", 1000, 1001)]
    assert parse_group(GROUP)[1].members == ("app", "bob")


@pytest.mark.parametrize("spec, ids", [
    ("app", (1000, 1001)), ("app:staff", (1000, 50)), ("1000", (1000, 1000)),
    ("123:456", (123, 456)), ("app:7", (1000, 7)), ("5:staff", (5, 50)), ("root", (0, 0)),
])
def test_resolve(root, spec, ids):
    assert resolve_user(str(root), spec) == ids


def test_unknown_user_and_group(root):
    with pytest.raises(MasonError) as e:
        resolve_user(str(root), "nobody")
    assert e.value.message == "unable to find user nobody: no matching entries in passwd file"
    with pytest.raises(MasonError) as e:
        resolve_user(str(root), "app:wheel")
    assert e.value.message == "unable to find group wheel: no matching entries in group file"


def test_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MasonError, match="unable to find user app: no matching entries in passwd file"):
        resolve_user(str(tmp_path / "empty"), "app")
    assert resolve_user(str(tmp_path / "empty"), "10:20") == (10, 20)


def test_passwd_link_outside_is_not_read(tmp_path):
    (tmp_path / "host").mkdir()
    (tmp_path / "host/passwd").write_text("evil:x:666:666::/:/bin/sh\n")
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    os.symlink(str(tmp_path / "host/passwd"), r / "etc/passwd")
    os.symlink("/proc/self/root" + str(tmp_path / "host/passwd"), r / "etc/group")
    assert read_passwd(str(r)) == []
    with pytest.raises(MasonError, match="unable to find user evil"):
        resolve_user(str(r), "evil")
    with pytest.raises(MasonError, match="unable to find group evil"):
        lookup_group(str(r), "evil")


def test_passwd_link_inside_is_followed(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "real").write_text(PASSWD)
    os.symlink("/real", r / "etc/passwd")
    assert resolve_user(str(r), "app") == (1000, 1001)


def test_bad_spec(root):
    with pytest.raises(MasonError, match="empty group"):
        resolve_user(str(root), "app:")


_PW = parse_passwd("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
                   "dup:x:1000:7::/:/bin/sh\n")
_GR = parse_group("root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nother:x:1600:app\nagain:x:1000:app\n")


@pytest.mark.parametrize("spec,ids", [
    ("", (0, 0, [0, 10])),  # the default user is looked up too
    ("app", (1000, 1000, [10, 1600, 1000])),  # primary gid already listed (via 'again'): kept in place
    ("1000", (1000, 1000, [10, 1600, 1000])),  # a uid matches the first passwd entry
    ("app:other", (1000, 1600, [1600])),  # explicit group: no supplementary groups
    ("app:10", (1000, 10, [10])),
    ("app:4242", (1000, 4242, [4242])),  # a number not in the file is used as is
    ("4242", (4242, 0, [0])),
    ("7:8", (7, 8, [8])),  # both numeric: the files are not read
])
def test_exec_ids(spec, ids):
    assert exec_ids(spec, lambda: _PW, lambda: _GR) == ids


def test_exec_ids_errors_and_laziness():
    with pytest.raises(MasonError, match="unable to find user nosuch"):
        exec_ids("nosuch", lambda: _PW, lambda: _GR)
    with pytest.raises(MasonError, match="unable to find group nosuch"):
        exec_ids("app:nosuch", lambda: _PW, lambda: _GR)
    assert exec_ids("", lambda: [], lambda: []) == (0, 0, [0])  # no passwd: root, no error

    def boom():
        raise AssertionError("read")
    assert exec_ids("7:8", boom, boom) == (7, 8, [8])
