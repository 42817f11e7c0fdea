"""How the numbered schema migrations are shared by the backends, and how to write the next one.

There is ONE numbered list: `models/storage/sqlite/migrations.py::MIGRATIONS` (migration N is entry
N-1; `SCHEMA_VERSION` is its length). Both backends apply 1..N in order at start, each migration in
its own transaction, and record the newest in `meta.schema_version`; a database newer than the code
stops the start (FailedPrecondition). A released migration never changes.

An entry is either:

- `Portable(doc, statements)`: plain SQL both backends run as is. Write the next migration this way
  whenever you can: types TEXT, BIGINT, DOUBLE PRECISION (SQLite takes them by affinity);
  `CREATE TABLE IF NOT EXISTS`, `CREATE [UNIQUE] INDEX IF NOT EXISTS`, `ALTER TABLE … ADD COLUMN`;
  no AUTOINCREMENT or SERIAL, no `INSERT OR …` (use `ON CONFLICT … DO NOTHING`), no PRAGMA.
- an SQLite body (a function of a `sqlite_utils.Database`, how 1..6 were written): then
  `models/storage/postgres/migrations.py::BODIES` must hold the PostgreSQL body of the same number
  (SQL statements, or a function of a psycopg connection). A PostgreSQL database refuses to start
  when a number has neither, naming it, so a forgotten body cannot pass unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Portable:
    """A migration both backends run as the same SQL statements, in order, in one transaction."""

    doc: str
    statements: tuple[str, ...]
