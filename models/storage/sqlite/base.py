"""What every SQLite storage module shares: the connections, the thread's transaction, tracing.

Reads go to the thread's reader connection, or to the writer when the thread is inside
`transaction()` (so a transaction reads its own writes). Writes outside a transaction get one of
their own. One writer connection behind a lock: SQLite has one writer at a time anyway, and
`BEGIN IMMEDIATE` takes the lock at the start instead of failing half-way.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.storage.changes import ChangeNotes
from models.storage.sqlite import migrations
from models.storage.sqlite.connection import Connections, storage_fault


class SqliteBase:
    def __init__(self, path: Path, sync_full: bool = True) -> None:
        self._local = threading.local()
        self._notes = ChangeNotes()  # feed rows of the open transaction, told to listeners on commit
        try:  # a full or failing disk at start says so, like a failed write later (connection.py)
            self.connections = Connections(path, sync_full, on_connect=self._trace_into)
            self.path = path
            migrations.migrate(self.connections.writer)
            # Freed pages and cells are overwritten with zeros, so erased data does not linger in the file.
            self.connections.writer.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as exc:
            fault = storage_fault(exc, path)
            if fault is None:
                raise
            raise fault from exc

    # -- connections and transactions ------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        """The connection a read of this thread uses."""
        tx = getattr(self._local, "tx", None)
        return tx if tx is not None else self.connections.reader()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The writer inside this thread's transaction, or inside a new one for this write alone."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        try:
            with self.connections.transaction() as conn:
                self._local.tx = conn
                try:
                    yield conn
                finally:
                    self._local.tx = None
        except BaseException:
            self._notes.discarded()
            raise
        self._notes.committed()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every storage call of this thread inside the block is one transaction (nested blocks join it)."""
        with self._write():
            yield

    def _customer_tables(self, conn: sqlite3.Connection) -> list[str]:
        """Every table with a customer_id column: what a merge re-points, Forget erases and Export returns."""
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return [
            t
            for t in names
            if any(col[1] == "customer_id" for col in conn.execute(f'PRAGMA table_info("{t}")'))
        ]

    # -- meta ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._read().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def schema_version(self) -> int:
        return migrations.applied_version(self._read())

    def close(self) -> None:
        self.connections.close()

    # -- tracing (tests count the statements a request sends) -------------------------------------

    # The trace callback is installed only while some thread counts: SQLite expands every statement's
    # parameters into text for it, which cost 3-4 us per executed statement (every row of an
    # executemany), ~10% of a TrackBatch (issue 11), on every write of a serving process.
    _counting = 0
    _counting_lock = threading.Lock()

    def _trace_into(self, conn: sqlite3.Connection) -> None:
        """A new connection (this thread's reader) traces from the start if this thread is counting."""
        if getattr(self._local, "trace", None) is not None:
            conn.set_trace_callback(self._trace_statement)

    def _trace_statement(self, statement: str) -> None:
        sink = getattr(self._local, "trace", None)
        if sink is not None:
            sink.append(statement)

    @contextmanager
    def count_statements(self) -> Iterator[list[str]]:
        """Every statement this thread sends inside the block: on its reader, and on the writer (shared,
        so traced while any thread counts; the callback keeps only the counting thread's)."""
        sink: list[str] = []
        self._local.trace = sink
        reader, writer = self.connections.reader(), self.connections.writer
        with self._counting_lock:
            self._counting += 1
            writer.set_trace_callback(self._trace_statement)
        reader.set_trace_callback(self._trace_statement)
        try:
            yield sink
        finally:
            self._local.trace = None
            reader.set_trace_callback(None)
            with self._counting_lock:
                self._counting -= 1
                if not self._counting:
                    writer.set_trace_callback(None)
