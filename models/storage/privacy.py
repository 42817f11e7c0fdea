"""Storage interface: consent decisions, erasure of a customer's rows, the export of their data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """One recorded decision; `channel` is the stored one ("ALL" for every channel)."""

    channel: str
    purpose: str
    granted: bool
    updated_at: float


class PrivacyStorage(ABC):
    """Consent decisions, erasure of a customer's rows, and the export of everything held on them."""

    @abstractmethod
    def set_consent(self, customer_id: str, channel: str, purpose: str, granted: bool, at: float) -> None:
        """Records (or replaces) one decision; `channel` as stored ("ALL" for every channel)."""

    @abstractmethod
    def consent_rows(self, customer_id: str) -> list[ConsentRow]:
        """The customer's decisions, by purpose then channel."""

    @abstractmethod
    def consent_decisions(
        self, customer_ids: Sequence[str], channel: str, purpose: str
    ) -> dict[str, dict[tuple[str, str], bool]]:
        """For each listed customer with a decision for `purpose` in `channel` or in every channel:
        {(stored channel, purpose): granted} (a campaign list at once)."""

    @abstractmethod
    def erase_customer(self, customer_ids: Sequence[str]) -> dict[str, int]:
        """Deletes every row that carries one of the ids, in every table with a customer id, and the
        customers and merges themselves, in one transaction; rows deleted per table."""

    @abstractmethod
    def add_pending_erasures(self, model_user_ids: Sequence[str], at: float) -> None:
        """Records ids whose rows every kept model version must lose; called in the erase's transaction,
        so a kill after the erase commits still leaves the record (models/privacy/rights.py)."""

    @abstractmethod
    def pending_erasures(self) -> list[str]:
        """Ids erased from the store whose model rows may still be on disk, sorted."""

    @abstractmethod
    def clear_pending_erasures(self, model_user_ids: Sequence[str]) -> None:
        """Drops the record once no kept model version holds the ids."""

    @abstractmethod
    def delete_recommendations(self, customer_ids: Sequence[str]) -> int:
        """Served-recommendation rows of the ids (written by the asynchronous log during an erase)."""

    @abstractmethod
    def compact(self) -> None:
        """Makes deleted rows leave the database's logs and free space too (erasure is complete on disk)."""

    @abstractmethod
    def customer_created_at(self, customer_id: str) -> float | None:
        """When the customer was first seen (None for an id that is not a customer)."""

    @abstractmethod
    def customer_rows(
        self, customer_ids: Sequence[str], skip: Sequence[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(table, row) for every row of the ids in every table with a customer id, except `skip`;
        events in the order they happened."""
