"""Storage interface: consent decisions, erasure of a customer's rows, the export of their data."""

from __future__ import annotations

from abc import ABC


class PrivacyStorage(ABC):  # noqa: B024 (methods are added per concern)
    """Consent decisions, erasure of a customer's rows, and the export of everything held on them."""
