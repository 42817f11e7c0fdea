"""A learned table (rebuy intervals, complements) rebuilt in the background never replaces one a
training stored while the rebuild ran: the rebuild read the store before the training's data."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from models.serving.learned import LearnedTable


@dataclass(frozen=True)
class Table:
    key: str
    data: str
    built_at: float = field(default_factory=time.time)


def test_a_rebuild_begun_before_a_training_does_not_replace_the_training_s_table() -> None:
    reading, release = threading.Event(), threading.Event()
    store = {"data": "before the training"}

    def build(key: str) -> Table:
        data = store["data"]  # what the store holds when the build reads it
        if threading.current_thread().name.endswith("-refresh"):  # the background rebuild: held here
            reading.set()
            assert release.wait(10)
        return Table(key, data)

    table = LearnedTable(build, "rebuy", ttl_seconds=600.0)
    assert table.get("").data == "before the training"
    assert table.get("v1").key == ""  # a new model version: rebuilt in the background, old one served
    assert reading.wait(10)  # the rebuild has read the store as it was
    store["data"] = "after the training"
    assert table.refresh("v1").data == "after the training"  # the training's own rebuild
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "rebuy-refresh"]:
        thread.join(10)
    served = table.get("v1")
    assert (served.key, served.data) == ("v1", "after the training")


def test_a_rebuild_with_nothing_newer_meanwhile_is_served() -> None:
    table = LearnedTable(lambda key: Table(key, f"for {key or 'no model'}"), "complements")
    assert table.get("").data == "for no model"
    table.get("v2")
    for thread in [t for t in threading.enumerate() if t.name == "complements-refresh"]:
        thread.join(10)
    assert table.get("v2").data == "for v2"
