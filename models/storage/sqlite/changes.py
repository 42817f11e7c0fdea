"""SQLite: the change feed and leases (models/storage/changes.py).

`append_changes` is what the other modules' writes call inside their transaction. Plain SQL that
PostgreSQL runs as well; only the numbering differs (here `seq` is the rowid, max + 1: writers are
serialised, so seq order is commit order; PostgreSQL numbers by an identity column and a follower
tolerates the gaps of transactions still open, see models/serving/feed.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from models.storage.base import chunks
from models.storage.changes import Change, ChangeNotes, Listener, Told
from models.storage.sqlite.base import SqliteBase

_INSERT = "INSERT INTO changes (changed_at, kind, subject) VALUES (?, ?, ?)"


def append_changes(conn: sqlite3.Connection, notes: ChangeNotes, kind: str, subjects: Iterable[str]) -> None:
    """One feed row per subject, in the caller's transaction; told to this process once it commits,
    with the seqs they got when a follower of this process takes them (`ChangeNotes.numbered`)."""
    rows = notes.note(kind, subjects)
    if not rows:
        return
    now = time.time()
    if len(rows) == 1:
        last = conn.execute(_INSERT, (now, *rows[0])).lastrowid
    else:
        conn.executemany(_INSERT, [(now, k, s) for k, s in rows])
        # executemany leaves no lastrowid; the connection's is the last row's, as long as it is asked
        # before any other insert (the transaction holds the only writer: nobody else's can come between)
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0] if notes.numbering else None
    if last is not None:
        # The rowid is max + 1 and the transaction is the only writer (no savepoint ever undoes part of
        # it): the rows got the consecutive seqs ending at `last`.
        notes.numbered(int(last) - len(rows) + 1, int(last))


class SqliteChanges(SqliteBase):
    def changes_after(self, seq: int, limit: int = 10_000) -> list[Change]:
        rows = self._read().execute(
            "SELECT seq, kind, subject FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [Change(int(s), str(k), str(sub)) for s, k, sub in rows]

    def changes_at(self, seqs: Iterable[int]) -> list[Change]:
        out: list[Change] = []
        conn = self._read()
        for chunk in chunks(sorted(set(seqs))):
            marks = ",".join("?" * len(chunk))
            out.extend(
                Change(int(s), str(k), str(sub))
                for s, k, sub in conn.execute(
                    f"SELECT seq, kind, subject FROM changes WHERE seq IN ({marks}) ORDER BY seq", chunk
                )
            )
        return out

    def feed_head(self) -> int:
        row = self._read().execute("SELECT MAX(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def prune_changes(self, through_seq: int) -> int:
        with self._write() as conn:
            return int(
                conn.execute(
                    "DELETE FROM changes WHERE seq <= ? AND seq < (SELECT MAX(seq) FROM changes)",
                    (through_seq,),
                ).rowcount
            )

    def listen_changes(self, listener: Listener) -> Told:
        return self._notes.listen(listener)

    def take_lease(self, name: str, holder: str, seconds: float, now: float) -> bool:
        with self._write() as conn:
            # Taken when free, expired or already ours; the upsert's WHERE leaves another live holder's row.
            conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.expires_at < ? OR leases.holder = excluded.holder",
                (name, holder, now + seconds, now),
            )
            row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == holder

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: float) -> str | None:
        row = (
            self._read()
            .execute("SELECT holder FROM leases WHERE name = ? AND expires_at >= ?", (name, now))
            .fetchone()
        )
        return None if row is None else str(row[0])
