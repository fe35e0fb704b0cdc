"""The one owner of SQLite connections: setup, per-thread readers, one serialised writer."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import sqlite_vec

from .disk import full_error
from .errors import StartupError
from .migrations import migrate

BUSY_TIMEOUT_MS = 10_000
# Statements a connection keeps prepared (Python's default: 128). Kept statements hold the connection's
# lookaside, SQLite's fast allocator for small objects: past about ten of them, the per-row allocations of a
# large render go to malloc and its lock instead (view-all of 100,000 photos from nothing: 19 -> 26 ms).
# Preparing again costs microseconds.
PREPARED_STATEMENTS = 8
# For all connections together (one per HTTP worker, each with a page cache of up to 2 MB): past it SQLite
# reuses cached pages instead of growing. 40 MiB less at peak with 16 workers reading 100,000 images.
SQLITE_HEAP_BYTES = 16 << 20
SQLITE_FULL = 13
# The areas migration 0005 keeps a version of (bumped by triggers): what each cached listing depends on.
LISTING_AREAS = ("albums", "library", "objects", "people")

log = logging.getLogger(__name__)


def is_disk_full(error: Exception) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == SQLITE_FULL) or "disk is full" in str(error)


def sqlite_module(stdlib: ModuleType = sqlite3) -> ModuleType:
    """The stdlib sqlite3 when it can load extensions, else sqlean (a drop-in built with that enabled)."""
    if hasattr(stdlib.Connection, "enable_load_extension"):
        return stdlib
    import sqlean

    return sqlean


def connect(path: Path | str, module: ModuleType | None = None):
    """Open a connection the way every connection is opened: pragmas, then sqlite-vec, then lock extensions."""
    module = module or sqlite_module()
    conn = module.connect(
        str(path), isolation_level=None, check_same_thread=False, cached_statements=PREPARED_STATEMENTS
    )
    conn.row_factory = module.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA soft_heap_limit = {SQLITE_HEAP_BYTES}")
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)
    return conn


class Database:
    """Reads go to a connection per thread; writes go through `write()`, one transaction at a time."""

    def __init__(self, path: Path | str, module: ModuleType | None = None):
        self.path = Path(path)
        self.module = module or sqlite_module()
        try:
            self._writer = connect(self.path, self.module)
            migrate(self._writer)
        except self.module.DatabaseError as error:
            raise StartupError(
                f"the database {self.path} cannot be used ({error}): restore a backup (appliance restore FILE),"
                " or move the file away to start with an empty one"
            ) from None
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list = []
        self._readers_lock = threading.Lock()
        # Bumped by every committed write: readers compare it to know a cached answer is stale.
        self.generation = 0

    @property
    def errors(self):
        """The driver's exception classes (sqlite3 or sqlean), for callers that catch IntegrityError."""
        return self.module

    def read(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self.module)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def snapshot(self) -> Iterator:
        """A read transaction, for answers built from several queries that must agree. Inside one already (a
        cached answer reads its versions and renders in one), it is that one."""
        conn = self.read()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def write(self, durable: bool = True) -> Iterator:
        """One write transaction; any exception rolls it back and propagates.

        durable: fsync at commit, so what a client was told survives a power cut. Work that is redone
        anyway when lost (an analysis result, whose queue item stays queued with it) can skip that.
        A full disk, at any statement or at COMMIT, leaves as DiskFull (507) with nothing changed.
        """
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._roll_back()  # also after a failed COMMIT, which leaves the transaction open
                    raise
            except self.module.Error as error:
                if is_disk_full(error):
                    raise full_error(self.path.parent) from error
                raise
            self.generation += 1

    def _roll_back(self) -> None:
        """End the failed transaction; a connection that cannot even roll back is replaced."""
        try:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
        except self.module.Error:
            log.exception("rollback failed; reopening the database's write connection")
            self._writer.close()
            self._writer = connect(self.path, self.module)

    def listing_versions(self, areas: tuple[str, ...]) -> tuple[int, ...]:
        """The areas' versions, in the reading thread's transaction when one is open."""
        marks = ",".join("?" * len(areas))
        rows = self.read().execute(f"SELECT version FROM listing_versions WHERE area IN ({marks}) ORDER BY area", areas)
        return tuple(row[0] for row in rows)

    def versions(self) -> dict[str, str]:
        sqlite_version, vec_version = self.read().execute("SELECT sqlite_version(), vec_version()").fetchone()
        return {"sqlite": sqlite_version, "sqlite_vec": vec_version, "driver": self.module.__name__}

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()
        with self._write_lock:
            self._writer.close()
