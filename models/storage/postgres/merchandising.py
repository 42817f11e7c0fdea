"""PostgreSQL: merchandising rules and their history (models/storage/merchandising.py); the same
statements as SQLite's module, with psycopg's placeholders."""

from __future__ import annotations

from typing import Any

from models.storage.merchandising import StoredConfig, StoredConfigChange, StoredRule, StoredRuleChange
from models.storage.postgres.base import PostgresBase
from models.storage.rows import (
    CONFIG_CHANGE_COLUMNS,
    CONFIG_COLUMNS,
    RULE_CHANGE_COLUMNS,
    RULE_COLUMNS,
    stored_config,
    stored_config_change,
    stored_rule,
    stored_rule_change,
)

_BUMP = "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'merchandising_version'"


class PostgresMerchandising(PostgresBase):
    def merchandising_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key = 'merchandising_version'")
        return int(row[0]) if row is not None else 0

    def merchandising_rules(self, include_deleted: bool = False) -> list[StoredRule]:
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self._rows(
            f"SELECT {RULE_COLUMNS} FROM merchandising_rules{where} ORDER BY created_at, rule_id"
        )
        return [stored_rule(r) for r in rows]

    def merchandising_rule(self, rule_id: str) -> StoredRule | None:
        row = self._one(f"SELECT {RULE_COLUMNS} FROM merchandising_rules WHERE rule_id = %s", (rule_id,))
        return None if row is None else stored_rule(row)

    def save_merchandising_rule(self, rule: StoredRule, change: str) -> int:
        with self._write() as conn:
            self._run(
                conn,
                f"INSERT INTO merchandising_rules ({RULE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
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
            self._run(
                conn,
                f"INSERT INTO merchandising_rule_history ({RULE_CHANGE_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (rule.rule_id, rule.version, change, rule.spec, rule.updated_by, rule.updated_at),
            )
            self._run(conn, _BUMP)
            row = self._run(conn, "SELECT value FROM meta WHERE key = 'merchandising_version'").fetchone()
        return int(row[0]) if row is not None else 0

    def merchandising_history(self, rule_id: str = "") -> list[StoredRuleChange]:
        sql = f"SELECT {RULE_CHANGE_COLUMNS} FROM merchandising_rule_history"
        args: tuple[Any, ...] = ()
        if rule_id:
            sql += " WHERE rule_id = %s"
            args = (rule_id,)
        rows = self._rows(sql + " ORDER BY changed_at, rule_id, version", args)
        return [stored_rule_change(r) for r in rows]

    def merchandising_configs(self, kind: str) -> list[StoredConfig]:
        rows = self._rows(
            f"SELECT {CONFIG_COLUMNS} FROM merchandising_configs WHERE kind = %s ORDER BY key", (kind,)
        )
        return [stored_config(r) for r in rows]

    def merchandising_config(self, kind: str, key: str) -> StoredConfig | None:
        row = self._one(
            f"SELECT {CONFIG_COLUMNS} FROM merchandising_configs WHERE kind = %s AND key = %s", (kind, key)
        )
        return None if row is None else stored_config(row)

    def save_merchandising_config(self, config: StoredConfig, change: str) -> int:
        c = config
        with self._write() as conn:
            self._run(
                conn,
                f"INSERT INTO merchandising_configs ({CONFIG_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (kind, key) DO UPDATE SET spec = excluded.spec, version = excluded.version,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                (c.kind, c.key, c.spec, c.version, c.updated_by, c.updated_at),
            )
            self._run(
                conn,
                f"INSERT INTO merchandising_config_history ({CONFIG_CHANGE_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (c.kind, c.key, c.version, change, c.spec, c.updated_by, c.updated_at),
            )
            self._run(conn, _BUMP)
            row = self._run(conn, "SELECT value FROM meta WHERE key = 'merchandising_version'").fetchone()
        return int(row[0]) if row is not None else 0

    def merchandising_config_history(self, kind: str, key: str = "") -> list[StoredConfigChange]:
        sql = f"SELECT {CONFIG_CHANGE_COLUMNS} FROM merchandising_config_history WHERE kind = %s"
        args: tuple[Any, ...] = (kind,)
        if key:
            sql += " AND key = %s"
            args = (kind, key)
        rows = self._rows(sql + " ORDER BY changed_at, key, version", args)
        return [stored_config_change(r) for r in rows]
