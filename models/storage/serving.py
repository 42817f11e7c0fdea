"""Storage interface: what serving reads and writes — the customer state of one request (read at
once), popularity counts, co-purchase baskets, and the log of recommendations served."""

from __future__ import annotations

from abc import ABC


class ServingStorage(ABC):  # noqa: B024 (methods are added per concern)
    """The customer state of a request, popularity, baskets for complements, the served log."""
