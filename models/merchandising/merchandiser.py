"""The rules as the service keeps them: changes (versioned, with who and when), and the rules in force.

Every serving process holds one `RulesInForce`, rebuilt when the counter in the database moves: a
change of this process at once, another process's within `refresh_seconds` (a thread polls the one
counter off the request path; a request never reads the store for rules).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid

from models.catalog import Catalog
from models.errors import InvalidArgument, NotFound
from models.merchandising.engine import RulesInForce
from models.merchandising.rules import CompiledRule, Rule, RuleChange, RuleSpec, check_spec
from models.storage import Storage
from models.storage.merchandising import StoredRule
from models.validation import MAX_ID_LENGTH, check_text

log = logging.getLogger(__name__)

MAX_RULES = 500


class Merchandiser:
    def __init__(self, storage: Storage, catalog: Catalog, refresh_seconds: float = 0.4) -> None:
        self.storage = storage
        self.catalog = catalog
        self.refresh_seconds = refresh_seconds
        self._in_force: RulesInForce | None = None
        self._lock = threading.Lock()
        self._checked_at = 0.0

    # -- changes --------------------------------------------------------------------------------

    def create(self, spec: RuleSpec, by: str) -> Rule:
        check_spec(spec)
        if len(self.storage.merchandising_rules()) >= MAX_RULES:
            raise InvalidArgument("spec", f"at most {MAX_RULES} rules; delete one first")
        now = time.time()
        stored = StoredRule(uuid.uuid4().hex[:16], spec.to_json(), 1, now, by, now)
        self._save(stored, "created")
        return _rule(stored)

    def update(self, rule_id: str, spec: RuleSpec, by: str) -> Rule:
        check_spec(spec)
        with self.storage.transaction():
            old = self._stored(rule_id)
            stored = dataclasses.replace(
                old, spec=spec.to_json(), version=old.version + 1, updated_by=by, updated_at=time.time()
            )
            self._save(stored, "updated")
        return _rule(stored)

    def set_enabled(self, rule_id: str, enabled: bool, by: str) -> Rule:
        with self.storage.transaction():
            old = self._stored(rule_id)
            spec = dataclasses.replace(RuleSpec.from_json(old.spec), enabled=enabled)
            stored = dataclasses.replace(
                old, spec=spec.to_json(), version=old.version + 1, updated_by=by, updated_at=time.time()
            )
            self._save(stored, "enabled" if enabled else "disabled")
        return _rule(stored)

    def delete(self, rule_id: str, by: str) -> int:
        with self.storage.transaction():
            old = self._stored(rule_id)
            stored = dataclasses.replace(
                old, version=old.version + 1, updated_by=by, updated_at=time.time(), deleted=True
            )
            self._save(stored, "deleted")
        return stored.version

    def _stored(self, rule_id: str) -> StoredRule:
        if not rule_id:
            raise InvalidArgument("rule_id", "is required")
        check_text(rule_id, "rule_id", MAX_ID_LENGTH)
        stored = self.storage.merchandising_rule(rule_id)
        if stored is None or stored.deleted:
            raise NotFound(f"rule_id: no rule {rule_id!r}")
        return stored

    def _save(self, stored: StoredRule, change: str) -> None:
        self.storage.save_merchandising_rule(stored, change)
        self._in_force = None  # this process applies its own change at once

    # -- reads ----------------------------------------------------------------------------------

    def rules(self, placement: str = "") -> list[Rule]:
        """The rules not deleted, oldest first (only those of `placement`, when given)."""
        found = [_rule(s) for s in self.storage.merchandising_rules()]
        return [x for x in found if not placement or not x.spec.placements or placement in x.spec.placements]

    def rule(self, rule_id: str) -> Rule:
        return _rule(self._stored(rule_id))

    def history(self, rule_id: str = "") -> list[RuleChange]:
        if rule_id:
            check_text(rule_id, "rule_id", MAX_ID_LENGTH)
            if self.storage.merchandising_rule(rule_id) is None:
                raise NotFound(f"rule_id: no rule {rule_id!r}")
        return [
            RuleChange(c.rule_id, c.version, c.change, c.changed_by, c.changed_at, RuleSpec.from_json(c.spec))
            for c in self.storage.merchandising_history(rule_id)
        ]

    def version(self) -> int:
        return self.storage.merchandising_version()

    # -- the rules in force -----------------------------------------------------------------------

    def in_force(self) -> RulesInForce:
        """What requests apply: no read of the store, but the first call after a change of this process."""
        current = self._in_force
        if current is None:
            return self.reload()
        return current

    def reload(self) -> RulesInForce:
        """Reads the counter, and the rules when it moved (or nothing is loaded)."""
        with self._lock:
            version = self.storage.merchandising_version()
            current = self._in_force
            if current is None or current.version != version:
                current = compile_rules(version, self.storage.merchandising_rules())
                self._in_force = current
            self._checked_at = time.monotonic()
            return current

    def with_rule(self, spec: RuleSpec, rule_id: str = "") -> tuple[RulesInForce, RulesInForce]:
        """(the rules in force without the rule, the same with it): PreviewRule's two answers."""
        condition = check_spec(spec)
        base = self.in_force()
        without = RulesInForce(base.version, tuple(c for c in base.rules if c.rule_id != rule_id))
        rule = CompiledRule(rule_id or "preview", dataclasses.replace(spec, enabled=True), condition, 1 << 30)
        return without, RulesInForce(base.version, (*without.rules, rule))

    def watch(self, stop: threading.Event) -> threading.Thread:
        """Polls the counter every `refresh_seconds` until `stop`, and warms the item-only matches of a
        new rules or catalogue version, so requests find them computed."""

        def run() -> None:
            while not stop.wait(self.refresh_seconds):
                try:
                    self.reload().matches(self.catalog.snapshot())
                except Exception:  # serving keeps the rules it has; the next period tries again
                    log.exception("could not reload the merchandising rules")

        thread = threading.Thread(target=run, name="merchandising-watch", daemon=True)
        thread.start()
        return thread


def compile_rules(version: int, stored: list[StoredRule]) -> RulesInForce:
    """The enabled rules compiled; a stored rule that no longer compiles (a newer runtime) is skipped
    and logged, never stopping serving."""
    compiled = []
    for n, s in enumerate(stored):
        spec = RuleSpec.from_json(s.spec)
        if not spec.enabled or s.deleted:
            continue
        try:
            compiled.append(CompiledRule(s.rule_id, spec, check_spec(spec), n))
        except InvalidArgument as exc:
            log.error("merchandising rule %s is not applied: %s", s.rule_id, exc)
    return RulesInForce(version, tuple(compiled))


def _rule(s: StoredRule) -> Rule:
    return Rule(s.rule_id, RuleSpec.from_json(s.spec), s.version, s.updated_by, s.updated_at, s.created_at)
