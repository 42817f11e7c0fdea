"""Placement plans as data (issue 12 point 3): the order of candidate sources with their caps, the
exploration share for new items, and the diversity of the list, per placement.

Today's plans (models/serving/channel_rules.py: PLACEMENT_PLANS, and the diversity and exploration
settings) are the defaults; a plan set through MerchandisingService.SetPlacement replaces a
placement's default in every serving process, and ResetPlacement brings the default back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from models.errors import InvalidArgument
from models.merchandising.diversity import DiversityPolicy
from models.serving.channel_rules import PLACEMENT_PLANS, Source
from models.validation import MAX_NAME_LENGTH, check_text

# Every candidate source a plan may name (models/serving/channel_rules.py describes each).
SOURCES = (
    "basket_complements",
    "owned_complements",
    "looked_at",
    "similar_to_item",
    "personalised",
    "popular",
    "exploration",
)
MAX_SOURCE_LIMIT = 1000


@dataclass(frozen=True)
class PlacementPlan:
    """One placement's plan. `exploration_share` and `diversity` None: the settings' values."""

    placement: str
    sources: tuple[Source, ...]
    exploration_share: float | None = None
    diversity: DiversityPolicy | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "sources": [[s.name, s.limit] for s in self.sources],
                "exploration_share": self.exploration_share,
                "diversity": None
                if self.diversity is None
                else [
                    self.diversity.category_share,
                    self.diversity.attribute,
                    self.diversity.near_duplicates,
                ],
            }
        )

    @classmethod
    def from_json(cls, placement: str, text: str) -> PlacementPlan:
        d = json.loads(text)
        div = d.get("diversity")
        return cls(
            placement,
            tuple(Source(str(n), int(limit)) for n, limit in d["sources"]),
            d.get("exploration_share"),
            None if div is None else DiversityPolicy(float(div[0]), str(div[1]), int(div[2])),
        )


def default_plan(placement: str) -> PlacementPlan:
    """The plan in code (an unknown placement is ranked like the home page)."""
    return PlacementPlan(placement, tuple(PLACEMENT_PLANS.get(placement, PLACEMENT_PLANS["home"])))


def default_placements() -> list[str]:
    return list(PLACEMENT_PLANS)


def check_plan(plan: PlacementPlan, prefix: str = "plan") -> None:
    """Every field checked; errors name `prefix.field`."""
    check_text(plan.placement, f"{prefix}.placement", MAX_NAME_LENGTH)
    if not plan.placement:
        raise InvalidArgument(f"{prefix}.placement", "is required")
    if not plan.sources:
        raise InvalidArgument(
            f"{prefix}.sources", f"at least one source is required, from {', '.join(SOURCES)}"
        )
    seen: set[str] = set()
    for i, s in enumerate(plan.sources):
        if s.name not in SOURCES:
            raise InvalidArgument(
                f"{prefix}.sources[{i}].name", f"must be one of {', '.join(SOURCES)}, got {s.name!r}"
            )
        if s.name in seen:
            raise InvalidArgument(f"{prefix}.sources[{i}].name", f"{s.name!r} is named twice")
        seen.add(s.name)
        if not 0 <= s.limit <= MAX_SOURCE_LIMIT:
            raise InvalidArgument(
                f"{prefix}.sources[{i}].limit", f"must be 0 (no cap) to {MAX_SOURCE_LIMIT}, got {s.limit}"
            )
    if plan.exploration_share is not None and not 0.0 <= plan.exploration_share <= 0.25:
        raise InvalidArgument(
            f"{prefix}.exploration_share",
            f"must be 0 to 0.25 (one place in four), got {plan.exploration_share:g}",
        )
    d = plan.diversity
    if d is not None:
        if not 0.0 <= d.category_share <= 1.0:
            raise InvalidArgument(
                f"{prefix}.diversity.category_share", f"must be 0 to 1, got {d.category_share:g}"
            )
        if not 0 <= d.near_duplicates <= 100:
            raise InvalidArgument(
                f"{prefix}.diversity.near_duplicates", f"must be 0 to 100, got {d.near_duplicates}"
            )
        check_text(d.attribute, f"{prefix}.diversity.attribute", MAX_NAME_LENGTH)
