"""Storage interface: the reads of reports, attribution, the call-centre profile and reminders."""

from __future__ import annotations

from abc import ABC


class InsightsStorage(ABC):  # noqa: B024 (methods are added per concern)
    """The reads of reports, attribution, the call-centre profile and reminders."""
