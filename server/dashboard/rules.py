"""The merchandising-rules section's data: the rules in force and their history, in one small shape.

The page renders a `RulesSection` and knows nothing of where it came from. `seenext dashboard` passes
`rules_over_rpc(api.channel)`: MerchandisingService's ListRules and GetRuleHistory read with the
visitor's key, like every other figure of the page, and `section_from_replies` turns the two replies
into this shape; the page shows them unchanged. `no_rules` is the empty source (tests, screenshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from protos.seenext.v1 import common_pb2, merchandising_pb2, merchandising_pb2_grpc


@dataclass(frozen=True)
class RuleRow:
    """One rule as it stands, as text for people: the page escapes every field."""

    rule_id: str
    name: str  # what the rule is for
    placement: str  # e.g. "home, product"; "" = every placement
    channel: str  # e.g. "WEB"; "" = every channel
    condition: str  # the expression, e.g. 'item.brand == "nova"'
    action: str  # e.g. "boost by 2", "exclude", "pin at 1"
    enabled: bool  # in force, or stored and off (being previewed)
    version: int  # the rule's version now
    changed_by: str  # the API key's name that made this version
    changed_at: float  # Unix seconds


@dataclass(frozen=True)
class RuleChange:
    """One entry of the rules' history: who changed which rule, when, and what it became."""

    rule_id: str
    version: int
    change: str  # e.g. "created", "updated", "enabled", "disabled", "deleted"
    summary: str  # what the version says, e.g. 'boost by 2 when item.brand == "nova"'
    changed_by: str
    changed_at: float


@dataclass(frozen=True)
class RulesSection:
    rules: tuple[RuleRow, ...] = ()
    history: tuple[RuleChange, ...] = ()  # newest first
    note: str = ""  # why nothing can be shown (a key without the scope to read rules), for the reader


# What reads the rules for a visitor, given their API key (a source that calls an RPC uses it).
RulesSource = Callable[[str], RulesSection]


def no_rules(api_key: str) -> RulesSection:
    """A source with nothing in force and no history."""
    return RulesSection()


def rules_over_rpc(channel: grpc.Channel, timeout: float = 30.0) -> RulesSource:
    """The rules through MerchandisingService.ListRules and GetRuleHistory, with the visitor's key
    (the scope "rules", which "insights" and "merchandising" grant: server/auth.py)."""
    pb = merchandising_pb2
    stub = merchandising_pb2_grpc.MerchandisingServiceStub(channel)

    def read(api_key: str) -> RulesSection:
        auth = (("authorization", f"Bearer {api_key}"),)
        try:
            rules = stub.ListRules(pb.ListRulesRequest(), metadata=auth, timeout=timeout)
            history = stub.GetRuleHistory(pb.GetRuleHistoryRequest(), metadata=auth, timeout=timeout)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                return RulesSection(note=f"This key may not read the rules: {err.details()}")
            raise
        return section_from_replies(rules, history, pb.RuleAction.Name)

    return read


def section_from_replies(rules: Any, history: Any, action_name: Callable[[int], str]) -> RulesSection:
    """ListRulesResponse and GetRuleHistoryResponse (oldest first) as the section's shape."""
    return RulesSection(
        rules=tuple(
            RuleRow(
                rule_id=r.rule_id,
                name=r.spec.name,
                placement=", ".join(r.spec.placements),
                channel=", ".join(_channel(c) for c in r.spec.channels),
                condition=r.spec.condition,
                action=_action(r.spec, action_name),
                enabled=r.spec.enabled,
                version=r.version,
                changed_by=r.updated_by,
                changed_at=_seconds(r.updated_at),
            )
            for r in rules.rules
        ),
        history=tuple(
            RuleChange(
                rule_id=c.rule_id,
                version=c.version,
                change=c.change,
                summary=f"{_action(c.spec, action_name)} when {c.spec.condition or 'always'}",
                changed_by=c.changed_by,
                changed_at=_seconds(c.changed_at),
            )
            for c in reversed(history.changes)
        ),
    )


def _action(spec: Any, action_name: Callable[[int], str]) -> str:
    name = action_name(spec.action).removeprefix("RULE_ACTION_")
    if name in ("BOOST", "BURY"):
        return f"{name.lower()} by {spec.weight:g}"
    if name == "PIN":
        return f"pin at {spec.position}"
    if name == "RESERVE":
        return f"reserve {spec.share:.0%} of places"
    return name.lower().replace("_", " ")


def _channel(value: int) -> str:
    try:
        return common_pb2.Channel.Name(value).removeprefix("CHANNEL_")
    except ValueError:
        return f"channel {value}"


def _seconds(ts: Any) -> float:
    return float(ts.seconds) + float(ts.nanos) / 1e9
