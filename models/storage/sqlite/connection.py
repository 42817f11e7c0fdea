"""The SQLite file: connections and pragmas (the schema is in migrations.py), its file modes, and
what a failed write means to a caller.

WAL lets readers run beside the one writer; synchronous=FULL makes every acknowledged commit
durable against power loss as well as against a killed process.

The database holds identifiers and purchase histories: the data folder is 0700 and the database
0600 (SQLite gives its -wal and -shm files the database's mode), like the keys beside them.
A write that fails because the disk is full or failing becomes a domain error with its status
(RESOURCE_EXHAUSTED, UNAVAILABLE) and the transaction is rolled back without hiding why.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar

from models.errors import ResourceExhausted, SeenextError, Unavailable

log = logging.getLogger(__name__)

# Primary result codes (the low byte of an extended one) that are the disk's or the operator's
# fault, not the request's: the caller should retry later, and the operator must look.
_UNAVAILABLE = {
    sqlite3.SQLITE_IOERR: "the disk failed to read or write the database",
    sqlite3.SQLITE_BUSY: "another process holds the database's write lock",
    sqlite3.SQLITE_READONLY: "the database file is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
}


def storage_fault(exc: sqlite3.Error, path: Path | None = None) -> SeenextError | None:
    """The domain error a driver error stands for when the disk is full or failing; None for the
    others (a bug: they stay INTERNAL with an incident id)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    name = getattr(exc, "sqlite_errorname", "") or str(code)
    where = f" ({path})" if path is not None else ""
    if code & 0xFF == sqlite3.SQLITE_FULL:
        log.error("the database is full%s: %s (%s); writes fail until space is freed", where, exc, name)
        return ResourceExhausted(
            f"storage full: the server's disk has no room left for the database ({name}); "
            "nothing of this write was kept, retry once space is freed"
        )
    reason = _UNAVAILABLE.get(code & 0xFF)
    if reason is None:
        return None
    log.error("the database cannot be written%s: %s (%s)", where, exc, name)
    return Unavailable(f"storage unavailable: {reason} ({name}); nothing of this write was kept, retry later")


# The writer's own settings (issue 11: TrackBatch). A larger page cache keeps the events table's five
# indexes' hot pages in memory between batches instead of re-reading them from the OS (SQLite's
# default is 2 MiB), and a checkpoint every 10,000 WAL pages (~40 MiB; SQLite's default is 1,000)
# writes each hot index page back to the main file once per many batches instead of once per two or
# three. Neither touches durability: every commit still appends to the WAL and fsyncs it
# (synchronous=FULL), and Forget still checkpoints and truncates the WAL itself (privacy.py). Measured
# on a bare executemany of 200,000 demo events in batches of 1,000: 25-27 -> 18-19 us of CPU per row,
# most of it system time (page reads and writes). The cost: the writer's cache may hold 16 MiB, and
# the WAL file may grow to ~40 MiB on disk.
WRITER_CACHE_KIB = 16 * 1024
WAL_CHECKPOINT_PAGES = 10_000


