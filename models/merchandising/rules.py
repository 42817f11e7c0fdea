"""A business rule as a merchandiser writes it, checked; its JSON form in storage; its versions.

A rule applies to some placements and channels (none named: all), holds a CEL condition over the item
and the request's context (models/merchandising/cel_engine.py) and one action on the items it matches:
include only them, exclude them, boost or bury them by a factor, pin the best of them at a place,
or reserve a share of the list's places for them (a promotion). docs/merchandising.md has examples.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from models.domain import CHANNELS
from models.errors import InvalidArgument
from models.merchandising.cel_engine import Condition, compile_condition
from models.validation import MAX_NAME_LENGTH, check_text

INCLUDE_ONLY = "include_only"
EXCLUDE = "exclude"
BOOST = "boost"
BURY = "bury"
PIN = "pin"
RESERVE = "reserve"
ACTIONS = (INCLUDE_ONLY, EXCLUDE, BOOST, BURY, PIN, RESERVE)
FILTERS = frozenset({INCLUDE_ONLY, EXCLUDE})  # act as filters: every channel's list stays a subset
MAX_RULE_NAME = 128
MAX_POSITION = 100  # a list holds at most 100 items (max k)
MAX_WEIGHT = 1000.0
MAX_SCOPE = 50  # placements or channels one rule names


@dataclass(frozen=True)
class RuleSpec:
    """The definition of a rule (what the API's RuleSpec carries)."""

    name: str
    condition: str
    action: str
    placements: tuple[str, ...] = ()  # () = every placement
    channels: tuple[str, ...] = ()  # () = every channel
    weight: float = 0.0  # boost / bury: the factor (> 1)
    position: int = 0  # pin: 1-based place
    share: float = 0.0  # reserve: share of the list's places, in (0, 1]
    enabled: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RuleSpec:
        d = json.loads(text)
        d["placements"] = tuple(d.get("placements", ()))
        d["channels"] = tuple(d.get("channels", ()))
        return cls(**d)

    def applies_to(self, placement: str, channel: str) -> bool:
        return (not self.placements or placement in self.placements) and (
            not self.channels or channel in self.channels
        )


@dataclass(frozen=True)
class Rule:
    """A stored rule: its definition, version and last change."""

    rule_id: str
    spec: RuleSpec
    version: int
    updated_by: str
    updated_at: float
    created_at: float = 0.0


@dataclass(frozen=True)
class RuleChange:
    """One line of a rule's history: the rule as the change left it."""

    rule_id: str
    version: int
    change: str  # created, updated, enabled, disabled, deleted
    changed_by: str
    changed_at: float
    spec: RuleSpec


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to serve: its spec and its compiled condition."""

    rule_id: str
    spec: RuleSpec
    condition: Condition
    order: int = 0  # creation order: pins and reservations are applied in it
    extra: dict[str, float] = field(default_factory=dict)


def check_spec(spec: RuleSpec, prefix: str = "spec") -> Condition:
    """Checks every field (errors name `prefix.field`); returns the compiled condition."""
    check_text(spec.name, f"{prefix}.name", MAX_RULE_NAME)
    if not spec.name.strip():
        raise InvalidArgument(f"{prefix}.name", "is required: say what the rule is for")
    if spec.action not in ACTIONS:
        raise InvalidArgument(
            f"{prefix}.action", f"must be one of {', '.join(a.upper() for a in ACTIONS)}, got {spec.action!r}"
        )
    if len(spec.placements) > MAX_SCOPE:
        raise InvalidArgument(f"{prefix}.placements", f"at most {MAX_SCOPE}, got {len(spec.placements)}")
    for i, placement in enumerate(spec.placements):
        check_text(placement, f"{prefix}.placements[{i}]", MAX_NAME_LENGTH)
        if not placement:
            raise InvalidArgument(f"{prefix}.placements[{i}]", "must not be empty")
    for i, channel in enumerate(spec.channels):
        if channel not in CHANNELS:
            raise InvalidArgument(
                f"{prefix}.channels[{i}]", f"must be one of {', '.join(CHANNELS)}, got {channel!r}"
            )
    if spec.action in (BOOST, BURY) and not 1.0 < spec.weight <= MAX_WEIGHT:
        raise InvalidArgument(
            f"{prefix}.weight",
            f"{spec.action.upper()} needs a factor above 1 and at most {MAX_WEIGHT:g}, got {spec.weight:g}",
        )
    if spec.action == PIN and not 1 <= spec.position <= MAX_POSITION:
        raise InvalidArgument(
            f"{prefix}.position", f"PIN needs a place from 1 to {MAX_POSITION}, got {spec.position}"
        )
    if spec.action == RESERVE and not 0.0 < spec.share <= 1.0:
        raise InvalidArgument(
            f"{prefix}.share", f"RESERVE needs a share above 0 and at most 1, got {spec.share:g}"
        )
    return compile_condition(spec.condition, f"{prefix}.condition")
