"""The SQLite file: connections and pragmas (the schema is in migrations.py).

WAL lets readers run beside the one writer; synchronous=FULL makes every acknowledged commit
durable against power loss as well as against a killed process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path, sync_full: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Connections:
    """One writer connection behind a lock, and one reader connection per thread."""

    def __init__(
        self,
        path: Path,
        sync_full: bool = True,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._sync_full = sync_full
        self._on_connect = on_connect or (lambda conn: None)
        self.writer = connect(path, sync_full)
        self._on_connect(self.writer)
        self.write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._sync_full)
            conn.execute("PRAGMA query_only=ON")
            self._on_connect(conn)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer in one `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error."""
        with self.write_lock:
            self.writer.execute("BEGIN IMMEDIATE")
            try:
                yield self.writer
            except BaseException:
                self.writer.execute("ROLLBACK")
                raise
            self.writer.execute("COMMIT")

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self.writer.close()
