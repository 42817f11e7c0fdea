"""Storage interface: everything one request needs about one customer, read at once."""

from __future__ import annotations

from abc import ABC


class CustomerStateStorage(ABC):  # noqa: B024 (methods are added per concern)
    """Everything one request needs about one customer, read at once."""
