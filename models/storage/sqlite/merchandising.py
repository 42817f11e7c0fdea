"""SQLite: merchandising rules and their history (models/storage/merchandising.py).

Plain SQL that PostgreSQL runs as well (no INSERT OR REPLACE: an upsert with ON CONFLICT).
"""

from __future__ import annotations

from typing import Any

from models.storage.merchandising import StoredConfig, StoredConfigChange, StoredRule, StoredRuleChange
from models.storage.sqlite.base import SqliteBase

_RULE_COLUMNS = "rule_id, spec, version, created_at, updated_by, updated_at, deleted"
_CHANGE_COLUMNS = "rule_id, version, change, spec, changed_by, changed_at"
_CONFIG_COLUMNS = "kind, key, spec, version, updated_by, updated_at"
_CONFIG_CHANGE_COLUMNS = "kind, key, version, change, spec, changed_by, changed_at"
_BUMP = "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'merchandising_version'"


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
            conn.execute(_BUMP)
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

    def merchandising_configs(self, kind: str) -> list[StoredConfig]:
        rows = self._read().execute(
            f"SELECT {_CONFIG_COLUMNS} FROM merchandising_configs WHERE kind = ? ORDER BY key", (kind,)
        )
        return [_config(r) for r in rows]

    def merchandising_config(self, kind: str, key: str) -> StoredConfig | None:
        row = (
            self._read()
            .execute(
                f"SELECT {_CONFIG_COLUMNS} FROM merchandising_configs WHERE kind = ? AND key = ?", (kind, key)
            )
            .fetchone()
        )
        return None if row is None else _config(row)

    def save_merchandising_config(self, config: StoredConfig, change: str) -> int:
        c = config
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO merchandising_configs ({_CONFIG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET spec = excluded.spec, version = excluded.version,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                (c.kind, c.key, c.spec, c.version, c.updated_by, c.updated_at),
            )
            conn.execute(
                f"INSERT INTO merchandising_config_history ({_CONFIG_CHANGE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (c.kind, c.key, c.version, change, c.spec, c.updated_by, c.updated_at),
            )
            conn.execute(_BUMP)
            row = conn.execute("SELECT value FROM meta WHERE key = 'merchandising_version'").fetchone()
        return int(row[0])

    def merchandising_config_history(self, kind: str, key: str = "") -> list[StoredConfigChange]:
        sql = f"SELECT {_CONFIG_CHANGE_COLUMNS} FROM merchandising_config_history WHERE kind = ?"
        args: tuple[Any, ...] = (kind,)
        if key:
            sql += " AND key = ?"
            args = (kind, key)
        rows = self._read().execute(sql + " ORDER BY changed_at, key, version", args)
        return [
            StoredConfigChange(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), float(r[6]))
            for r in rows
        ]


def _config(r: tuple[Any, ...]) -> StoredConfig:
    return StoredConfig(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), float(r[5]))


def _rule(r: tuple[Any, ...]) -> StoredRule:
    return StoredRule(str(r[0]), str(r[1]), int(r[2]), float(r[3]), str(r[4]), float(r[5]), bool(r[6]))
