"""The service as one object: what every transport (gRPC, CLI, a batch job) calls.

It wires the store, catalogue, model registry and recommender over one SQLite file and one
models folder, as the settings say.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from models.catalog import Catalog
from models.domain import BatchResult, Event, Identifier, Item, TrackResult
from models.errors import AlreadyRunning, InvalidArgument, NotFound
from models.events import EventStore
from models.identity import pii
from models.identity.attributes import CustomerAttributes
from models.identity.graph import IdentifyResult, IdentityGraph
from models.insights import profile, reports
from models.insights.reminders import DueReminders, Reminder
from models.learning import schedule, trainer
from models.privacy.rights import ConsentRecord, ExportDocument, ForgetResult, Privacy, erase_from_models
from models.serving import foldin
from models.serving.channel_rules import Policy
from models.serving.complements import Complements
from models.serving.popularity import Popularity
from models.serving.recommender import Recommendation, Recommended, Recommender, RecommendQuery
from models.serving.registry import ModelRegistry, new_version
from models.serving.served import ServedLog
from models.settings import Settings
from models.storage import open_storage
from models.validation import check_batch_size

log = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    version: str = ""
    trained_at: float | None = None
    customers: int = 0
    items: int = 0
    interactions: int = 0
    events_stored: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class Seenext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = open_storage(settings.db_path, settings.sync_full)
        self.graph = IdentityGraph(
            self.db,
            pii.open_key(settings.pii_key_path, self.db),
            settings.phone_country_code,
            settings.device_link_limit,
        )
        self.store = EventStore(self.db, self.graph)
        self.privacy = Privacy(
            self.db,
            self.graph,
            {
                "marketing": settings.consent_default_marketing,
                "profiling": settings.consent_default_profiling,
            },
        )
        self.catalog = Catalog(self.db)
        self.customer_attributes = CustomerAttributes(self.db, self.graph)
        self.registry = ModelRegistry(settings.models_dir, keep=settings.models_kept)
        self.registry.refresh()
        self.popularity = Popularity(self.db, settings.popular_window_days)
        self.served = ServedLog(self.db)
        self.complements = Complements(
            self.db,
            settings.complement_days,
            settings.complement_min_support,
            settings.complement_min_lift,
        )
        self.recommender = Recommender(
            self.store,
            self.catalog,
            self.registry,
            self.popularity,
            self.served,
            max_k=settings.max_k,
            holdout=settings.holdout,
            complements=self.complements,
            policy=Policy(
                email_repeat_days=settings.email_repeat_days,
                email_retry_minutes=settings.email_retry_minutes,
                owned_days=settings.owned_complement_days,
            ),
            tuning=foldin.Tuning.from_settings(settings),
        )
        self.recommender.has_consent = self.privacy.has_consent  # e-mail marketing and profiling opt-outs
        self.reminders = DueReminders(
            self.db, self.catalog, self.registry, self.recommender, slack_days=settings.reminder_slack_days
        )
        self._train_lock = threading.Lock()
        self._stop = threading.Event()

    def start_background(self) -> None:
        """Follows models trained by other processes sharing the data folder; warms the serving caches;
        retrains on schedule."""
        self.registry.watch(self.settings.reload_seconds, self._stop)
        self.warm()
        if self.settings.retrain_every_hours > 0:
            self.schedule = self.retrain_schedule().start()

    def retrain_schedule(
        self, every_seconds: float | None = None, stop: threading.Event | None = None
    ) -> schedule.RetrainSchedule:
        """Background retraining (default every `retrain_every_hours`) when events newer than the model arrived."""

        def reference() -> float | None:
            model = self.registry.current
            return foldin.reference_time(model) if model is not None else None

        return schedule.RetrainSchedule(
            self.train,
            lambda: schedule.has_new_events(self.store.newest_event_time, reference),
            every_seconds or self.settings.retrain_every_hours * 3600.0,
            stop or self._stop,
        )

    def warm(self) -> None:
        """Builds what serving reads (catalogue snapshot, item space, complements, popularity) now, so the
        first request — a till with a 150 ms deadline — does not pay for it."""
        snapshot = self.catalog.snapshot()
        model = self.registry.current
        if model is not None:
            model.items(snapshot)
        self.complements.table(model.version if model is not None else "")
        self.popularity.top("")

    def close(self) -> None:
        self._stop.set()
        self.served.close()
        self.db.close()

    # -- events and catalogue ----------------------------------------------------------------------

    def track(self, event: Event) -> TrackResult:
        return self.store.track(event)

    def track_batch(self, events: Sequence[Event]) -> BatchResult:
        check_batch_size(len(events), "events", "event")
        return self.store.track_batch(events)

    def upsert_items(self, items: Sequence[Item]) -> int:
        return self.catalog.upsert(items)

    def get_item(self, item_id: str) -> Item:
        return self.catalog.get(item_id)

    # -- recommendations -----------------------------------------------------------------------------

    def recommend(self, query: RecommendQuery) -> Recommendation:
        return self.recommender.recommend(query)

    def recommend_batch(
        self,
        who: list[Identifier],
        channel: str,
        placement: str = "",
        k: int = 0,
        explain: bool = False,
    ) -> Iterator[Recommendation]:
        """A campaign list, one recommendation per identifier in order, produced lazily."""
        return self.recommender.recommend_batch(who, channel, placement, k, explain)

    def similar_items(
        self, item_id: str, k: int = 0, channel: str = "", store_id: str = ""
    ) -> tuple[list[Recommended], str]:
        return self.recommender.similar_items(item_id, k, channel, store_id)

    def due_reminders(
        self, window_start: float | None, window_end: float | None, k: int = 0, channel: str = ""
    ) -> Iterator[Reminder]:
        """Customers due for a seasonal or replenishment reminder in the window, streamed."""
        return self.reminders.due(window_start, window_end, k, channel)

    # -- identity, profile, privacy (docs/identity.md) ---------------------------------------------------

    def identify(self, identifiers: Sequence[Identifier]) -> IdentifyResult:
        return self.graph.identify(identifiers, time.time())

    def get_profile(
        self, who: Identifier | None, timeline_limit: int = 0, page_token: str = "", offers: int = 5
    ) -> profile.Profile:
        """The call-centre page; NOT_FOUND for an unknown identifier."""
        customer_id = self.privacy.require_customer(who)
        snapshot = self.catalog.snapshot()
        page = profile.build(
            self.db,
            self.graph,
            snapshot,
            customer_id,
            self.privacy.consents(customer_id),
            timeline_limit,
            page_token,
        )
        if offers:
            rec = self.recommend(
                RecommendQuery(channel="CALL_CENTER", who=who, placement="profile", k=offers, explain=True)
            )
            page.next_best_offers = rec.items
        return page

    def set_consent(
        self, who: Identifier | None, channel: str, purpose: str, granted: bool
    ) -> tuple[str, ConsentRecord]:
        return self.privacy.set_consent(who, channel, purpose, granted)

    def has_consent(self, customer_id: str, channel: str, purpose: str) -> bool:
        """Whether `purpose` ("marketing", "profiling") is allowed in `channel`; see models/privacy/rights.py."""
        return self.privacy.has_consent(customer_id, channel, purpose)

    def forget(self, who: Identifier | None) -> ForgetResult:
        """Erases the customer everywhere (story 7); an identifier nobody has erases nothing."""
        customer_id = self.privacy.customer_of(who)
        if customer_id is None:
            return ForgetResult("")
        with self._training_paused():  # a training reading the store now would bring the vectors back
            self.served.flush()
            result, ids = self.privacy.erase(customer_id)
            result.model_versions = erase_from_models(self.registry, ids)
            self.served.flush()  # a Recommend that was in flight may have logged them after the erase
            result.recommendations += self.privacy.delete_recommendations(ids)
            self.privacy.checkpoint()
        # The id is not logged: the log must not remember whom it forgot.
        log.info(
            "a customer was forgotten: %d events, %d identifiers, %d model versions",
            result.events,
            result.identifiers,
            result.model_versions,
        )
        return result

    def export(self, who: Identifier | None) -> Iterator[ExportDocument]:
        """Everything held about the customer (right of access); NOT_FOUND for an unknown identifier."""
        return self.privacy.export(self.privacy.require_customer(who))

    # -- model ---------------------------------------------------------------------------------------

    def train(self) -> ModelInfo:
        """Trains on everything stored and swaps the new model in; one training at a time."""
        with self._exclusive_training():
            started = time.perf_counter()
            artifact = trainer.train(
                self.store.interaction_log(),
                self.catalog.all_items(),
                self.settings,
                new_version(),
                user_attributes=self.customer_attributes.all(),
            )
            self.registry.publish(artifact)
            self.popularity.invalidate()
            self.complements.refresh(artifact.version)
            log.info("training took %.1fs in all", time.perf_counter() - started)
        return self.model_info()

    def model_info(self, version: str | None = None) -> ModelInfo:
        if version is None:
            current = self.registry.current
            manifest: dict[str, Any] = current.manifest if current is not None else {}
        else:
            manifest = self.registry.manifest(version)
        return ModelInfo(
            version=manifest.get("version", ""),
            trained_at=manifest.get("trained_at"),
            customers=manifest.get("customers", 0),
            items=manifest.get("items", 0),
            interactions=manifest.get("interactions", 0),
            events_stored=self.store.count_events(),
            metrics=dict(manifest.get("metrics", {})),
        )

    def list_models(self) -> list[ModelInfo]:
        return [self.model_info(v) for v in self.registry.versions()]

    def rollback(self, version: str) -> ModelInfo:
        if not version:
            raise InvalidArgument("model_version", "is required")
        self.registry.rollback(version)
        return self.model_info()

    # -- insights (story 6) ---------------------------------------------------------------------------

    def channel_report(
        self, start: float | None = None, end: float | None = None, attribution_days: int = 0
    ) -> reports.ChannelReport:
        """Per channel and arm: what recommendations earned, and the uplift over the hold-out."""
        self.served.flush()  # recommendations answered a moment ago count too
        return reports.channel_report(
            self.db,
            start,
            end,
            attribution_days,
            seed=self.settings.seed,
            default_days=self.settings.attribution_days,
        )

    def funnel_report(self, start: float | None = None, end: float | None = None) -> reports.FunnelReport:
        """Step-by-step conversion along cross-channel journeys, and where customers drop off."""
        return reports.funnel_report(self.db, start, end)

    @contextmanager
    def _training_paused(self) -> Iterator[None]:
        """Waits for a training of this process or of another one on this data folder to end, and holds it off."""
        with self._train_lock, open(self.settings.models_dir / "train.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _exclusive_training(self) -> Iterator[None]:
        if not self._train_lock.acquire(blocking=False):
            raise AlreadyRunning("a training is already running in this server; try again when it ends")
        lock_path = self.settings.models_dir / "train.lock"
        try:
            with open(lock_path, "w") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise AlreadyRunning("a training is already running on this data folder") from None
                yield
        finally:
            self._train_lock.release()


__all__ = ["ModelInfo", "NotFound", "Seenext"]
