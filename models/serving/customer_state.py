"""One customer state per request: everything a request needs about the customer, read at once.

The recommender reads a `CustomerState` once (models/storage: one statement; none at all for an
anonymous request); fold-in, repurchase, channel rules and candidates are then pure functions of
this state, the model and the catalogue snapshot — none of them reads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from models.privacy.consent import Decisions
from models.storage.serving import CustomerRecord, ItemEvent, StateWindow, Tally

__all__ = ["ANONYMOUS", "CustomerState", "ItemEvent", "StateWindow", "Tally"]


@dataclass(frozen=True)
class CustomerState:
    """What is known about the customer of one request (all empty for an anonymous one)."""

    customer_id: str | None = None  # None: no identifier, unknown, or a device marked shared
    aliases: tuple[str, ...] = ()  # ids merged into this customer (a model trained before knows them)
    purchases: Mapping[str, Tally] = field(default_factory=dict)  # item -> (last PURCHASE, count)
    returns: Mapping[str, Tally] = field(default_factory=dict)  # item -> (last RETURN, count)
    recent: tuple[ItemEvent, ...] = ()  # item events since the window's start, newest first
    consents: Decisions = field(default_factory=dict)  # (channel or ALL, purpose) -> granted
    mailed: frozenset[str] = frozenset()  # items mailed recently (EMAIL_SENT, EMAIL recommendations)

    @classmethod
    def of(cls, record: CustomerRecord) -> CustomerState:
        return cls(
            record.customer_id,
            record.aliases,
            record.purchases,
            record.returns,
            record.recent,
            record.consents,
            record.mailed,
        )

    @property
    def known(self) -> bool:
        return self.customer_id is not None

    def kept(self) -> dict[str, float]:
        """item -> last purchase time, of what the customer bought more often than they returned.

        Worked out once per state: a request asks three times (exclusions, ranking, rules), and a
        customer with a long history has hundreds of purchases. The same dict each time: read only."""
        return self._kept

    def bought(self) -> list[tuple[str, float, int]]:
        """(item, last purchase time, times bought) of every purchase (returns do not count here).
        Worked out once per state (exclusions and the repurchase blend both ask); read only."""
        return self._bought

    @cached_property
    def _kept(self) -> dict[str, float]:
        returns = self.returns
        if not returns:
            return {item_id: bought.last for item_id, bought in self.purchases.items() if bought.times > 0}
        return {
            item_id: bought.last
            for item_id, bought in self.purchases.items()
            if bought.times > (r.times if (r := returns.get(item_id)) is not None else 0)
        }

    @cached_property
    def _bought(self) -> list[tuple[str, float, int]]:
        return [(i, t.last, t.times) for i, t in self.purchases.items() if i]

    def events_after(self, at: float) -> list[ItemEvent]:
        """The recent item events strictly after a time, newest first."""
        return [e for e in self.recent if e.at > at]


ANONYMOUS = CustomerState()
