"""Run one process in a container on an overlay snapshot: the solver's exec primitive.

Per step: Containers.Create (OCI spec as JSON in an ``Any``) → Tasks.Create with the
snapshot's mounts as rootfs and FIFOs for stdout/stderr → Start → Wait → Tasks.Delete →
Containers.Delete. The FIFOs are opened non-blocking *before* Tasks.Create (the shim opens the
write side during Create) and drained by reader threads while the process runs, so a chatty
step cannot fill a pipe and stall.

Two levers measured in DESIGN.md ("containerd") and in ``bench/containerd_step_bench.py``:

* **shim grouping** — every step's spec carries the ``io.containerd.runc.v2.group``
  annotation naming one long-lived *anchor* container, so one runc v2 shim hosts them all
  instead of starting a shim per step. The anchor is a task that is created but never started
  (runc's init waits forever on its exec FIFO), on an empty snapshot.
* **background delete** — Tasks.Delete + Containers.Delete of a finished step run on a worker
  thread; the next step only needs the committed snapshot. :meth:`Executor.flush` (and
  ``close``) wait for them.

And a third: **mason mounts the rootfs** (``mount_rootfs``, the default). The step's overlay is
mounted by mason on a directory of its own (``<io_dir>/rootfs/<owner>/<container>``) and
handed to runc as an absolute ``root.path``, with no rootfs mounts in Tasks.Create; mason
unmounts it as soon as the task has exited (≈ 1 ms). Without it the shim mounts the overlay
and unmounts it only in Tasks.Delete — in the background — and mounting a snapshot as a lower
dir while it is still the upper dir of a live mount is undefined behaviour for overlayfs (the
kernel logs "lowerdir is in-use as upperdir"). So a step then has to wait for its parent's
delete right before its own Tasks.Create (:meth:`Executor.settle`, ≈ 12 ms per step measured
in ``bench/containerd_step_bench.py``). With mason's mount the snapshot is released when
:meth:`Executor.execute` returns, stubs can be removed from an unmounted upper dir, and the
settle has nothing to wait for.

Containers and tasks are always cleaned up, also when the step fails, raises or is
interrupted (Ctrl-C).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import select
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mason.backends.containerd import rootfs
from mason.backends.containerd.client import Client, ContainerdError, Mount, NotFound
from mason.backends.containerd.spec import BindMount, Process, build_spec
from mason.ir.errors import MasonError

OutputSink = Callable[[str, bytes], None]  # (stream name "stdout" | "stderr", data)

MANAGED_LABEL = "mason.managed"  # on every container mason creates (role: step | anchor)
OWNER_LABEL = "mason.owner"  # "<pid>:<start time>" of the mason process that made it
EXECUTOR_LABEL = "mason.executor"  # the Executor (one build) that made it: a daemon runs several


def _process_identity(pid: int) -> str | None:
    """``pid:starttime`` (clock ticks since boot, /proc/PID/stat field 22): survives PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def _owner_alive(owner: str) -> bool:
    try:
        pid = int(owner.split(":", 1)[0])
    except ValueError:
        return False
    return _process_identity(pid) == owner


def reap_orphans(client: Client) -> int:
    """Delete the containers, tasks, active snapshots and build leases that a mason process which
    no longer exists left behind (killed with SIGKILL, a second Ctrl-C, power loss). Returns how
    many objects went. What a dead build's lease held is left to containerd's GC."""
    n = 0
    for cid in client.list_containers([f"labels.\"{OWNER_LABEL}\""]):
        with contextlib.suppress(NotFound):
            if _owner_alive(client.container_labels(cid).get(OWNER_LABEL, "")):
                continue
            client.force_delete_task(cid)
            client.delete_container(cid)
            n += 1
    for snap in client.list_snapshots([f"labels.\"{OWNER_LABEL}\""]):
        if snap.kind != "committed" and not _owner_alive(snap.labels.get(OWNER_LABEL, "")):
            with contextlib.suppress(NotFound):
                client.remove_snapshot(snap.name)
                n += 1
    for lid, labels in client.list_leases(['labels."mason.build"']).items():
        if labels.get(OWNER_LABEL) and not _owner_alive(labels[OWNER_LABEL]):
            with contextlib.suppress(NotFound):
                client.delete_lease(lid)
                n += 1
    return n