def connect(path: Path, sync_full: bool = True, writer: bool = False) -> sqlite3.Connection:
    """A connection with the product's pragmas; `writer`: the one writer's (see WRITER_CACHE_KIB)."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=30000")
    if writer:
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    return conn


def make_private(path: Path) -> None:
    """The data folder 0700; the database (made empty if new) and its -wal and -shm files 0600.

    A folder this user does not own, or a shared one with the sticky bit (e.g. SEENEXT_DATA_DIR=/tmp),
    is left as it is, with a warning: the files in it are private anyway. (Run as root, closing /tmp
    to 0700 locked every other user out of it: PostgreSQL's server, running as `postgres`, could no
    longer reach its own folders there.)"""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        try:
            if mode & stat.S_ISVTX:
                raise PermissionError(f"{folder} is a shared folder (sticky bit)")
            folder.chmod(0o700)
        except PermissionError:
            log.warning("data folder %s is readable by others and not ours to make private", folder)
    with suppress(FileExistsError):  # made empty before SQLite would make it 0644 (and its -wal, -shm)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) != 0o600:
            try:
                file.chmod(0o600)  # a store made by an older version, or copied in
            except PermissionError:
                log.warning("%s is readable by others and not ours to make private", file)


class _Reader:
    """A thread's reader connection, held by that thread's `threading.local` alone (sqlite3
    connections take no weak references, this holder does): when the thread ends, its local is
    dropped and the holder with it, which closes the connection at once (left to itself, a
    connection waits for the cycle collector: it and its statement cache refer to each other).
    The background refreshes (popularity, exploration, catalogue and merchandising checks) each run
    on a thread of their own; holding their readers in a list kept every one open with its page and
    statement caches, ~20 more connections and ~2 MB more per fuzz round (docs/reliability.md)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # Not at interpreter exit: daemon threads may still be inside a query on their reader then,
        # and closing it under them could wait for good (a SIGTERM stop that never ended).
        weakref.finalize(self, conn.close).atexit = False


class Connections:
    """One writer connection behind a lock, and one reader connection per live thread."""

    # Test hook: the pages the database may grow to (PRAGMA max_page_count, set on the writer at the
    # next write transaction), so a test can fill the "disk" without mounting a small filesystem.
    # 1 means "no more than now"; None (always, outside tests) means SQLite's own limit.
    page_limit: ClassVar[int | None] = None

    def __init__(
        self,
        path: Path,
        sync_full: bool = True,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        make_private(path)
        self.path = path
        self._sync_full = sync_full
        self._on_connect = on_connect or (lambda conn: None)
        self.writer = connect(path, sync_full, writer=True)
        self._on_connect(self.writer)
        self._default_pages = int(self.writer.execute("PRAGMA max_page_count").fetchone()[0])
        self._applied_limit: int | None = None
        self.write_lock = threading.RLock()
        self._local = threading.local()
        # Weak: only to close the live threads' readers on close(); a dead thread's reader is gone.
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()

    def reader(self) -> sqlite3.Connection:
        held: _Reader | None = getattr(self._local, "reader", None)
        if held is None:
            conn = connect(self.path, self._sync_full)
            conn.execute("PRAGMA query_only=ON")
            self._on_connect(conn)
            held = self._local.reader = _Reader(conn)
            with self._readers_lock:
                self._readers.add(held)
        return held.conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer in one `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error.

        A full or failing disk raises ResourceExhausted or Unavailable from the driver's error."""
        with self.write_lock:
            if self.page_limit != self._applied_limit:
                self._apply_page_limit()
            try:
                self.writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                fault = storage_fault(exc, self.path)
                if fault is None:
                    raise
                raise fault from exc
            try:
                yield self.writer
                self.writer.execute("COMMIT")  # may fail too: a full disk often shows here first
            except BaseException as exc:
                self._rollback(exc)
                if isinstance(exc, sqlite3.Error):
                    fault = storage_fault(exc, self.path)
                    if fault is not None:
                        raise fault from exc
                raise

    def _rollback(self, cause: BaseException) -> None:
        """Undoes what the transaction wrote. SQLite has already rolled back after a full disk or an
        I/O error (a ROLLBACK then fails with "no transaction is active" and would hide the cause); a
        rollback that fails is logged, and the cause is what the caller sees."""
        if not self.writer.in_transaction:
            return
        try:
            self.writer.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("rollback after %r failed too: %s", cause, exc)

    def _apply_page_limit(self) -> None:
        pages = self._default_pages if self.page_limit is None else self.page_limit
        self.writer.execute(f"PRAGMA max_page_count={int(pages)}")
        self._applied_limit = self.page_limit

    def close(self) -> None:
        with self._readers_lock:
            for held in list(self._readers):
                held.conn.close()
            self._readers.clear()
        self.writer.close()
