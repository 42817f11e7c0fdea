"""PostgreSQL: the change feed and leases (models/storage/changes.py).

`append_changes` is what the other modules' writes call inside their transaction. `seq` is an
identity column; every write transaction holds the writers' advisory lock (base.py) from before its
first row to its commit, so numbers are handed out in commit order and a follower never sees a
number appear below one it has already read (the gaps models/serving/feed.py tolerates are those of
rolled-back transactions, which never fill).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from models.storage.changes import Change, ChangeNotes, Listener, Told
from models.storage.postgres.base import Conn, PostgresBase

_INSERT = "INSERT INTO changes (changed_at, kind, subject) VALUES (%s, %s, %s)"
# Many rows as one statement (their order kept, so seq follows it): a batch of events touches hundreds
# of customers and identifiers, and executemany costs a pipelined statement's client time per row.
_INSERT_MANY = (
    "INSERT INTO changes (changed_at, kind, subject) SELECT %s, kind, subject"
    " FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS c(kind, subject, n) ORDER BY n"
)


# The same, answering which seqs the rows got (the reply is read after the COMMIT: nothing waits for it).
# Asked only for an insert of several rows: the reply costs the client ~25 us (a cursor of its own, a
# row to read), more than reading one or two rows back from the feed (a single Track's rows are read
# back as before; a TrackBatch's few big inserts, a hundred rows or more in all, are passed over).
_INSERT_MANY_NUMBERED = (
    f"WITH ins AS ({_INSERT_MANY} RETURNING seq) SELECT MIN(seq), MAX(seq), COUNT(*) FROM ins"
)


def append_changes(
    storage: PostgresBase, conn: Conn, notes: ChangeNotes, kind: str, subjects: Iterable[str]
) -> None:
    """One feed row per subject, in the caller's transaction; told to this process once it commits,
    with the seqs they got when a follower of this process takes them (`ChangeNotes.numbered_later`)."""
    rows = notes.note(kind, subjects)
    if len(rows) == 1:
        storage._send(conn, _INSERT, (time.time(), *rows[0]))
    elif rows:
        args = (time.time(), [k for k, _ in rows], [s for _, s in rows])
        if notes.numbering:
            notes.numbered_later(_seqs(storage._run(conn, _INSERT_MANY_NUMBERED, args)))
        else:
            storage._send(conn, _INSERT_MANY, args)


def _seqs(cursor: psycopg.Cursor[tuple[Any, ...]]) -> Callable[[], tuple[int, int] | None]:
    """Reads, after the COMMIT, the seqs one insert's rows got: (first, last) when they are every seq in
    between (an identity hands numbers out one at a time under the writers' lock, but the count says so
    rather than assume it); else None (the follower reads those rows back)."""

    def read() -> tuple[int, int] | None:
        if cursor.pgresult is None:  # no reply kept: never waited for here (the connection is the pool's)
            return None
        try:
            row = cursor.fetchone()
        except psycopg.Error:
            return None
        if row is None or row[0] is None:
            return None
        first, last, count = int(row[0]), int(row[1]), int(row[2])
        return (first, last) if last - first + 1 == count else None

    return read


class PostgresChanges(PostgresBase):
    def changes_after(self, seq: int, limit: int = 10_000) -> list[Change]:
        rows = self._rows(
            "SELECT seq, kind, subject FROM changes WHERE seq > %s ORDER BY seq LIMIT %s", (seq, limit)
        )
        return [Change(int(s), str(k), str(sub)) for s, k, sub in rows]

    def changes_at(self, seqs: Iterable[int]) -> list[Change]:
        wanted = sorted(set(seqs))
        if not wanted:
            return []
        rows = self._rows(
            "SELECT seq, kind, subject FROM changes WHERE seq = ANY(%s) ORDER BY seq", (wanted,)
        )
        return [Change(int(s), str(k), str(sub)) for s, k, sub in rows]

    def feed_head(self) -> int:
        row = self._one("SELECT MAX(seq) FROM changes")
        return int(row[0] or 0) if row is not None else 0

    def prune_changes(self, through_seq: int) -> int:
        with self._write() as conn:
            return self._count(
                self._run(
                    conn,
                    "DELETE FROM changes WHERE seq <= %s AND seq < (SELECT MAX(seq) FROM changes)",
                    (through_seq,),
                )
            )

    def listen_changes(self, listener: Listener) -> Told:
        return self._notes.listen(listener)

    def take_lease(self, name: str, holder: str, seconds: float, now: float) -> bool:
        with self._write() as conn:
            # Taken when free, expired or already ours; the upsert's WHERE leaves another live holder's row.
            self._run(
                conn,
                "INSERT INTO leases (name, holder, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.expires_at < %s OR leases.holder = excluded.holder",
                (name, holder, now + seconds, now),
            )
            row = self._run(conn, "SELECT holder FROM leases WHERE name = %s", (name,)).fetchone()
        return row is not None and row[0] == holder

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as conn:
            self._run(conn, "DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder))

    def lease_holder(self, name: str, now: float) -> str | None:
        row = self._one("SELECT holder FROM leases WHERE name = %s AND expires_at >= %s", (name, now))
        return None if row is None else str(row[0])
