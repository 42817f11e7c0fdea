"""The Prometheus endpoint of a serving process (SEENEXT_METRICS_PORT; off by default).

What it exports, and how to read it, is in docs/deploy.md ("Reading the metrics"):
- per RPC: calls by final gRPC status and a latency histogram, under the names go-grpc-prometheus and
  py-grpc-prometheus use (`grpc_server_handled_total`, `grpc_server_handling_seconds`), so the usual gRPC
  dashboards and alerts read them unchanged;
- what the calls did: Recommend strategies served by channel, events ingested by outcome;
- figures read from the service when Prometheus scrapes (`Seenext.runtime_figures()`): model version and
  age, events stored, the replica's lag behind the change feed, the PostgreSQL pool's use, the score
  cache's use.

The interceptor is the outermost one (server/app.py puts it first), so the status it records is the one
the caller receives: a refusal of the API-key check, an error the error interceptor turned into a status,
an undecodable body. A call the client abandoned (deadline, cancel) is recorded with the status the
server produced, as the server cannot tell.

With `seenext serve --processes N`, process i serves SEENEXT_METRICS_PORT + i: each process has its own
registry and port, and Prometheus sums them (prometheus-client's multiprocess mode would need a shared
folder of mmap files and gives up live gauges; N scrape targets are simpler and say which process is
slow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.service import Seenext
from protos.seenext.v1 import common_pb2, events_pb2, recommendation_pb2
from server.errors import Continuation, Handler, Interceptor

log = logging.getLogger(__name__)

# Seconds. Health/Check is ~0.3 ms, Recommend ~1-2 ms, TrackBatch of 1,000 events ~50 ms, Train minutes.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
)  # fmt: skip

# Every figure `Seenext.runtime_figures()` may return, exported as the gauge `seenext_<key>`. A figure
# that does not exist in this process (no model yet, no pool on SQLite) is left out of the dict, and so
# out of the scrape, rather than reported as 0. Whoever adds a figure describes it here (a test checks).
RUNTIME_FIGURES: dict[str, str] = {
    "events_stored": "Events in the store (the event log's length).",
    "model_trained_timestamp_seconds": "When the serving model was trained (Unix time).",
    "model_age_seconds": "Seconds since the serving model was trained.",
    # the replica's change feed (models/serving/feed.py), while it follows it
    "log_head_sequence": "Highest sequence number of the shared change feed (what every process wrote).",
    "foldin_applied_sequence": "Highest sequence number of the change feed this replica has applied.",
    "foldin_lag_events": "Sequence numbers of the change feed this replica has not applied yet.",
    "foldin_lag_seconds": "Seconds since this replica last read the change feed to its end"
    " (an upper bound on the age of any change it has not applied).",
    # the PostgreSQL pool (absent on SQLite)
    "db_pool_size": "Connections the database pool may hold (PostgreSQL; absent on SQLite).",
    "db_pool_in_use": "Connections of the pool lent out to a request now.",
    "db_pool_waiting": "Requests waiting for a connection of the pool now.",
    # customers' products kept for their next request (models/serving/score_cache.py), while it is on
    "score_cache_bytes": "Bytes of customers' scores kept for their next request (SEENEXT_SCORE_CACHE_MB).",
    "score_cache_hits": "Recommends that reused a customer's kept scores, since the process started.",
    "score_cache_misses": "Recommends that computed a customer's scores while the cache was on, since start.",
}

RECOMMEND = "/seenext.v1.RecommendationService/Recommend"
RECOMMEND_BATCH = "/seenext.v1.RecommendationService/RecommendBatch"
TRACK = "/seenext.v1.EventService/Track"
TRACK_BATCH = "/seenext.v1.EventService/TrackBatch"


class Metrics:
    """One process's registry: the RPC counters the interceptor fills, the figures read at scrape time."""

    def __init__(self, service: Seenext) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by final gRPC status code.",
            ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the call reaching the server's interceptors to its last reply (any status).",
            ["grpc_type", "grpc_service", "grpc_method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.strategies = Counter(
            "seenext_recommendations_total",
            "Recommend (and RecommendBatch) answers by strategy and channel.",
            ["strategy", "channel"],
            registry=self.registry,
        )
        self.events = Counter(
            "seenext_events_ingested_total",
            "Events sent to Track and TrackBatch, by outcome: accepted (newly stored), duplicate, rejected.",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_ScrapeTime(service))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory: per process
        self._http: WSGIServer | None = None

    def interceptor(self) -> MetricsInterceptor:
        return MetricsInterceptor(self)

    def serve(self, host: str, port: int) -> int:
        """Starts the HTTP endpoint (/metrics, any path) in a daemon thread; returns the bound port."""
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._http.server_port)
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def observe_reply(self, method: str, request: Any, reply: Any) -> None:
        """What a successful reply says beyond its status: strategies served, events ingested."""
        if method in (RECOMMEND, RECOMMEND_BATCH) and isinstance(reply, recommendation_pb2.RecommendResponse):
            self.strategies.labels(reply.strategy or "none", _channel(request)).inc()
        elif method == TRACK and isinstance(reply, events_pb2.TrackResponse):
            self.events.labels("duplicate" if reply.duplicate else "accepted").inc()
        elif method == TRACK_BATCH and isinstance(reply, events_pb2.TrackBatchResponse):
            for outcome, count in (
                ("accepted", reply.accepted),
                ("duplicate", reply.duplicates),
                ("rejected", len(reply.rejected)),
            ):
                if count:
                    self.events.labels(outcome).inc(count)


