"""Storage interface: Served recommendations, and the reads of reports, attribution, profile, reminders, popularity and complements."""

from __future__ import annotations

from abc import ABC


class InsightsStorage(ABC):  # noqa: B024 (methods are added per concern)
    """Served recommendations, and the reads of reports, attribution, profile, reminders, popularity and complements."""
