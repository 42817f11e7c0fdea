"""What every PostgreSQL storage module shares: the pool, the thread's transaction, tracing.

A read outside a transaction borrows a pool connection for its one autocommit statement. Inside
`transaction()` every call of the thread uses the transaction's connection, so the block reads its
own writes; nested blocks join it.

One writer at a time, across the fleet. Every write transaction starts with
`pg_advisory_xact_lock(WRITE_LOCK)`: the database itself serialises writers, whichever process or
host they run in, as SQLite's `BEGIN IMMEDIATE` does for one file. Why a lock and not only
constraints: the identity graph decides in Python from what it reads (is this e-mail known, whose
is this device, merge these two customers) and then writes; two replicas doing that at once under
READ COMMITTED could each see "unknown" and create two customers, or each merge one way and lose an
identifier. Under the lock each transaction's reads see every earlier writer's commit, so merges,
Forget and idempotent inserts keep their single-writer guarantees; the unique event_id (ON CONFLICT
DO NOTHING) stays as a second guard. The lock also makes `events.seq` commit-ordered, which a
follower of the log by sequence relies on. Reads never take it. Advisory locks belong to one
database, so two seenext databases on one server do not share it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any

import psycopg

from models.storage.changes import ChangeNotes
from models.storage.postgres import migrations
from models.storage.postgres.connection import open_pool, storage_fault

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]

# The writers' lock (any fixed 64-bit number: "seenext" in ASCII); migrations take it too.
WRITE_LOCK = migrations.WRITE_LOCK
LOCK_WRITERS = f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"


@contextmanager
def _mapped(url: str) -> Iterator[None]:
    """Driver errors of an unreachable, full or failing database become domain errors."""
    try:
        yield
    except psycopg.Error as exc:
        fault = storage_fault(exc, url)
        if fault is None:
            raise
        raise fault from exc


class PostgresBase:
    def __init__(self, url: str, pool_size: int = 16) -> None:
        self._local = threading.local()
        self._notes = ChangeNotes()  # feed rows of the open transaction, told to listeners on commit
        self.url = url
        self.pool = open_pool(url, pool_size)
        try:
            with _mapped(url), self.pool.connection() as conn:
                migrations.migrate(conn)
                self._tables = _customer_tables(conn)
                self._unique_keys = {t: _unique_keys(conn, t) for t in self._tables}
        except BaseException:
            self.pool.close()
            raise

    def pool_figures(self) -> dict[str, float]:
        stats = self.pool.get_stats()
        return {
            "db_pool_size": float(stats["pool_max"]),
            "db_pool_in_use": float(stats["pool_size"] - stats["pool_available"]),
            "db_pool_waiting": float(stats.get("requests_waiting", 0)),
        }

    # -- connections and transactions ------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Conn]:
        """The connection a read of this thread uses: its transaction's, or one borrowed for it."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with _mapped(self.url), self.pool.connection() as conn:
            yield conn

    @contextmanager
    def _reading_outside(self) -> Iterator[Conn]:
        """A connection of its own, outside this thread's transaction (for VACUUM)."""
        with _mapped(self.url), self.pool.connection() as conn:
            yield conn

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._reading() as conn:
            return self._run(conn, sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._reading() as conn:
            return self._run(conn, sql, args).fetchone()

    def _run(self, conn: Conn, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[tuple[Any, ...]]:
        """One statement on `conn`, traced for count_statements(). In a transaction its reply may not
        have come yet: fetching rows waits for it; a rowcount needs `_count()`."""
        self._trace(sql)
        return conn.execute(sql, args)

    def _send(self, conn: Conn, sql: str, args: Sequence[Any] = ()) -> None:
        """A write whose result nobody reads, on the transaction's one cursor: `_run` makes a cursor per
        statement, ~10 us of client CPU of the ~25 a pipelined statement costs (a TrackBatch with merges
        sends over a hundred). Its error surfaces at the next read or at COMMIT, as with `_run`."""
        self._trace(sql)
        cursor = getattr(self._local, "cursor", None)
        if cursor is None or cursor.connection is not conn:  # not this thread's transaction
            conn.execute(sql, args)
            return
        cursor.execute(sql, args)

    def _many(self, conn: Conn, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows (pipelined by psycopg; in a transaction, not waited for)."""
        if rows:
            self._trace(sql)
            conn.cursor().executemany(sql, rows)

    def _count(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> int:
        """The rows a write changed, once its reply has come."""
        self._sync()
        return max(cursor.rowcount, 0)

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        """The connection of this thread's transaction, or of a new one for this write alone.

        The transaction runs in pipeline mode: a write whose result nobody reads is sent without
        waiting for its reply, and rides along with the next read (or the COMMIT), so a batch that
        resolves identities pays one round trip per read instead of one per statement. An error of a
        queued write surfaces at the next read or at COMMIT, and the whole transaction is undone."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with _mapped(self.url), self.pool.connection() as conn:
            try:
                with _Pipeline(conn) as pipe:
                    self._run(conn, "BEGIN")
                    self._run(conn, LOCK_WRITERS)
                    self._local.tx, self._local.pipe, self._local.cursor = conn, pipe, conn.cursor()
                    yield conn
                    self._run(conn, "COMMIT")
            except BaseException as exc:
                self._notes.discarded()
                _rollback(conn, exc)
                raise
            finally:
                self._local.tx = self._local.pipe = self._local.cursor = None
        self._notes.committed()

    def _sync(self) -> None:
        """Waits for every statement queued in this thread's pipeline (before reading a rowcount)."""
        pipe = getattr(self._local, "pipe", None)
        if pipe is not None:
            pipe.sync()

    def _pipelined(self) -> bool:
        return getattr(self._local, "pipe", None) is not None

    def _copy_in(self, conn: Conn, sql: str, types: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Rows through `COPY … FROM STDIN (FORMAT BINARY)` on `conn`, in this thread's transaction; how
        many were copied. COPY cannot run in pipeline mode: the pipeline waits for every queued
        statement, is left for the COPY and entered again after it (an error ends the transaction)."""
        pipe: _Pipeline | None = getattr(self._local, "pipe", None)
        self._trace(sql)
        with pipe.paused() if pipe is not None else nullcontext(), conn.cursor() as cur:
            with cur.copy(sql) as copy:
                copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)
            return max(cur.rowcount, 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every storage call of this thread inside the block is one transaction (nested blocks join it)."""
        with self._write():
            yield

    def _customer_tables(self) -> list[str]:
        """Every table with a customer_id column: what a merge re-points, Forget erases and Export returns."""
        return list(self._tables)

    # -- meta ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def schema_version(self) -> int:
        with self._reading() as conn:
            return migrations.applied_version(conn)

    def close(self) -> None:
        self.pool.close()

    # -- tracing (tests count the statements a request sends) -------------------------------------

    def _trace(self, statement: str) -> None:
        sink = getattr(self._local, "trace", None)
        if sink is not None:
            sink.append(statement)

    @contextmanager
    def count_statements(self) -> Iterator[list[str]]:
        sink: list[str] = []
        self._local.trace = sink
        try:
            yield sink
        finally:
            self._local.trace = None


class _Pipeline:
    """Pipeline mode for a write transaction, which a COPY may leave and enter again (`paused`)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self._mode: AbstractContextManager[psycopg.Pipeline] | None = None
        self._pipe: psycopg.Pipeline | None = None

    def __enter__(self) -> _Pipeline:
        mode = self._conn.pipeline()
        self._pipe = mode.__enter__()
        self._mode = mode
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        mode, self._mode, self._pipe = self._mode, None, None
        if mode is not None:  # None: a paused pipeline whose COPY failed (the transaction is undone)
            mode.__exit__(kind, exc, tb)

    def sync(self) -> None:
        """Waits for every statement queued so far."""
        if self._pipe is not None:
            self._pipe.sync()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Out of pipeline mode for the block (its queued statements answered first), then in again."""
        self.__exit__(None, None, None)
        yield
        self.__enter__()


def _rollback(conn: Conn, cause: BaseException) -> None:
    """Undoes the transaction; on a broken connection there is nothing to undo (the server did), and
    the cause is what the caller sees."""
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        log.error("rollback after %r failed too: %s", cause, exc)


def _customer_tables(conn: Conn) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND c.column_name = 'customer_id'"
        " AND t.table_type = 'BASE TABLE' ORDER BY c.table_name"
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def _unique_keys(conn: Conn, table: str) -> list[list[str]]:
    """The columns of each unique index of `table` that holds customer_id: what SQLite's
    `UPDATE OR REPLACE` resolves a re-pointed row's conflict on."""
    rows = conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = to_regclass(%s) AND i.indisunique GROUP BY i.indexrelid",
        (f'"{table}"',),
    ).fetchall()
    return [list(r[0]) for r in rows if "customer_id" in r[0]]
