"""The result store: an sqlite database under the state directory mapping cache keys to
results (committed snapshots and layer blobs in containerd), with creation time, last use and
size — the cache of issue 6, in use from the first build.

``<root>/solver/cache.db`` (WAL mode, a busy timeout: several mason processes share it) holds

* ``results``: output key (``<cache key>/<output index>``) → :class:`Result` JSON, the
  snapshot name, created / last used (unix seconds), size in bytes (0 = not measured yet),
  a description (the step's name, for ``mason du``);
* ``manifests``: per build target (see :mod:`.explain`), the last few builds' *key
  manifests* — per step its own hash, its inputs' keys, the checksums per selected path, hashed
  env values — zlib-compressed JSON, for ``mason build --explain``;

Layer blobs computed lazily from snapshot pairs are remembered by the image writer as labels
on the upper snapshot (``mason.backends.exporters.layer``), so they need no table here.

A record is written only after its snapshot is committed and protected in containerd (the
cache lease), so a crash between the two leaves an unreferenced snapshot for GC, never a record
pointing at nothing; a record whose snapshot has vanished anyway is dropped on lookup.
:meth:`ResultStore.claim` is a per-key inter-process lock (``flock`` on a file under
``<root>/solver/locks``): a vertex is computed under it, so two builds sharing a step run it
once — the second waits and then finds the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mason.backends.solver.results import Result
from mason.ir.urls import redact_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS results_snapshot ON results(snapshot);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    created REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS manifests_target ON manifests(target, id);
"""
MANIFESTS_KEPT = 8  # per target


class Cancelled(Exception):
    """The build was cancelled while waiting for another process's claim."""


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    result: Result
    created: float
    last_used: float
    size: int
    description: str


class ResultStore:
    """Thread-safe (one connection behind a lock) and process-safe (sqlite WAL + flock)."""

    def __init__(self, root: str | Path):
        self.dir = Path(root) / "solver"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "locks").mkdir(exist_ok=True)
        self.path = self.dir / "cache.db"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- results ----------------------------------------------------------------------------

    def get(self, key: str, *, touch: bool = True) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, result, created, last_used, size, description FROM results WHERE key = ?",
                (key,)).fetchone()
            if row is None:
                return None
            if touch:
                self._db.execute("UPDATE results SET last_used = ? WHERE key = ?", (time.time(), key))
        return Record(row[0], Result.from_json(row[1]), row[2], row[3], row[4], row[5])

    def put(self, key: str, result: Result, *, description: str = "", size: int = 0) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO results(key, result, snapshot, created, last_used, size, description) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET result = excluded.result, "
                "snapshot = excluded.snapshot, last_used = excluded.last_used, size = excluded.size, "
                "description = excluded.description",
                (key, result.to_json(), result.snapshot, now, now, size, redact_text(description)))

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM results WHERE key = ?", (key,))

    def delete_many(self, keys) -> None:
        keys = list(keys)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in keys])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update_size(self, key: str, size: int) -> None:
        with self._lock:
            self._db.execute("UPDATE results SET size = ? WHERE key = ?", (int(size), key))

    def set_last_used(self, key: str, t: float) -> None:
        with self._lock:
            self._db.execute("UPDATE results SET last_used = ? WHERE key = ?", (float(t), key))

    def records(self) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, result, created, last_used, size, description FROM results ORDER BY last_used"
            ).fetchall()
        return [Record(r[0], Result.from_json(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    # -- key manifests (--explain) ----------------------------------------------------------

    def last_manifest(self, target: str) -> tuple[int, str, bytes] | None:
        """(id, fingerprint, data) of the newest manifest of ``target``."""
        with self._lock:
            row = self._db.execute("SELECT id, fingerprint, data FROM manifests WHERE target = ? "
                                   "ORDER BY id DESC LIMIT 1", (target,)).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def manifests(self, target: str, limit: int = 2) -> list[tuple[int, bytes]]:
        """The newest ``limit`` manifests of ``target`` (newest first)."""
        with self._lock:
            rows = self._db.execute("SELECT id, data FROM manifests WHERE target = ? ORDER BY id DESC LIMIT ?",
                                    (target, limit)).fetchall()
        return [(r[0], bytes(r[1])) for r in rows]

    def put_manifest(self, target: str, fingerprint: str, data: bytes) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("INSERT INTO manifests(target, created, fingerprint, data) VALUES (?, ?, ?, ?)",
                                       (target, time.time(), fingerprint, data))
                self._db.execute("DELETE FROM manifests WHERE target = ? AND id NOT IN (SELECT id FROM manifests "
                                 "WHERE target = ? ORDER BY id DESC LIMIT ?)", (target, target, MANIFESTS_KEPT))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(cur.lastrowid)

    # -- inter-process claims ---------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, key: str, cancelled: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold the lock of ``key`` across processes and threads: compute a vertex under it so
        that concurrent builds run a shared step once. Waits while another holder runs it;
        gives up (raising :class:`Cancelled`) when ``cancelled()`` turns true meanwhile."""
        path = self.dir / "locks" / key.replace(":", "-").replace("/", "-")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancelled is not None and cancelled():
                        raise Cancelled(key) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock
