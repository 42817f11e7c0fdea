"""The merchandising-rules section's data: the rules in force and their history, in one small shape.

The page renders a `RulesSection` and knows nothing of where it came from. Today no rules exist
(`no_rules`); when the merchandising rules land, a `RulesSource` that reads them (through their RPC or
the facade) is passed to `serve_dashboard(rules_source=...)` and the page shows them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleRow:
    """One rule in force, as text for people: the page escapes every field."""

    rule_id: str
    placement: str  # e.g. "web.home"; "" = every placement
    channel: str  # e.g. "WEB"; "" = every channel
    condition: str  # the expression, e.g. 'item.brand == "nova"'
    action: str  # e.g. "boost 2.0", "exclude", "pin at 1"
    enabled: bool
    version: int  # the rule's version now in force
    changed_by: str  # the API key's name that made this version
    changed_at: float  # Unix seconds


@dataclass(frozen=True)
class RuleChange:
    """One entry of the rules' history: who changed which rule, when, and how."""

    rule_id: str
    version: int
    change: str  # e.g. "created", "updated", "disabled", "deleted"
    summary: str  # what the version says, e.g. 'boost 2.0 when item.brand == "nova"'
    changed_by: str
    changed_at: float


@dataclass(frozen=True)
class RulesSection:
    rules: tuple[RuleRow, ...] = ()
    history: tuple[RuleChange, ...] = ()  # newest first


# What reads the rules for a visitor, given their API key (a source that calls an RPC uses it).
RulesSource = Callable[[str], RulesSection]


def no_rules(api_key: str) -> RulesSection:
    """The source until merchandising rules exist: nothing in force, no history."""
    return RulesSection()
