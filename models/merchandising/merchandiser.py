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
from collections.abc import Sequence
from dataclasses import dataclass

from models.catalog import Catalog
from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.merchandising.engine import RulesInForce
from models.merchandising.experiments import Experiment, ExperimentSpec, check_experiment
from models.merchandising.placements import PlacementPlan, check_plan, default_placements, default_plan
from models.merchandising.rules import CompiledRule, Rule, RuleChange, RuleSpec, check_spec
from models.storage import Storage
from models.storage.merchandising import StoredConfig, StoredRule
from models.validation import MAX_ID_LENGTH, check_text
from models.validation import MAX_NAME_LENGTH as MAX_NAME

log = logging.getLogger(__name__)

MAX_RULES = 500
MAX_EXPERIMENTS = 100
PLACEMENT, EXPERIMENT = "placement", "experiment"  # kinds of StoredConfig


@dataclass(frozen=True)
class Placement:
    """A placement's plan in force, and whether it is the default in code or one set through the API."""

    plan: PlacementPlan
    is_default: bool
    version: int = 0
    updated_by: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True)
class PlacementChange:
    """One change of a placement's plan: "set" (the plan as set) or "reset" (back to the plan in code);
    the placement's version, who and when are the change's."""

    change: str
    placement: Placement


@dataclass(frozen=True)
class ExperimentChange:
    """One change of an experiment ("created", "started", "stopped"), the experiment as it left it."""

    change: str
    experiment: Experiment


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
        self.reload()  # this process applies its own change at once (the caller waits for the matches)
        return _rule(stored)

    def update(self, rule_id: str, spec: RuleSpec, by: str) -> Rule:
        check_spec(spec)
        with self.storage.transaction():
            old = self._stored(rule_id)
            stored = dataclasses.replace(
                old, spec=spec.to_json(), version=old.version + 1, updated_by=by, updated_at=time.time()
            )
            self._save(stored, "updated")
        self.reload()  # after the transaction: computing the matches must not hold the writer
        return _rule(stored)

    def set_enabled(self, rule_id: str, enabled: bool, by: str) -> Rule:
        with self.storage.transaction():
            old = self._stored(rule_id)
            spec = dataclasses.replace(RuleSpec.from_json(old.spec), enabled=enabled)
            stored = dataclasses.replace(
                old, spec=spec.to_json(), version=old.version + 1, updated_by=by, updated_at=time.time()
            )
            self._save(stored, "enabled" if enabled else "disabled")
        self.reload()
        return _rule(stored)

    def delete(self, rule_id: str, by: str) -> int:
        with self.storage.transaction():
            old = self._stored(rule_id)
            stored = dataclasses.replace(
                old, version=old.version + 1, updated_by=by, updated_at=time.time(), deleted=True
            )
            self._save(stored, "deleted")
        self.reload()
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

    # -- placement plans (point 3) and experiments (point 4) ----------------------------------------

    def placements(self) -> list[Placement]:
        """Every placement with a plan in code or set through the API, by name."""
        stored = {c.key: c for c in self.storage.merchandising_configs(PLACEMENT) if c.spec}
        out = []
        for name in sorted({*default_placements(), *stored}):
            c = stored.get(name)
            if c is None:
                out.append(Placement(default_plan(name), True))
            else:
                out.append(
                    Placement(
                        PlacementPlan.from_json(name, c.spec), False, c.version, c.updated_by, c.updated_at
                    )
                )
        return out

    def set_placement(self, plan: PlacementPlan, by: str) -> Placement:
        check_plan(plan)
        with self.storage.transaction():
            old = self.storage.merchandising_config(PLACEMENT, plan.placement)
            stored = StoredConfig(
                PLACEMENT, plan.placement, plan.to_json(), (old.version if old else 0) + 1, by, time.time()
            )
            self.storage.save_merchandising_config(stored, "set")
        self.reload()
        return Placement(plan, False, stored.version, by, stored.updated_at)

    def reset_placement(self, placement: str, by: str) -> Placement:
        """Back to the plan in code."""
        check_text(placement, "placement", MAX_NAME)
        with self.storage.transaction():
            old = self.storage.merchandising_config(PLACEMENT, placement)
            if old is None or not old.spec:
                raise NotFound(
                    f"placement: {placement!r} has no plan set through the API (it runs its default)"
                )
            self.storage.save_merchandising_config(
                StoredConfig(PLACEMENT, placement, "", old.version + 1, by, time.time()), "reset"
            )
        self.reload()
        return Placement(default_plan(placement), True)

    def create_experiment(self, spec: ExperimentSpec, by: str) -> Experiment:
        check_experiment(spec)
        with self.storage.transaction():
            self._check_rule_ids(spec)
            existing = [x for x in self.experiments() if x.spec.enabled]
            if spec.enabled and any(x.spec.placement == spec.placement for x in existing):
                raise FailedPrecondition(
                    f"spec.placement: {spec.placement!r} already runs an experiment; stop it first"
                )
            if len(self.storage.merchandising_configs(EXPERIMENT)) >= MAX_EXPERIMENTS:
                raise InvalidArgument("spec", f"at most {MAX_EXPERIMENTS} experiments")
            stored = StoredConfig(EXPERIMENT, uuid.uuid4().hex[:16], spec.to_json(), 1, by, time.time())
            self.storage.save_merchandising_config(stored, "created")
        self.reload()
        return _experiment(stored)

    def set_experiment_enabled(self, experiment_id: str, enabled: bool, by: str) -> Experiment:
        check_text(experiment_id, "experiment_id", MAX_ID_LENGTH)
        with self.storage.transaction():
            old = self.storage.merchandising_config(EXPERIMENT, experiment_id)
            if old is None or not experiment_id:
                raise NotFound(f"experiment_id: no experiment {experiment_id!r}")
            spec = dataclasses.replace(ExperimentSpec.from_json(old.spec), enabled=enabled)
            if enabled and any(
                x.spec.enabled and x.spec.placement == spec.placement and x.experiment_id != experiment_id
                for x in self.experiments()
            ):
                raise FailedPrecondition(f"{spec.placement!r} already runs another experiment; stop it first")
            stored = StoredConfig(EXPERIMENT, experiment_id, spec.to_json(), old.version + 1, by, time.time())
            self.storage.save_merchandising_config(stored, "started" if enabled else "stopped")
        self.reload()
        return _experiment(stored)

    def experiments(self) -> list[Experiment]:
        found = [_experiment(c) for c in self.storage.merchandising_configs(EXPERIMENT)]
        return sorted(found, key=lambda x: (x.updated_at, x.experiment_id))

    def _check_rule_ids(self, spec: ExperimentSpec) -> None:
        for i, v in enumerate(spec.variants):
            for j, rule_id in enumerate(v.rule_ids):
                stored = self.storage.merchandising_rule(rule_id)
                if stored is None or stored.deleted:
                    raise InvalidArgument(f"spec.variants[{i}].rule_ids[{j}]", f"no rule {rule_id!r}")

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

    def placement_history(self, placement: str = "") -> list[PlacementChange]:
        """Every change of one placement's plan ("" = of every placement), oldest first."""
        if placement:
            check_text(placement, "placement", MAX_NAME)
        out = []
        for c in self.storage.merchandising_config_history(PLACEMENT, placement):
            plan = PlacementPlan.from_json(c.key, c.spec) if c.spec else default_plan(c.key)
            out.append(
                PlacementChange(c.change, Placement(plan, not c.spec, c.version, c.changed_by, c.changed_at))
            )
        return out

    def experiment_history(self, experiment_id: str = "") -> list[ExperimentChange]:
        """Every change of one experiment ("" = of every experiment), oldest first."""
        if experiment_id:
            check_text(experiment_id, "experiment_id", MAX_ID_LENGTH)
            if self.storage.merchandising_config(EXPERIMENT, experiment_id) is None:
                raise NotFound(f"experiment_id: no experiment {experiment_id!r}")
        return [
            ExperimentChange(
                c.change,
                Experiment(c.key, ExperimentSpec.from_json(c.spec), c.version, c.changed_by, c.changed_at),
            )
            for c in self.storage.merchandising_config_history(EXPERIMENT, experiment_id)
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
                fresh = compile_rules(
                    version,
                    self.storage.merchandising_rules(),
                    self.storage.merchandising_configs(PLACEMENT),
                    self.storage.merchandising_configs(EXPERIMENT),
                )
                # the item-only matches before the rules are published, so no request waits for them;
                # a rule unchanged since the last version keeps its matches (no CEL work)
                fresh.matches(self.catalog.snapshot(), wait=True, previous=current)
                self._in_force = current = fresh
            self._checked_at = time.monotonic()
            return current

    def with_rule(self, spec: RuleSpec, rule_id: str = "") -> tuple[RulesInForce, RulesInForce]:
        """(the rules in force without the rule, the same with it): PreviewRule's two answers."""
        condition = check_spec(spec)
        base = self.in_force()
        kept = tuple(c for c in base.rules if c.rule_id != rule_id)
        without = RulesInForce(base.version, kept, base.plans, base.experiments)
        rule = CompiledRule(rule_id or "preview", dataclasses.replace(spec, enabled=True), condition, 1 << 30)
        with_rule = RulesInForce(base.version, (*kept, rule), base.plans, base.experiments)
        snapshot = self.catalog.snapshot()
        for rules in (
            without,
            with_rule,
        ):  # the rules in force keep their matches: only the new one is evaluated
            rules.matches(snapshot, wait=True, previous=base)
        return without, with_rule

    def watch(self, stop: threading.Event) -> threading.Thread:
        """Polls the counter every `refresh_seconds` until `stop`, and warms the item-only matches of a
        new rules or catalogue version, so requests find them computed."""

        def run() -> None:
            while not stop.wait(self.refresh_seconds):
                try:
                    self.reload().matches(self.catalog.snapshot(), wait=True)
                except Exception:  # serving keeps the rules it has; the next period tries again
                    log.exception("could not reload the merchandising rules")

        thread = threading.Thread(target=run, name="merchandising-watch", daemon=True)
        thread.start()
        return thread


def compile_rules(
    version: int,
    stored: list[StoredRule],
    placements: Sequence[StoredConfig] = (),
    experiments: Sequence[StoredConfig] = (),
) -> RulesInForce:
    """The enabled rules compiled, the plans set, the running experiments; a stored rule that no longer
    compiles (a newer runtime) is skipped and logged, never stopping serving."""
    compiled = []
    for n, s in enumerate(stored):
        spec = RuleSpec.from_json(s.spec)
        if not spec.enabled or s.deleted:
            continue
        try:
            compiled.append(CompiledRule(s.rule_id, spec, check_spec(spec), n))
        except InvalidArgument as exc:
            log.error("merchandising rule %s is not applied: %s", s.rule_id, exc)
    plans = {c.key: PlacementPlan.from_json(c.key, c.spec) for c in placements if c.spec}
    running = [_experiment(c) for c in experiments]
    by_placement = {x.spec.placement: x for x in running if x.spec.enabled}
    return RulesInForce(version, tuple(compiled), plans, by_placement)


def _experiment(c: StoredConfig) -> Experiment:
    return Experiment(c.key, ExperimentSpec.from_json(c.spec), c.version, c.updated_by, c.updated_at)


def _rule(s: StoredRule) -> Rule:
    return Rule(s.rule_id, RuleSpec.from_json(s.spec), s.version, s.updated_by, s.updated_at, s.created_at)
