"""SQLite: merchandising rules and their history (models/storage/merchandising.py).

Plain SQL that PostgreSQL runs as well (no INSERT OR REPLACE: an upsert with ON CONFLICT).
"""

from __future__ import annotations

from typing import Any

from models.storage.merchandising import StoredRule, StoredRuleChange
from models.storage.sqlite.base import SqliteBase

_RULE_COLUMNS = "rule_id, spec, version, created_at, updated_by, updated_at, deleted"
_CHANGE_COLUMNS = "rule_id, version, change, spec, changed_by, changed_at"


class SqliteMerchandising(SqliteBase):
    def merchandising_version(self) -> int:
        row = self._read().execute("SELECT value FROM meta WHERE key = 'merchandising_version'").fetchone()
        return int(row[0]) if row is not None else 0

    def merchandising_rules(self, include_deleted: bool = False) -> list[StoredRule]:
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self._read().execute(
            f"SELECT {_RULE_COLUMNS} FROM merchandising_rules{where} ORDER BY created_at, rule_id"
        )
        return [_rule(r) for r in rows]

    def merchandising_rule(self, rule_id: str) -> StoredRule | None:
        row = (
            self._read()
            .execute(f"SELECT {_RULE_COLUMNS} FROM merchandising_rules WHERE rule_id = ?", (rule_id,))
            .fetchone()
        )
        return None if row is None else _rule(row)

    def save_merchandising_rule(self, rule: StoredRule, change: str) -> int:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO merchandising_rules ({_RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (rule_id) DO UPDATE SET spec = excluded.spec, version = excluded.version,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at,"
                " deleted = excluded.deleted",
                (
                    rule.rule_id,
                    rule.spec,
                    rule.version,
                    rule.created_at,
                    rule.updated_by,
                    rule.updated_at,
                    int(rule.deleted),
                ),
            )
            conn.execute(
                f"INSERT INTO merchandising_rule_history ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (rule.rule_id, rule.version, change, rule.spec, rule.updated_by, rule.updated_at),
            )
            conn.execute(
                "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT)"
                " WHERE key = 'merchandising_version'"
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'merchandising_version'").fetchone()
        return int(row[0])

    def merchandising_history(self, rule_id: str = "") -> list[StoredRuleChange]:
        sql = f"SELECT {_CHANGE_COLUMNS} FROM merchandising_rule_history"
        args: tuple[Any, ...] = ()
        if rule_id:
            sql += " WHERE rule_id = ?"
            args = (rule_id,)
        rows = self._read().execute(sql + " ORDER BY changed_at, rule_id, version", args)
        return [
            StoredRuleChange(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5])) for r in rows
        ]


def _rule(r: tuple[Any, ...]) -> StoredRule:
    return StoredRule(str(r[0]), str(r[1]), int(r[2]), float(r[3]), str(r[4]), float(r[5]), bool(r[6]))
