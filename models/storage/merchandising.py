"""Storage interface: merchandising rules (issue 12), each change versioned with who and when.

A rule's definition is kept as JSON text (`spec`): what it means is models/merchandising/'s business;
storage only keeps it, its version and its history. One counter (`merchandising_version`) moves with
every change of any rule, so a serving process follows every change by reading one number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredRule:
    """A rule as stored: its definition (JSON), version, and the last change."""

    rule_id: str
    spec: str  # JSON of the definition (models/merchandising/rules.py: RuleSpec)
    version: int  # 1 at creation, one more per change
    created_at: float
    updated_by: str  # the API key's name that made the last change
    updated_at: float
    deleted: bool = False


@dataclass(frozen=True)
class StoredRuleChange:
    """One line of a rule's history: the rule as the change left it."""

    rule_id: str
    version: int
    change: str  # "created", "updated", "enabled", "disabled", "deleted"
    spec: str
    changed_by: str
    changed_at: float


@dataclass(frozen=True)
class StoredConfig:
    """A placement plan or an experiment (`kind`), keyed, as JSON; spec "" = removed."""

    kind: str  # "placement" or "experiment"
    key: str  # the placement's name, the experiment's id
    spec: str
    version: int
    updated_by: str
    updated_at: float


@dataclass(frozen=True)
class StoredConfigChange:
    kind: str
    key: str
    version: int
    change: str
    spec: str
    changed_by: str
    changed_at: float


class MerchandisingStorage(ABC):
    """Merchandising rules and their history."""

    @abstractmethod
    def merchandising_version(self) -> int:
        """A counter that moves with every change of any rule (0 before the first)."""

    @abstractmethod
    def merchandising_rules(self, include_deleted: bool = False) -> list[StoredRule]:
        """The rules, oldest first."""

    @abstractmethod
    def merchandising_rule(self, rule_id: str) -> StoredRule | None:
        """One rule, deleted or not; None if it never existed."""

    @abstractmethod
    def save_merchandising_rule(self, rule: StoredRule, change: str) -> int:
        """Writes the rule (created or replaced), its history line (who and when: the rule's
        updated_by/updated_at) and moves the counter, in one transaction; returns the new counter."""

    @abstractmethod
    def merchandising_history(self, rule_id: str = "") -> list[StoredRuleChange]:
        """Every change of one rule ("" = of every rule), oldest first."""

    @abstractmethod
    def merchandising_configs(self, kind: str) -> list[StoredConfig]:
        """Every stored placement plan or experiment of `kind` (removed ones included), by key."""

    @abstractmethod
    def merchandising_config(self, kind: str, key: str) -> StoredConfig | None: ...

    @abstractmethod
    def save_merchandising_config(self, config: StoredConfig, change: str) -> int:
        """Like `save_merchandising_rule`, for a placement plan or an experiment: the row, its history
        line and the counter in one transaction; returns the new counter."""

    @abstractmethod
    def merchandising_config_history(self, kind: str, key: str = "") -> list[StoredConfigChange]:
        """Every change of one (or, with key "", every) placement plan or experiment, oldest first."""
