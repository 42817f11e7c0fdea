"""Retraining on a schedule, in the background, while serving goes on.

Every `retrain_every_hours` the schedule checks whether events newer than the serving model's
data have arrived and, if so, trains (the same `Seenext.train` as the Train RPC: one training at a
time per data folder, the new model swapped in with one reference assignment, the last
`models_kept` versions kept for `RollbackModel`). Requests keep being answered by the model they
started with; between trainings, fold-in (models/serving/foldin.py) keeps answers fresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from models.errors import AlreadyRunning

log = logging.getLogger(__name__)


class RetrainSchedule:
    def __init__(
        self,
        train: Callable[[], object],
        has_new_events: Callable[[], bool],
        every_seconds: float,
        stop: threading.Event,
    ) -> None:
        if every_seconds <= 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds}")
        self._train = train
        self._has_new_events = has_new_events
        self.every_seconds = every_seconds
        self._stop = stop
        self.trainings = 0
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Trains if there is something new; True if a new model was trained."""
        if not self._has_new_events():
            return False
        try:
            self._train()
        except AlreadyRunning:
            log.info("scheduled retraining skipped: a training is already running")
            return False
        except Exception:  # a failed training must not end the schedule; the old model keeps serving
            log.exception("scheduled retraining failed; the serving model is unchanged")
            return False
        self.trainings += 1
        return True

    def start(self) -> RetrainSchedule:
        def loop() -> None:
            while not self._stop.wait(self.every_seconds):
                self.run_once()

        self._thread = threading.Thread(target=loop, name="retrain-schedule", daemon=True)
        self._thread.start()
        log.info("retraining every %.2f hours when new events arrived", self.every_seconds / 3600)
        return self

    def join(self, timeout: float | None = None) -> None:
        """Waits for the schedule's thread to end (after its stop event was set)."""
        if self._thread is not None:
            self._thread.join(timeout)


def has_new_events(
    newest_event: Callable[[], float | None], model_reference: Callable[[], float | None]
) -> bool:
    """Events newer than the serving model's data exist (or events and no model at all)."""
    newest = newest_event()
    if newest is None:
        return False
    reference = model_reference()
    return reference is None or newest > reference
