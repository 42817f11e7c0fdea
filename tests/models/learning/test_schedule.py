"""Scheduled retraining: trains only when events newer than the model arrived, serving goes on."""

from __future__ import annotations

import threading
import time

import pytest

from models.domain import Event, Identifier
from models.learning.schedule import RetrainSchedule, has_new_events
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from tests.conftest import NOW


def fresh_purchase(n: int) -> Event:
    """A purchase newer than the tiny history (stamped up to NOW) and not ahead of the clock: a model never
    takes a time still ahead as its reference (models/learning/trainer.py), so an event stamped NOW + n
    stayed "newer than the model" after a retrain that ran within n seconds of the suite's start."""
    return Event(
        f"sched-{n}",
        (Identifier("CUSTOMER_ID", f"late-{n}"),),
        "WEB",
        "PURCHASE",
        "laptop-1",
        occurred_at=max(NOW, time.time()),
    )


def test_run_once_trains_only_when_there_is_something_new(trained: Seenext) -> None:
    schedule = trained.retrain_schedule(every_seconds=3600)
    first = trained.serving_model.version  # type: ignore[union-attr]
    assert schedule.run_once() is False  # nothing newer than the model
    trained.track(fresh_purchase(1))
    assert schedule.run_once() is True
    second = trained.serving_model
    assert second is not None and second.version != first and second.user_row("late-1") is not None
    assert schedule.run_once() is False
    assert trained.model_versions()[:2] == [second.version, first]  # the old one kept for rollback


def test_has_new_events() -> None:
    assert has_new_events(lambda: None, lambda: None) is False  # empty store
    assert has_new_events(lambda: 5.0, lambda: None) is True  # events, no model
    assert has_new_events(lambda: 5.0, lambda: 5.0) is False
    assert has_new_events(lambda: 6.0, lambda: 5.0) is True


def test_a_failing_training_keeps_the_schedule_and_the_model() -> None:
    def broken() -> None:
        raise RuntimeError("disk full")

    schedule = RetrainSchedule(broken, lambda: True, 60.0, threading.Event())
    assert schedule.run_once() is False and schedule.trainings == 0
    with pytest.raises(ValueError, match="every_seconds"):
        RetrainSchedule(broken, lambda: True, 0.0, threading.Event())


def test_background_schedule_retrains_while_recommend_answers(trained: Seenext) -> None:
    stop = threading.Event()
    schedule = trained.retrain_schedule(every_seconds=0.05, stop=stop)
    first = trained.serving_model.version  # type: ignore[union-attr]
    trained.track(fresh_purchase(2))
    schedule.start()
    answered = 0
    deadline = time.monotonic() + 30
    try:
        while trained.serving_model.version == first and time.monotonic() < deadline:  # type: ignore[union-attr]
            rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=3))
            assert len(rec.items) == 3
            answered += 1
    finally:
        stop.set()
        schedule.join(timeout=30)
    assert trained.serving_model.version != first  # type: ignore[union-attr]
    assert schedule.trainings >= 1 and answered >= 1
