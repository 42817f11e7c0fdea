"""The one consent decision: what a customer allowed, with the installation's defaults.

Consent is recorded per customer, channel and purpose; a decision recorded for every channel is
stored under `ALL_CHANNELS`. A decision for the channel wins over one for every channel; with
neither, the configured default applies (marketing refused and profiling allowed, unless
SEENEXT_CONSENT_DEFAULT_* say otherwise). Recommend, RecommendBatch, DueReminders and the profile
all decide through `allows`, so they can never disagree about the same customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PURPOSES = ("marketing", "profiling")
ALL_CHANNELS = "ALL"  # stored channel of a decision that covers every channel

# (channel or ALL_CHANNELS, purpose) -> granted: a customer's recorded decisions
Decisions = Mapping[tuple[str, str], bool]


@dataclass(frozen=True)
class ConsentDefaults:
    """What applies when a customer recorded no decision (from Settings)."""

    marketing: bool = False
    profiling: bool = True

    def of(self, purpose: str) -> bool:
        return {"marketing": self.marketing, "profiling": self.profiling}.get(purpose, False)


def recorded(decisions: Decisions, channel: str, purpose: str) -> bool | None:
    """The customer's own decision for `purpose` in `channel` (else for every channel), or None."""
    decided = decisions.get((channel or ALL_CHANNELS, purpose))
    if decided is None:
        decided = decisions.get((ALL_CHANNELS, purpose))
    return decided


def allows(decisions: Decisions, channel: str, purpose: str, defaults: ConsentDefaults) -> bool:
    """Whether `purpose` ("marketing", "profiling") is allowed in `channel` for this customer."""
    decided = recorded(decisions, channel, purpose)
    return defaults.of(purpose) if decided is None else decided
