"""mason's own HTTP/2 gRPC client (``mason.backends.containerd.h2rpc``) against a real
containerd: large answers over many frames and window top-ups, a request larger than the
server's first window, statuses, connections reused and concurrent calls, a restarted
containerd, and no ``grpc`` import for the calls it makes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading

import pytest

from mason.backends.containerd.client import Client, ContainerdError, NotFound, Unavailable
from mason.backends.containerd.h2rpc import encode_headers, grpc_timeout
from tests.fixtures.containerd import short_tmp_root
from tests.fixtures.procs import gone, mounts_under

pytestmark = pytest.mark.integration


def test_a_blob_larger_than_the_receive_window_top_up_reads_back(containerd_env) -> None:
    """20 MiB through Content.Read (a server stream of many DATA frames, past the 16 MiB at which
    the client gives the server its window back), and Info/List answers about it."""
    c: Client = containerd_env.client
    data = os.urandom(1 << 20) * 20
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with c.lease(expire=600) as lc:
        lc.write_blob(data)  # Content.Write streams requests: the grpc channel
        assert hashlib.sha256(lc.read_blob(digest)).hexdigest() == digest.split(":")[1]
        assert lc.content_info(digest).size == len(data)
        assert digest in lc.content_infos([digest, "sha256:" + "0" * 64])
        lc.delete_content(digest)


def test_a_request_larger_than_the_servers_first_window(containerd_env) -> None:
    """A 300 KB container spec: the request is split into frames of the server's size and waits
    for its window updates."""
    c: Client = containerd_env.client
    big = "x" * 300_000
    spec = {"ociVersion": "1.1.0", "process": {"args": ["true"], "env": [f"BIG={big}"], "cwd": "/"},
            "root": {"path": "rootfs"}}
    cid = f"mason-h2rpc-{os.getpid()}"
    c.create_container(cid, spec, labels={"mason.test": "h2rpc"})
    try:
        assert c.container_labels(cid)["mason.test"] == "h2rpc"
        assert cid in c.list_containers([f"id=={cid}"])
    finally:
        c.delete_container(cid)
    with pytest.raises(NotFound) as e:
        c.container_labels(cid)
    assert e.value.code == "NOT_FOUND"


def test_statuses_become_containerd_errors(containerd_env) -> None:
    c: Client = containerd_env.client
    with pytest.raises(NotFound, match="content info sha256:0+"):
        c.content_info("sha256:" + "0" * 64)
    with pytest.raises(ContainerdError) as e:  # a digest containerd refuses to parse
        c.content_info("not-a-digest")
    assert e.value.code == "INVALID_ARGUMENT"
    assert not isinstance(e.value, NotFound)


def test_connections_are_reused_and_calls_run_concurrently(containerd_env) -> None:
    c = Client(containerd_env.address)
    try:
        for _ in range(20):
            c.list_namespaces()
        assert len(c.channel._idle) == 1  # one call at a time: one connection, reused
        errors: list[BaseException] = []
        names: list[list[str]] = []

        def work() -> None:
            try:
                for _ in range(10):
                    names.append(c.list_namespaces())
                    c.snapshot_infos([containerd_env.busybox])
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(names) == 60 and all("mason" in n for n in names)
        assert 1 <= len(c.channel._idle) <= 6
    finally:
        c.close()
    assert c.channel._idle == []


def test_an_answer_that_comes_before_the_request_was_sent_whole(containerd_env) -> None:
    """A method containerd does not have, with a request past its first window: the status
    (trailers only, then RST_STREAM) comes while the client waits for a window. It is the
    status that is raised, and the connection it leaves is closed or in step (its HPACK table
    with the server's): the calls after it on the same channel are answered."""
    from mason.backends.containerd.h2rpc import RpcError

    c = Client(containerd_env.address)
    try:
        for _ in range(3):
            with pytest.raises(RpcError) as e:
                c.channel.unary("/containerd.services.nope.v1.Nope/Call", b"\x0a" + b"\x7f" * 300_000,
                                c._md, 10)
            assert e.value.code() == "UNIMPLEMENTED", e.value
            for _ in range(3):
                assert "mason" in c.list_namespaces()
    finally:
        c.close()


def test_a_stream_left_early_does_not_go_back_to_the_pool(containerd_env) -> None:
    c: Client = containerd_env.client
    data = os.urandom(1 << 20) * 8
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with c.lease(expire=600) as lc:
        lc.write_blob(data)
        c2 = Client(containerd_env.address)
        try:
            c2.list_namespaces()
            assert len(c2.channel._idle) == 1
            chunks = c2.read_blob_chunks(digest)
            assert next(chunks)
            assert c2.channel._idle == []  # the call holds it
            chunks.close()  # the rest of the stream unread: the connection is closed, not pooled
            assert c2.channel._idle == []
            assert hashlib.sha256(c2.read_blob(digest)).hexdigest() == digest.split(":")[1]
            assert len(c2.channel._idle) == 1
        finally:
            c2.close()
        lc.delete_content(digest)


def test_a_restarted_containerd_is_answered_on_a_new_connection(tmp_path_factory) -> None:
    """A pooled connection dies with its containerd: the next call after a restart goes out on a
    new one; a call while it is down is Unavailable."""
    from mason.backends.containerd.daemon import ManagedContainerd

    root = short_tmp_root(tmp_path_factory, "h2rpc")
    daemon = ManagedContainerd.at(root)
    pids = []
    try:
        address = daemon.ensure_running()
        pids.append(daemon.pid())
        c = Client(address)
        c.ensure_namespace()
        assert "mason" in c.list_namespaces()
        daemon.stop()
        with pytest.raises(Unavailable):
            c.list_namespaces()
        assert daemon.ensure_running() == address
        pids.append(daemon.pid())
        c.wait_ready(30)
        assert "mason" in c.list_namespaces()
        # and connections that containerd closed while idle in the pool: three of them (the
        # solver's threads leave several), the one retry goes out on a new connection
        c.list_namespaces()
        assert len(c.channel._idle) == 1
        body = c.pb.namespaces.ListNamespacesRequest().SerializeToString()
        calls = [c.channel.stream("/containerd.services.namespaces.v1.Namespaces/List", body, c._md, 10)
                 for _ in range(3)]
        assert all(next(g) for g in calls)  # three calls at once: three connections
        for g in calls:
            assert list(g) == []
        assert len(c.channel._idle) == 3
        daemon.stop()
        assert daemon.ensure_running() == address
        pids.append(daemon.pid())
        for _ in range(4):
            assert "mason" in c.list_namespaces()
        assert len(c.channel._idle) == 1
        c.close()
    finally:
        daemon.stop()
        for pid in pids:
            if pid is not None:
                assert gone(pid)
        if not mounts_under(root):
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def test_its_calls_import_no_grpc(containerd_env) -> None:
    child = ("import sys\n"
             "from mason.backends.containerd.client import Client\n"
             f"c = Client({containerd_env.address!r})\n"
             "c.ensure_namespace(); c.list_namespaces(); c.list_snapshots(); c.list_images(); c.list_leases()\n"
             "print('grpc' in sys.modules)\n"
             "c.list_tasks()\n"  # the tasks service is the generated stub's
             "print('grpc' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True"]


def test_header_block_and_timeout_encoding() -> None:
    # RFC 7541 C.2.2: literal without indexing, new name — here for the name too
    assert encode_headers([(":path", "/sample/path")]) == b"\x00\x05:path\x0c/sample/path"
    long = "v" * 200  # a length past the 7-bit prefix: 127, then 73
    assert encode_headers([("k", long)]) == b"\x00\x01k\x7f\x49" + long.encode()
    assert grpc_timeout(60) == "60000m" and grpc_timeout(0.0001) == "1m"
    assert grpc_timeout(10**7) == "10000000S"


def test_the_errors_caught_while_another_thread_imports_grpc(monkeypatch) -> None:
    """grpc half imported (in sys.modules, no RpcError yet: another thread is importing it):
    what a failed call is caught as is h2rpc's error alone, not an AttributeError."""
    import types

    from mason.backends.containerd.client import rpc_errors
    from mason.backends.containerd.h2rpc import RpcError

    monkeypatch.setitem(sys.modules, "grpc", types.ModuleType("grpc"))
    assert rpc_errors() == (RpcError,)
    fake = types.ModuleType("grpc")
    fake.RpcError = type("RpcError", (Exception,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "grpc", fake)
    assert rpc_errors() == (RpcError, fake.RpcError)  # type: ignore[attr-defined]