def reap_owned(client: Client, owner: str) -> int:
    """Kill and delete the containers (tasks with all their processes) of the executor
    ``owner``: what a build could not stop itself when its containerd went away under it."""
    n = 0
    for cid in client.list_containers([f'labels."{OWNER_LABEL}"=={owner}']):
        with contextlib.suppress(NotFound):
            client.force_delete_task(cid)
            client.delete_container(cid)
            n += 1
    return n


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase


class _FifoReader(threading.Thread):
    """Drains one FIFO. Opened O_NONBLOCK before the shim opens its write side; Linux reports
    POLLHUP on a FIFO only after a writer has come and gone, so "readable and empty" = EOF."""

    def __init__(self, path: Path, name: str, sink: OutputSink | None):
        super().__init__(name=f"fifo-{name}", daemon=True)
        os.mkfifo(path, 0o600)
        self.path, self.stream, self.sink = path, name, sink
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.chunks: list[bytes] = []
        self.give_up = threading.Event()
        self.sink_error: BaseException | None = None

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        try:
            while True:
                if not poller.poll(50):
                    if self.give_up.is_set():
                        return
                    continue
                try:
                    data = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    return
                self.chunks.append(data)
                if self.sink is not None and self.sink_error is None:
                    try:
                        self.sink(self.stream, data)
                    except BaseException as e:  # noqa: BLE001 - keep draining; raised by finish()
                        self.sink_error = e
        finally:
            os.close(self.fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def finish(self, timeout: float = 5.0) -> bytes:
        self.join(timeout)
        if self.is_alive():  # no EOF seen (the shim never opened its end): stop polling
            self.give_up.set()
            self.join()
        if self.sink_error is not None:
            raise self.sink_error
        return b"".join(self.chunks)


@dataclass(eq=False)
class RunHandle:
    """What :meth:`Executor.execute` returns: the finished run's result, and the deletion of
    its container and task, which may still be running in the background.

    ``released`` tells whether nothing of the run still has its rootfs mounted (always true when
    mason mounted it: it is unmounted before ``execute`` returns); :meth:`wait_released` waits
    for that. Hand the handle to :meth:`Executor.hold` after committing the snapshot, so that
    :meth:`Executor.settle` on the committed name waits for it too."""

    result: ExecResult
    _cleanup: concurrent.futures.Future[None] | None = field(default=None, repr=False)

    @property
    def released(self) -> bool:
        return self._cleanup is None or self._cleanup.done()

    def wait_released(self) -> None:
        """Block until the run's rootfs is unmounted. Cleanup errors are not raised here; they
        are collected and raised by :meth:`Executor.flush`."""
        if self._cleanup is not None:
            concurrent.futures.wait([self._cleanup])


class Executor:
    """Runs :class:`Process` es in containers on containerd. One per build (it owns the
    anchor container of its shim group); use as a context manager or call :meth:`close`.

    The interface: :meth:`execute` (run on an active snapshot the caller prepared; returns a
    :class:`RunHandle`), :meth:`hold` / :meth:`settle` (order mounts of a committed snapshot
    after its producer's release), :meth:`run_step` (prepare → execute → commit in one call),
    :meth:`flush`, :meth:`on_close` and :meth:`close`."""

    def __init__(self, client: Client, *, io_dir: str | Path, runc_root: str | Path | None = None,
                 group_shims: bool = True, background_delete: bool = True, mount_rootfs: bool = True):
        self.client = client
        self.io_dir = Path(io_dir)
        self.io_dir.mkdir(parents=True, exist_ok=True)
        self.runc_root = str(runc_root) if runc_root is not None else None
        self.group_shims = group_shims
        self.background_delete = background_delete
        self.mount_rootfs = mount_rootfs
        self._anchor: str | None = None
        self._anchor_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[None]] = set()
        # committed snapshot -> deletion of the task that still has its overlay mounted
        self._producers: dict[str, concurrent.futures.Future[None]] = {}
        self._on_close: list[Callable[[], None]] = []
        self.cleanup_errors: list[BaseException] = []
        self.owner = _process_identity(os.getpid()) or str(os.getpid())
        self.id = uuid.uuid4().hex[:16]
        self._rootfs_base = self.io_dir / "rootfs"
        self._rootfs_dir = self._rootfs_base / self.owner.replace(":", "-")
        if mount_rootfs:
            rootfs.sweep_stale(self._rootfs_base, _owner_alive)

    @classmethod
    def for_daemon(cls, client: Client, daemon, **kw) -> "Executor":
        """An executor using a :class:`ManagedContainerd`'s runc root and FIFO directory."""
        return cls(client, io_dir=daemon.io_dir, runc_root=daemon.runc_root, **kw)

    # -- the primitive ----------------------------------------------------------------------

    def run(self, process: Process, snapshot: str, *, output: OutputSink | None = None) -> ExecResult:
        """Run ``process`` with the active snapshot ``snapshot`` as its root filesystem and wait
        for it; :meth:`execute` without the handle."""
        return self.execute(process, snapshot, output=output).result

    def execute(self, process: Process, snapshot: str, *, output: OutputSink | None = None,
                parent: str = "", rootfs_mounts: Sequence[Mount] | None = None, stdin: str = "",
                started: Callable[[str], None] | None = None) -> RunHandle:
        """Run ``process`` with the active snapshot ``snapshot`` as its root filesystem and wait
        for it to exit. The snapshot is left as it is: commit it (then :meth:`hold` it with the
        handle) or remove it (after :meth:`RunHandle.wait_released`).

        ``parent``: the committed snapshot ``snapshot`` was prepared from, settled before the
        task mounts it as a lower dir. ``rootfs_mounts``: the snapshot's mounts if the caller
        has them already (from Prepare), saving a Snapshots.Mounts call. ``stdin``: a FIFO the
        caller writes the process's standard input into (none: /dev/null); ``started`` is called
        with the container id once the task runs (to kill it from outside, e.g. on a timeout)."""
        c = self.client
        cid = f"mason-{uuid.uuid4().hex[:16]}"
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        group = self._ensure_anchor() if self.group_shims else None
        t["anchor"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mounts = list(rootfs_mounts) if rootfs_mounts is not None else c.mounts(snapshot)
        t["mounts"] = time.perf_counter() - t0
        readers: list[_FifoReader] = []
        mnt: Path | None = None
        created_container = created_task = waited = False
        exit_code = -1
        try:
            t0 = time.perf_counter()
            if self.mount_rootfs and rootfs.mountable(mounts):
                if parent:
                    self.settle(parent)  # only a shim-mounted parent can still be in use
                mnt = self._rootfs_dir / cid
                mnt.mkdir(parents=True)
                try:
                    rootfs.mount_rootfs(mounts, mnt)
                except BaseException:
                    mnt.rmdir()
                    mnt = None
                    raise
                mounts = []
            t["rootfs_mount"] = time.perf_counter() - t0
            spec = build_spec(process, cid, shim_group=group, rootfs=str(mnt) if mnt else "rootfs")
            t0 = time.perf_counter()
            c.create_container(cid, spec, runc_root=self.runc_root,
                               labels={MANAGED_LABEL: "step", OWNER_LABEL: self.owner, EXECUTOR_LABEL: self.id})
            created_container = True
            t["container_create"] = time.perf_counter() - t0
            readers = [_FifoReader(self.io_dir / f"{cid}-{s}", s, output) for s in ("stdout", "stderr")]
            for r in readers:
                r.start()
            t0 = time.perf_counter()
            if parent and mnt is None:
                self.settle(parent)  # Tasks.Create mounts the parent as a lower dir
            t["settle"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.create_task(cid, mounts, stdout=str(readers[0].path), stderr=str(readers[1].path), stdin=stdin)
            created_task = True
            t["task_create"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            wait = c.wait_task_future(cid)  # subscribe before Start so no exit is missed
            try:
                c.start_task(cid)
                t["task_start"] = time.perf_counter() - t0
                if started is not None:
                    started(cid)
                t0 = time.perf_counter()
                exit_code = _wait(c, cid, wait)
                waited = True
            finally:
                wait.cancel()
            t["wait"] = time.perf_counter() - t0
        except BaseException:
            # Failure or Ctrl-C: clean up synchronously, then re-raise.
            for r in readers:
                r.give_up.set()  # stop polling promptly if the shim never opened its end
            try:
                self._cleanup(cid, created_task, created_container, kill=not waited)
            finally:
                if mnt is not None:
                    rootfs.unmount_rootfs(mnt)
            for r in readers:
                with contextlib.suppress(BaseException):
                    r.finish(1.0)
            raise
        t0 = time.perf_counter()
        try:
            if mnt is not None:
                # The task has exited (its mount namespace with it): nothing else uses the overlay.
                rootfs.unmount_rootfs(mnt)
            t["rootfs_unmount"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = [r.finish() for r in readers]
        except BaseException:  # the unmount failed or the output sink raised
            for r in readers:
                r.give_up.set()
            self._cleanup(cid, True, True, False)
            raise
        t["io"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cleanup = None
        if self.background_delete:
            fut = self._submit(self._cleanup, cid, True, True, False)
            cleanup = fut if mnt is None else None  # with mason's mount, nothing to wait for
        else:
            self._cleanup(cid, True, True, False, raise_errors=True)
        t["delete"] = time.perf_counter() - t0
        return RunHandle(ExecResult(exit_code, out[0], out[1], t), cleanup)

    def run_step(self, process: Process, parent: str, commit_as: str | None = None, *,
                 labels: Mapping[str, str] | None = None, output: OutputSink | None = None,
                 key: str | None = None, stdin: str = "",
                 started: Callable[[str], None] | None = None) -> ExecResult:
        """Prepare an active snapshot from ``parent`` (a committed snapshot name, or "" for an
        empty root), run ``process`` on it and, if it exits 0 and ``commit_as`` is given, commit
        it under that name (with ``labels``); otherwise the active snapshot is removed."""
        c = self.client
        key = key or f"mason-active-{uuid.uuid4().hex[:16]}"
        t0 = time.perf_counter()
        mounts = c.prepare(key, parent, {OWNER_LABEL: self.owner})
        prep = time.perf_counter() - t0
        committed = False
        handle = None
        try:
            handle = self.execute(process, key, output=output, parent=parent, rootfs_mounts=mounts, stdin=stdin,
                                  started=started)
            res = handle.result
            if res.exit_code == 0 and commit_as is not None:
                t0 = time.perf_counter()
                c.commit(commit_as, key, labels)
                committed = True
                self.hold(commit_as, handle)
                res = replace(res, timings={**res.timings, "prepare": prep, "commit": time.perf_counter() - t0})
            return res
        finally:
            if not committed:
                # The failed step's task may still hold the rootfs mounted: finish its delete first.
                if handle is not None:
                    handle.wait_released()
                with contextlib.suppress(NotFound):
                    c.remove_snapshot(key)

    def hold(self, snapshot: str, handle: RunHandle) -> None:
        """Until ``handle``'s run is released, make :meth:`settle` on ``snapshot`` (the name its
        rootfs was committed as) wait for it."""
        fut = handle._cleanup  # noqa: SLF001 - our own type
        if fut is None or fut.done():
            return
        with self._lock:
            self._producers[snapshot] = fut
        fut.add_done_callback(lambda _f: self._forget(snapshot, fut))

    def _forget(self, snapshot: str, fut: concurrent.futures.Future[None]) -> None:
        with self._lock:
            if self._producers.get(snapshot) is fut:
                del self._producers[snapshot]

    def settle(self, snapshot: str) -> None:
        """Wait until no finished task still has ``snapshot`` mounted (see :meth:`hold`). Call
        this before mounting a result any other way (views, diffs, file operations); with
        mason-mounted rootfs there is nothing to wait for."""
        with self._lock:
            fut = self._producers.get(snapshot)
        if fut is not None:
            concurrent.futures.wait([fut])

    # -- cleanup ----------------------------------------------------------------------------

    def _cleanup(self, cid: str, task: bool, container: bool, kill: bool, raise_errors: bool = False) -> None:
        c = self.client
        try:
            if task:
                if kill:
                    c.force_delete_task(cid)
                else:
                    with contextlib.suppress(NotFound):
                        c.delete_task(cid)
            if container:
                with contextlib.suppress(NotFound):
                    c.delete_container(cid)
        except BaseException as e:  # noqa: BLE001 - collected, reported by flush()
            if raise_errors:
                raise
            self.cleanup_errors.append(e)
        finally:
            for s in ("stdout", "stderr"):
                with contextlib.suppress(OSError):
                    os.unlink(self.io_dir / f"{cid}-{s}")

    def _submit(self, fn, *args) -> concurrent.futures.Future[None]:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mason-delete")
        fut = self._pool.submit(fn, *args)
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(fut)

    def flush(self) -> None:
        """Wait for background deletions; raise the first error any of them hit."""
        with self._lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending)
        if self.cleanup_errors:
            err, self.cleanup_errors = self.cleanup_errors[0], []
            raise MasonError(f"cleaning up a finished container failed: {err}")

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` in :meth:`close`, after the background deletions (last registered, first
        called): for per-build resources that steps use, e.g. a pool of network namespaces."""
        with self._lock:
            self._on_close.append(fn)

    # -- the shim group's anchor ------------------------------------------------------------

    def _ensure_anchor(self) -> str:
        with self._anchor_lock:
            if self._anchor is not None:
                return self._anchor
            c = self.client
            aid = f"mason-anchor-{uuid.uuid4().hex[:12]}"
            mounts = c.prepare(aid, labels={OWNER_LABEL: self.owner})  # empty
            # Never started, so never executed: any host file will do as the program, since runc
            # only checks that it exists before waiting on the exec FIFO.
            exe = os.path.realpath(sys.executable)
            proc = Process(args=("/anchor",), mounts=(BindMount(exe, "/anchor"),), hostname="mason-anchor")
            try:
                c.create_container(aid, build_spec(proc, aid, shim_group=aid), runc_root=self.runc_root,
                                   labels={MANAGED_LABEL: "anchor", OWNER_LABEL: self.owner})
                c.create_task(aid, mounts)
            except BaseException:
                self._remove_anchor(aid)
                raise
            self._anchor = aid
            return aid

    def _remove_anchor(self, aid: str) -> None:
        c = self.client
        for step in (lambda: c.force_delete_task(aid), lambda: c.delete_container(aid),
                     lambda: c.remove_snapshot(aid)):
            with contextlib.suppress(NotFound):
                step()

    def close(self) -> None:
        """Wait for background work, run the :meth:`on_close` callbacks, then delete the anchor
        (its shim exits with it). Every part runs even if an earlier one fails; the first error
        is raised."""
        errors: list[BaseException] = []
        try:
            self.flush()
        except BaseException as e:  # noqa: BLE001 - raised below, after the rest
            errors.append(e)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            callbacks, self._on_close = self._on_close[::-1], []
        for fn in callbacks:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        if self._anchor is not None:
            aid, self._anchor = self._anchor, None
            try:
                self._remove_anchor(aid)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        with contextlib.suppress(OSError):
            self._rootfs_dir.rmdir()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait(c: Client, cid: str, fut) -> int:
    """Wait on a Tasks.Wait future in short slices so KeyboardInterrupt gets through."""
    import grpc

    while True:
        try:
            return fut.result(timeout=0.25).exit_status
        except grpc.FutureTimeoutError:
            continue
        except grpc.RpcError as e:
            raise c._error(f"wait for task {cid}", e) from None
        except grpc.FutureCancelledError:
            raise ContainerdError(f"containerd: wait for task {cid}: cancelled") from None
