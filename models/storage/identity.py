"""Storage interface: identifiers, customers, merges, customer attributes, the PII key check."""

from __future__ import annotations

from abc import ABC


class IdentityStorage(ABC):  # noqa: B024 (methods are added per concern)
    """The identity graph's rows: identifiers, customers, merges, attributes, the PII key check."""