def _channel(request: Any) -> str:
    value = getattr(request, "channel", 0)
    try:
        return str(common_pb2.Channel.Name(value)).removeprefix("CHANNEL_").lower()
    except ValueError:  # a number the contract does not know (answered INVALID_ARGUMENT anyway)
        return "unknown"


class _ScrapeTime(Collector):
    """Gauges read from the service each time Prometheus scrapes, so they are never stale."""

    def __init__(self, service: Seenext) -> None:
        self.service = service

    def describe(self) -> Iterable[Metric]:
        return []  # the figures present vary (no model yet, no pool on SQLite): not described up front

    def collect(self) -> Iterable[Metric]:
        try:
            model = self.service.serving_model
            values = self.service.runtime_figures()
        except Exception:  # a scrape must not fail because the store is busy; the log says why
            log.exception("metrics: reading the runtime figures failed")
            return
        info = GaugeMetricFamily(
            "seenext_model_info",
            "The serving model version (value 1; no series before the first training).",
            labels=["version"],
        )
        if model is not None:
            info.add_metric([model.version], 1.0)
        yield info
        for key, value in sorted(values.items()):
            help_ = RUNTIME_FIGURES.get(key, "Runtime figure (not described in server/metrics.py).")
            yield GaugeMetricFamily(f"seenext_{key}", help_, value=float(value))


class MetricsInterceptor(Interceptor):
    """Counts every call by its final status and times it; must be the outermost interceptor."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # (a dict's get and set are atomic under the GIL; two threads may make the same child, which is
        # harmless: `labels()` returns the one child of those labels)
        self._latency: dict[tuple[str, str, str], Any] = {}
        self._handled: dict[tuple[tuple[str, str, str], str], Any] = {}

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED itself
            return None
        method = details.method
        service, _, name = method.strip("/").partition("/")
        args = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary:
            labels = ("unary", service, name)
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, labels), *args
            )
        if handler.unary_stream:
            labels = ("server_stream", service, name)
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, labels), *args
            )
        if handler.stream_unary:
            labels = ("client_stream", service, name)
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, labels), *args
            )
        if handler.stream_stream:
            labels = ("bidi_stream", service, name)
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method, labels), *args
            )
        return handler

    def _record(
        self, labels: tuple[str, str, str], context: grpc.ServicerContext, started: float, failed: bool
    ) -> None:
        code = context.code()  # type: ignore[attr-defined]  # set by abort()/set_code(); None: OK
        if code is None and failed and not context.is_active():
            name = "CANCELLED"  # the caller went away while its reply stream was being written
        elif code is None:
            name = "UNKNOWN" if failed else "OK"  # an exception no interceptor turned into a status
        else:
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        elapsed = time.perf_counter() - started
        # The labelled children are looked up once per method and status: `labels()` cost ~8 us a call.
        latency = self._latency.get(labels)
        if latency is None:
            latency = self._latency[labels] = self.metrics.latency.labels(*labels)
        latency.observe(elapsed)
        handled = self._handled.get((labels, name))
        if handled is None:
            handled = self._handled[(labels, name)] = self.metrics.handled.labels(*labels, name)
        handled.inc()

    def _unary(
        self, inner: Callable[[Any, grpc.ServicerContext], Any], method: str, labels: tuple[str, str, str]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                reply = inner(request, context)
                failed = False
            finally:
                self._record(labels, context, started, failed)
            self.metrics.observe_reply(method, request, reply)
            return reply

        return behaviour

    def _stream(
        self,
        inner: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
        method: str,
        labels: tuple[str, str, str],
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            failed = True
            try:
                for reply in inner(request, context):
                    self.metrics.observe_reply(method, request, reply)
                    yield reply
                failed = False
            finally:
                self._record(labels, context, started, failed)

        return behaviour
