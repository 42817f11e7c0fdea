"""The service as one object: what every transport (gRPC, CLI, a batch job) calls.

It wires the store, catalogue, model registry and recommender over one SQLite file and one
models folder, as the settings say.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from models.catalog import Catalog, CatalogSnapshot, Upserted
from models.domain import BatchResult, Event, Identifier, Item, TrackResult
from models.errors import (
    AlreadyRunning,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    disk_fault,
)
from models.events import EventStore, InteractionLog
from models.identity import pii
from models.identity.attributes import CustomerAttributes
from models.identity.graph import IdentifyResult, IdentityGraph
from models.insights import profile, reports
from models.insights.reminders import DueReminders, Reminder
from models.learning import schedule
from models.merchandising.diversity import DiversityPolicy
from models.merchandising.experiments import Experiment, ExperimentSpec
from models.merchandising.merchandiser import ExperimentChange, Merchandiser, Placement, PlacementChange
from models.merchandising.placements import PlacementPlan
from models.merchandising.rules import Rule, RuleChange, RuleSpec
from models.privacy.consent import ConsentDefaults
from models.privacy.rights import ConsentRecord, ExportDocument, ForgetResult, Privacy
from models.serving import foldin
from models.serving.channel_rules import Policy
from models.serving.complements import Complements
from models.serving.customer_state import CustomerState
from models.serving.embeddings import RankingModel
from models.serving.exploration import Exploration, ExplorationPolicy
from models.serving.feed import FeedFollower
from models.serving.lease import FleetLease, Held, LeaseHeld
from models.serving.popularity import Popularity
from models.serving.rebuying import Rebuying, RebuyPolicy
from models.serving.recommender import Recommendation, Recommended, Recommender, RecommendQuery
from models.serving.registry import ModelRegistry, new_version
from models.serving.score_cache import ScoreCache
from models.serving.served import ServedLog
from models.serving.state_cache import CustomerStates
from models.settings import Settings
from models.storage import open_storage
from models.validation import check_batch_size, check_identifier

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
        self._storage = open_storage(
            settings.db_path,
            settings.sync_full,
            database_url=settings.database_url,
            pool_size=settings.database_pool_size,
        )
        self._graph = IdentityGraph(
            self._storage,
            pii.open_key(settings.pii_key_path, self._storage),
            settings.phone_country_code,
            settings.device_link_limit,
        )
        self._events = EventStore(self._storage, self._graph, settings.future_tolerance_seconds)
        self._privacy = Privacy(
            self._storage,
            self._graph,
            ConsentDefaults(settings.consent_default_marketing, settings.consent_default_profiling),
        )
        self._catalog = Catalog(self._storage, settings.catalog_refresh_seconds)
        self._attributes = CustomerAttributes(self._storage, self._graph)
        self._registry = ModelRegistry(
            settings.models_dir, keep=settings.models_kept, forgotten=self._storage.pending_erasures
        )
        self._registry.refresh()
        self._popularity = Popularity(
            self._storage,
            settings.popular_window_days,
            event_weights=foldin.Tuning.from_settings(settings).event_weights,
        )
        self._served = ServedLog(self._storage)
        self._complements = Complements(
            self._storage,
            settings.complement_days,
            settings.complement_min_support,
            settings.complement_min_lift,
        )
        self._rebuying = Rebuying(
            self._storage,
            self._catalog.snapshot,
            RebuyPolicy(
                min_buyers=settings.rebuy_min_buyers,
                min_share=settings.rebuy_min_share,
                due_quantile=settings.rebuy_due_quantile,
                rest_share=settings.substitute_rest_share,
                min_rest_days=settings.durable_min_rest_days,
                horizon_days=settings.rebuy_horizon_days,
            ),
        )
        self._exploration = Exploration(
            self._storage,
            ExplorationPolicy(
                share=settings.exploration_share,
                days=settings.new_item_days,
                customers=settings.new_item_customers,
            ),
            foldin.Tuning.from_settings(settings).event_weights,
        )
        # Customer states in memory: dropped at this process's commits at once, and at other replicas'
        # through the change feed the follower reads (started with the background work).
        self._states = CustomerStates(self._storage, settings.state_cache_size, settings.feed_max_lag_seconds)
        told = self._storage.listen_changes(self._states.apply)
        self._feed = FeedFollower(
            self._storage,
            self._states,
            settings.feed_poll_seconds,
            settings.feed_retention_seconds,
            on_forget=self._forget_in_memory,
            told=told,  # this process's own commits were applied already: passed over, not read back
        )
        self._merchandiser = Merchandiser(self._storage, self._catalog, settings.rules_refresh_seconds)
        self._scores = ScoreCache(settings.score_cache_mb * 2**20)
        diversity = DiversityPolicy(
            settings.diversity_category_share,
            settings.diversity_attribute,
            settings.diversity_near_duplicates,
        )
        self._recommender = Recommender(
            self._storage,
            self._graph,
            self._catalog,
            self._registry,
            self._popularity,
            self._served,
            max_k=settings.max_k,
            holdout=settings.holdout,
            complements=self._complements,
            policy=Policy(
                email_repeat_days=settings.email_repeat_days,
                email_retry_minutes=settings.email_retry_minutes,
                owned_days=settings.owned_complement_days,
                looked_at_days=settings.looked_at_days,
                looked_at_half_life_days=settings.looked_at_half_life_days,
            ),
            tuning=foldin.Tuning.from_settings(settings),
            consent_defaults=ConsentDefaults(
                settings.consent_default_marketing, settings.consent_default_profiling
            ),
            rebuying=self._rebuying,
            exploration=self._exploration,
            states=self._states,
            rules=self._merchandiser.in_force,
            score_cache=self._scores,
            # a product page shows items like the one on it: one category there is the point
            diversity={
                "": diversity,
                "product": DiversityPolicy(0.0, "", settings.diversity_near_duplicates),
            },
        )
        self._reminders = DueReminders(
            self._storage,
            self._catalog,
            self._registry,
            self._recommender,
            slack_days=settings.reminder_slack_days,
        )
        self._train_lock = threading.Lock()
        # one training (or erasure) at a time across the fleet: the file lock below covers one data folder
        self._training_lease = FleetLease(self._storage, "training")
        self._stop = threading.Event()
        self._finish_erasures()  # before anything serves: a Forget a kill interrupted is completed first

    def start_background(self) -> None:
        """Follows models trained by other processes sharing the data folder; warms the serving caches;
        retrains on schedule."""
        self._registry.watch(self.settings.reload_seconds, self._stop)
        self.follow_changes()
        self._merchandiser.watch(self._stop)  # rules changed by another process apply within a second
        self.warm()
        if self.settings.retrain_every_hours > 0:
            self._schedule = self.retrain_schedule().start()

    def _forget_in_memory(self, subjects: set[str]) -> None:
        """A Forget on another replica: the serving model drops those vectors now, and the watch looks
        for the rewritten version at once (models/serving/registry.py)."""
        self._scores.clear()  # what was derived from their vector goes with it
        model = self._registry.current
        if model is not None:
            model.forget(subjects)
        self._registry.check_soon()

    def follow_changes(self) -> None:
        """Catches up with the change feed now, then follows it in the background: customer states are
        served from memory from then on (models/serving/state_cache.py)."""
        if self.settings.state_cache_size > 0 and not self._feed.caught_up.is_set():
            self._feed.follow(self._stop)

    def ready(self) -> bool:
        """Whether this process may take traffic: caught up with the change feed (when it follows it)
        and serving its model when there is one to serve."""
        caught_up = self.settings.state_cache_size <= 0 or self._feed.caught_up.is_set()
        return caught_up and (self._registry.current is not None or not self._registry.versions())

    def wait_ready(self, every: float = 0.1) -> bool:
        """Blocks until `ready()` (True) or until the service is closed (False)."""
        while not self._stop.is_set():
            if self.ready():
                return True
            self._stop.wait(every)
        return False

    def retrain_schedule(
        self, every_seconds: float | None = None, stop: threading.Event | None = None
    ) -> schedule.RetrainSchedule:
        """Background retraining (default every `retrain_every_hours`) when events newer than the model
        arrived."""

        def reference() -> float | None:
            model = self._registry.current
            return foldin.reference_time(model) if model is not None else None

        return schedule.RetrainSchedule(
            self.train,
            lambda: schedule.has_new_events(self._events.newest_event_time, reference),
            every_seconds or self.settings.retrain_every_hours * 3600.0,
            stop or self._stop,
        )

    def warm(self) -> None:
        """Builds what serving reads (catalogue snapshot, item space, complements, popularity) now, so the
        first request — a till with a 150 ms deadline — does not pay for it."""
        snapshot = self._catalog.snapshot()
        model = self._registry.current
        if model is not None:
            model.items(snapshot)
        self._complements.table(model.version if model is not None else "")
        self._rebuying.table(model.version if model is not None else "")
        self._exploration.new_items(snapshot, model)
        self._popularity.top("")
        self._merchandiser.in_force().matches(snapshot)

    def close(self) -> None:
        self._stop.set()
        self._feed.join()  # its poll must not run on a connection being closed
        self._served.close()
        self._storage.close()

    def __enter__(self) -> Seenext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads for the command line, the simulator, the benchmark and tests -------------------------

    def resolve(self, who: Identifier) -> str | None:
        """The customer an identifier recognises (None: unknown, or a shared device)."""
        check_identifier(who, "who")
        return self._graph.lookup(who)

    def aliases(self, customer_id: str) -> list[str]:
        """Ids merged into this customer since they were first seen."""
        return self._graph.aliases(customer_id)

    def purchased_items(self, customer_id: str) -> list[tuple[str, float]]:
        """(item, last purchase time) of what the customer bought and kept."""
        return self._events.purchased_items(customer_id)

    def count_events(self) -> int:
        return self._events.count_events()

    def interaction_log(self) -> InteractionLog:
        """Every item event, as columns (what training reads)."""
        return self._events.interaction_log()

    def item_events(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Every item event, oldest first, as rows of the named columns (offline evaluation)."""
        return self._storage.item_events(columns)

    def account_ids(self, limit: int) -> list[str]:
        """Customer-account ids in order (the traffic simulator's shoppers who log in)."""
        return self._storage.account_ids(limit)

    def catalog_snapshot(self) -> CatalogSnapshot:
        return self._catalog.snapshot()

    def all_items(self) -> list[Item]:
        return self._catalog.all_items()

    @property
    def serving_model(self) -> RankingModel | None:
        """The model version serving now (None before the first training)."""
        return self._registry.current

    def popular(self, channel: str = "", store_id: str = "") -> list[tuple[str, float]]:
        """(item, score) best first: what the popularity fallback offers in a channel or store."""
        return self._popularity.top(channel, store_id)

    def customer_state(
        self,
        who: Identifier | None = None,
        *,
        customer_id: str | None = None,
        mailed_since: float | None = None,
    ) -> CustomerState:
        """What a request knows of a customer (identity, purchases, recent events, consent, and the items
        mailed since a time), read as Recommend reads it: in one statement."""
        return self._recommender.customer_state(
            who, customer_id=customer_id, recent_since=0.0, mailed_since=mailed_since
        )

    def count_statements(self) -> AbstractContextManager[list[str]]:
        """The database statements this thread sends inside the block (tests and benchmarks count reads)."""
        return self._storage.count_statements()

    def runtime_figures(self) -> dict[str, float]:
        """This process's operating figures, read each time the metrics endpoint is scraped (each key
        becomes the gauge `seenext_<key>`; server/metrics.py RUNTIME_FIGURES describes every key).

        A figure that does not apply is left out rather than reported as 0: the replica's position in
        the change feed and its lag (`log_head_sequence`, `foldin_applied_sequence`, `foldin_lag_events`,
        `foldin_lag_seconds`) while it follows the feed, the PostgreSQL pool's use (`db_pool_size`,
        `db_pool_in_use`, `db_pool_waiting`), the score cache's use while it is on."""
        figures = {"events_stored": float(self._events.count_events())}
        model = self._registry.current
        trained_at = model.manifest.get("trained_at") if model is not None else None
        if trained_at is not None:
            figures["model_trained_timestamp_seconds"] = float(trained_at)
            figures["model_age_seconds"] = max(0.0, time.time() - float(trained_at))
        behind = self._feed.seconds_behind()
        if behind is not None:  # following the change feed (what the other replicas wrote)
            head = self._storage.feed_head()
            figures["log_head_sequence"] = float(head)
            figures["foldin_applied_sequence"] = float(self._feed.position)
            figures["foldin_lag_events"] = float(max(0, head - self._feed.position))
            figures["foldin_lag_seconds"] = behind
        figures.update(self._storage.pool_figures())
        if self._scores.max_bytes:
            figures["score_cache_bytes"] = float(self._scores.size_bytes)
            figures["score_cache_hits"] = float(self._scores.hits)
            figures["score_cache_misses"] = float(self._scores.misses)
        return figures

    def reload_model(self) -> bool:
        """Picks up a model another process made current; True when the serving model changed."""
        return self._registry.refresh()

    def model_versions(self) -> list[str]:
        """Kept model versions, oldest first."""
        return self._registry.versions()

    def customer_attributes_of(self, customer_id: str) -> dict[str, str]:
        return self._attributes.get(customer_id)

    def all_customer_attributes(self) -> dict[str, dict[str, str]]:
        return self._attributes.all()

    def upsert_customer_attributes(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> int:
        """Sets imported attributes (age band, segment, …) of identified customers, creating new ones."""
        return self._attributes.upsert(rows)

    def consents(self, customer_id: str) -> list[ConsentRecord]:
        return self._privacy.consents(customer_id)

    def with_consent(self, customer_ids: Sequence[str], channel: str, purpose: str) -> set[str]:
        """The customers of a campaign list who allow `purpose` in `channel`."""
        return self._privacy.with_consent(customer_ids, channel, purpose)

    def import_consents(self, rows: Sequence[tuple[Identifier, str, str, bool, float]]) -> int:
        """Recorded decisions (who, channel, purpose, granted, when) from another system, in one go."""
        return self._privacy.import_consents(rows)

    def flush_served(self) -> None:
        """Writes the recommendations served so far (they are logged off the request path)."""
        self._served.flush()

    # -- events and catalogue ----------------------------------------------------------------------

    def track(self, event: Event) -> TrackResult:
        return self._events.track(event)

    def track_batch(self, events: Sequence[Event]) -> BatchResult:
        check_batch_size(len(events), "events", "event")
        return self._events.track_batch(events)

    def upsert_items(self, items: Sequence[Item], update_mask: Sequence[str] = ()) -> int:
        """Inserts or replaces items; with `update_mask`, replaces only the named fields of stored items.
        Returns how many were written (`upsert_items_checked` says what may not work as meant)."""
        return self._catalog.upsert(items, update_mask).upserted

    def upsert_items_checked(self, items: Sequence[Item], update_mask: Sequence[str] = ()) -> Upserted:
        """`upsert_items`, with the warnings UpsertItems answers: `accessory_for` links to items the
        catalogue does not hold (kept: the main item may come later), each naming its field."""
        return self._catalog.upsert(items, update_mask)

    def get_item(self, item_id: str) -> Item:
        return self._catalog.get(item_id)

    # -- recommendations -----------------------------------------------------------------------------

    def recommend(self, query: RecommendQuery) -> Recommendation:
        return self._recommender.recommend(query)

    def recommend_batch(
        self,
        who: list[Identifier],
        channel: str,
        placement: str = "",
        k: int = 0,
        explain: bool = False,
    ) -> Iterator[Recommendation]:
        """A campaign list, one recommendation per identifier in order, produced lazily."""
        return self._recommender.recommend_batch(who, channel, placement, k, explain)

    def similar_items(
        self, item_id: str, k: int = 0, channel: str = "", store_id: str = ""
    ) -> tuple[list[Recommended], str]:
        return self._recommender.similar_items(item_id, k, channel, store_id)

    def due_reminders(
        self, window_start: float | None, window_end: float | None, k: int = 0, channel: str = ""
    ) -> Iterator[Reminder]:
        """Customers due for a seasonal or replenishment reminder in the window, streamed."""
        return self._reminders.due(window_start, window_end, k, channel)

    # -- identity, profile, privacy (docs/identity.md) ---------------------------------------------------

    def identify(self, identifiers: Sequence[Identifier], trusted: bool = True) -> IdentifyResult:
        """`trusted=False` for a channel's call: it may not change a person it does not prove."""
        return self._graph.identify(identifiers, time.time(), trusted)

    def get_profile(
        self, who: Identifier | None, timeline_limit: int = 0, page_token: str = "", offers: int = 5
    ) -> profile.Profile:
        """The call-centre page; NOT_FOUND for an unknown identifier."""
        customer_id = self._privacy.require_customer(who)
        snapshot = self._catalog.snapshot()
        page = profile.build(
            self._storage,
            self._graph,
            snapshot,
            customer_id,
            self._privacy.consents(customer_id),
            timeline_limit,
            page_token,
            [who] if who is not None else [],
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
        return self._privacy.set_consent(who, channel, purpose, granted)

    def has_consent(self, customer_id: str, channel: str, purpose: str) -> bool:
        """Whether `purpose` ("marketing", "profiling") is allowed in `channel` (privacy/consent.py)."""
        return self._privacy.has_consent(customer_id, channel, purpose)

    def forget(self, who: Identifier | None) -> ForgetResult:
        """Erases the customer everywhere (story 7); an identifier nobody has erases nothing, but still
        finishes an erasure a kill interrupted (its retry finds no customer left in the store)."""
        customer_id = self._privacy.customer_of(who)
        if customer_id is None and not self._privacy.erasures_pending():
            return ForgetResult("")
        result = ForgetResult("")
        ids: list[str] = []
        with self._training_paused():  # a training reading the store now would bring the vectors back
            if customer_id is not None:
                self._served.flush()
                result, ids = self._privacy.erase(customer_id)  # also records the ids as pending
            result.model_versions = self._privacy.finish_erasures(self._registry)
            self._scores.clear()  # scores derived from the forgotten vector leave memory with it
            if ids:
                self._served.flush()  # a Recommend that was in flight may have logged them after the erase
                result.recommendations += self._privacy.delete_recommendations(ids)
            self._privacy.checkpoint()
        # The id is not logged: the log must not remember whom it forgot.
        log.info(
            "a customer was forgotten: %d events, %d identifiers, %d model versions",
            result.events,
            result.identifiers,
            result.model_versions,
        )
        return result

    def _finish_erasures(self) -> None:
        """Completes pending erasures at start-up. Should the disk refuse, the start goes on: the registry
        keeps the pending ids out of every model it serves, and the next Forget or start retries."""
        if not self._privacy.erasures_pending():
            return
        try:
            with self._training_paused():
                versions = self._privacy.finish_erasures(self._registry)
                self._privacy.checkpoint()
        except OSError as exc:
            log.error("an interrupted erasure could not be finished at start (%s); it is retried", exc)
            return
        log.info("an interrupted erasure was finished: %d model versions rewritten", versions)

    def export(self, who: Identifier | None) -> Iterator[ExportDocument]:
        """Everything held about the customer (right of access); NOT_FOUND for an unknown identifier."""
        shown = [who] if who is not None else []
        return self._privacy.export(self._privacy.require_customer(who), shown)

    # -- model ---------------------------------------------------------------------------------------

    def train(self) -> ModelInfo:
        """Trains on everything stored and swaps the new model in; one training at a time."""
        # Imported here: LightFM, scipy and pandas are ~100 MB a serving process that never trains
        # would hold (docs/performance.md, "Serving memory").
        from models.learning import trainer

        with self._exclusive_training():
            started = time.perf_counter()
            artifact = trainer.train(
                self._events.interaction_log(),
                self._catalog.all_items(),
                self.settings,
                new_version(),
                user_attributes=self._attributes.all(),
            )
            try:
                self._registry.publish(artifact)
            except BaseException as exc:
                serving = self._registry.current
                if serving is None or serving.version != artifact.version:  # a half-written version
                    shutil.rmtree(self.settings.models_dir / artifact.version, ignore_errors=True)
                if isinstance(exc, OSError):  # a full or failing disk: RESOURCE_EXHAUSTED / UNAVAILABLE
                    raise disk_fault(exc, f"writing model {artifact.version}") from exc
                raise
            self._popularity.invalidate()
            self._complements.refresh(artifact.version)
            self._rebuying.refresh(artifact.version)
            log.info("training took %.1fs in all", time.perf_counter() - started)
        # the version trained here, whatever serves by now (another process may have published since)
        return self.model_info(artifact.version)

    def model_info(self, version: str | None = None) -> ModelInfo:
        if version is None:
            current = self._registry.current
            manifest: dict[str, Any] = current.manifest if current is not None else {}
        else:
            manifest = self._registry.manifest(version)
        return ModelInfo(
            version=manifest.get("version", ""),
            trained_at=manifest.get("trained_at"),
            customers=manifest.get("customers", 0),
            items=manifest.get("items", 0),
            interactions=manifest.get("interactions", 0),
            events_stored=self._events.count_events(),
            metrics=dict(manifest.get("metrics", {})),
        )

    def list_models(self) -> list[ModelInfo]:
        return [self.model_info(v) for v in self._registry.versions()]

    def rollback(self, version: str) -> ModelInfo:
        if not version:
            raise InvalidArgument("model_version", "is required")
        self._registry.rollback(version)
        return self.model_info()

    # -- merchandising (issue 12, docs/merchandising.md) ----------------------------------------------

    def create_rule(self, spec: RuleSpec, by: str) -> Rule:
        """Stores a rule (`by`: the API key's name); every serving process applies it within a second."""
        return self._merchandiser.create(spec, by)

    def update_rule(self, rule_id: str, spec: RuleSpec, by: str) -> Rule:
        return self._merchandiser.update(rule_id, spec, by)

    def set_rule_enabled(self, rule_id: str, enabled: bool, by: str) -> Rule:
        return self._merchandiser.set_enabled(rule_id, enabled, by)

    def delete_rule(self, rule_id: str, by: str) -> int:
        """Deletes a rule (its history stays); returns the version the deletion recorded."""
        return self._merchandiser.delete(rule_id, by)

    def merchandising_rules(self, placement: str = "") -> list[Rule]:
        """The rules not deleted (on or off), oldest first; only those of `placement` when given."""
        return self._merchandiser.rules(placement)

    def rule_history(self, rule_id: str = "") -> list[RuleChange]:
        """Every change of one rule ("" = of every rule), oldest first: who, when, the rule as it became."""
        return self._merchandiser.history(rule_id)

    def placement_history(self, placement: str = "") -> list[PlacementChange]:
        """Every change of one placement's plan ("" = of every placement), oldest first."""
        return self._merchandiser.placement_history(placement)

    def experiment_history(self, experiment_id: str = "") -> list[ExperimentChange]:
        """Every change of one experiment ("" = of every experiment), oldest first."""
        return self._merchandiser.experiment_history(experiment_id)

    def rules_version(self) -> int:
        """The counter that moves with every rule change (what serving processes follow)."""
        return self._merchandiser.version()

    def reload_rules(self) -> int:
        """Applies rules changed by another process now (a serving process does it within a second);
        returns the rules version in force."""
        return self._merchandiser.reload().version

    def preview_rule(
        self, query: RecommendQuery, spec: RuleSpec | None = None, rule_id: str = ""
    ) -> tuple[list[Recommended], list[Recommended]]:
        """(what the request gets without the rule, with it): a stored rule (on or off) by id, or a rule
        not stored yet."""
        if spec is None:
            spec = self._merchandiser.rule(rule_id).spec
        without, with_rule = self._merchandiser.with_rule(spec, rule_id)
        return self._recommender.preview(query, without, with_rule)

    def placements(self) -> list[Placement]:
        """Every placement's plan in force (the one in code, or the one set), by name."""
        return self._merchandiser.placements()

    def set_placement(self, plan: PlacementPlan, by: str) -> Placement:
        return self._merchandiser.set_placement(plan, by)

    def reset_placement(self, placement: str, by: str) -> Placement:
        return self._merchandiser.reset_placement(placement, by)

    def create_experiment(self, spec: ExperimentSpec, by: str) -> Experiment:
        return self._merchandiser.create_experiment(spec, by)

    def experiments(self) -> list[Experiment]:
        return self._merchandiser.experiments()

    def set_experiment_enabled(self, experiment_id: str, enabled: bool, by: str) -> Experiment:
        return self._merchandiser.set_experiment_enabled(experiment_id, enabled, by)

    # -- insights (story 6) ---------------------------------------------------------------------------

    def channel_report(
        self, start: float | None = None, end: float | None = None, attribution_days: int = 0
    ) -> reports.ChannelReport:
        """Per channel and arm: what recommendations earned, and the uplift over the hold-out."""
        self._served.flush()  # recommendations answered a moment ago count too
        return reports.channel_report(
            self._storage,
            start,
            end,
            attribution_days,
            seed=self.settings.seed,
            default_days=self.settings.attribution_days,
        )

    def funnel_report(self, start: float | None = None, end: float | None = None) -> reports.FunnelReport:
        """Step-by-step conversion along cross-channel journeys, and where customers drop off."""
        return reports.funnel_report(self._storage, start, end)

    @contextmanager
    def _training_paused(self) -> Iterator[None]:
        """Waits for a training of this process or of another one on this data folder to end, and holds it
        off; the lock file says an erasure holds it, for a Train refused meanwhile."""
        lock_path = self.settings.models_dir / "train.lock"
        with self._train_lock, open(lock_path, "a+", opener=_private) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            _note_holder(fh, _ERASING)
            try:
                held = self._training_lease.acquire(_ERASING, wait=True)  # a training on another replica
                try:
                    yield
                finally:
                    held.release()
            finally:
                _note_holder(fh, "")

    @contextmanager
    def _exclusive_training(self) -> Iterator[None]:
        lock_path = self.settings.models_dir / "train.lock"
        if not self._train_lock.acquire(blocking=False):
            raise AlreadyRunning(_busy(lock_path, "in this server"))
        try:
            with open(lock_path, "a+", opener=_private) as fh:  # "a+": a waiter must not erase the note
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise AlreadyRunning(_busy(lock_path, "on this data folder")) from None
                held = self._take_training_lease()
                _note_holder(fh, _TRAINING)
                try:
                    yield
                finally:
                    _note_holder(fh, "")
                    if held is not None:
                        held.release()
        finally:
            self._train_lock.release()

    def _take_training_lease(self) -> Held | None:
        try:
            return self._training_lease.acquire(_TRAINING, wait=False)
        except (Unavailable, ResourceExhausted) as exc:
            # A store that refuses writes refuses every replica's lease too; the folder lock still keeps
            # this host's trainings apart, and the training says what fails (the model's write) itself.
            log.warning("the training lease could not be written (%s); training under the folder lock", exc)
            return None
        except LeaseHeld as busy:
            where = "on another replica or trainer job of this store"
            if busy.purpose == _ERASING:
                raise AlreadyRunning(
                    f"a customer is being erased (Forget) {where}, and training waits for erasures to "
                    "finish so that it cannot learn from what is being erased; try again in a moment"
                ) from None
            raise AlreadyRunning(f"a training is already running {where}; try again when it ends") from None


# Who holds the training lock, written into train.lock by the holder: a Train refused while a Forget
# erases must say so, not "a training is already running".
_TRAINING, _ERASING = "training", "erasure"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _note_holder(fh: TextIO, holder: str) -> None:
    # Straight to the file, past Python's buffer: a write the disk refused must not come back when the
    # file is closed, and a full disk must not stop a Forget or a Train for the sake of a message.
    try:
        os.ftruncate(fh.fileno(), 0)
        os.write(fh.fileno(), holder.encode())
    except OSError:
        pass


def _busy(lock_path: Path, where: str) -> str:
    try:
        holder = lock_path.read_text().strip()
    except OSError:
        holder = ""
    if holder == _ERASING:
        return (
            f"a customer is being erased (Forget) {where}, and training waits for erasures to finish "
            "so that it cannot learn from what is being erased; try again in a moment"
        )
    if holder == _TRAINING:
        return f"a training is already running {where}; try again when it ends"
    return f"a training or an erasure (Forget) holds the model folder {where}; try again in a moment"


__all__ = ["ModelInfo", "NotFound", "Seenext"]
