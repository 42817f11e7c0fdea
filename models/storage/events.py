"""Storage interface: the event log — idempotent inserts, a customer's history, the training log."""

from __future__ import annotations

from abc import ABC


class EventStorage(ABC):  # noqa: B024 (methods are added per concern)
    """The event log: idempotent inserts by event_id, a customer's history, the log for training."""
