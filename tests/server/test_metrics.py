"""The Prometheus endpoint: real RPCs through the generated stubs to a real server, then a scrape over HTTP.

Counts by final status (the API-key check's refusals and the error interceptor's statuses included), the
latency histogram, strategies served, events ingested, and the figures read from the service at scrape
time (model version and age, events stored, the replica's lag behind the change feed, the pool's and the
score cache's use)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.serving import free_port
from models.domain import Event, Identifier
from models.service import Seenext
from models.settings import Settings
from protos.seenext.v1 import (
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server.app import Running, create_server
from server.metrics import LATENCY_BUCKETS, RUNTIME_FIGURES
from tests.conftest import tiny_events, tiny_items, tiny_settings

ROOT = Path(__file__).resolve().parents[2]
KEY = "metrics-test-key-0123456789"
RECOMMEND = ("unary", "seenext.v1.RecommendationService", "Recommend")


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[Running]:
    """A trained tiny world served with API keys on and metrics on a free port."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "shop", "key": KEY, "scopes": ["track", "recommend"]}]}))
    settings = tiny_settings(tmp_path / "data", auth=True, keys_file=str(keys), metrics_port=free_port())
    service = Seenext(settings)
    service.upsert_items(tiny_items())
    assert not service.track_batch(tiny_events()).rejected
    service.train()
    running = create_server(settings, service)
    yield running
    running.stop(grace=1.0)


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name} {labels}: {found}"
    return found[0] if found else None


def rpc_labels(kind: str, service: str, method: str) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": service, "grpc_method": method}


def test_calls_by_status_latency_strategies_events_and_model(metered: Running) -> None:
    auth = (("authorization", f"Bearer {KEY}"),)
    u0 = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="u0")
    with grpc.insecure_channel(f"127.0.0.1:{metered.port}") as ch:
        recommend = recommendation_pb2_grpc.RecommendationServiceStub(ch).Recommend
        ok = recommend(
            recommendation_pb2.RecommendRequest(who=u0, channel=common_pb2.CHANNEL_WEB, k=3), metadata=auth
        )
        with pytest.raises(grpc.RpcError) as bad:  # no channel: the servicer's validation refuses it
            recommend(recommendation_pb2.RecommendRequest(who=u0, k=3), metadata=auth)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as anonymous:  # no key: the API-key check refuses it
            recommend(recommendation_pb2.RecommendRequest(who=u0, channel=common_pb2.CHANNEL_WEB, k=3))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        view = events_pb2.Event(
            event_id="m-1", identifiers=[u0], channel=common_pb2.CHANNEL_WEB, type=common_pb2.EVENT_TYPE_VIEW,
            item_id="phone-1",
        )  # fmt: skip
        batch = events_pb2_grpc.EventServiceStub(ch).TrackBatch(
            events_pb2.TrackBatchRequest(events=[view, view, events_pb2.Event(event_id="m-2")]), metadata=auth
        )
    assert (batch.accepted, batch.duplicates, len(batch.rejected)) == (1, 1, 1)
    assert ok.strategy and len(ok.items) == 3

    samples = scrape(metered.metrics_port)
    handled = "grpc_server_handled_total"
    for code in ("OK", "INVALID_ARGUMENT", "UNAUTHENTICATED"):
        assert value(samples, handled, **rpc_labels(*RECOMMEND), grpc_code=code) == 1.0, code
    track_batch = rpc_labels("unary", "seenext.v1.EventService", "TrackBatch")
    assert value(samples, handled, **track_batch, grpc_code="OK") == 1.0

    # the histogram: every Recommend, whatever its status, in cumulative buckets ending at +Inf
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in samples
        if s.name == "grpc_server_handling_seconds_bucket" and s.labels["grpc_method"] == "Recommend"
    ]
    assert [le for le, _ in buckets] == [*LATENCY_BUCKETS, float("inf")]
    counts = [n for _, n in buckets]
    assert counts == sorted(counts) and counts[-1] == 3.0
    assert value(samples, "grpc_server_handling_seconds_count", **rpc_labels(*RECOMMEND)) == 3.0
    assert 0 < value(samples, "grpc_server_handling_seconds_sum", **rpc_labels(*RECOMMEND)) < 30  # type: ignore[operator]

    # what the calls did: the one answered Recommend's strategy, the batch's outcomes
    assert value(samples, "seenext_recommendations_total", strategy=ok.strategy, channel="web") == 1.0
    assert sum(s.value for s in samples if s.name == "seenext_recommendations_total") == 1.0
    for outcome in ("accepted", "duplicate", "rejected"):
        assert value(samples, "seenext_events_ingested_total", outcome=outcome) == 1.0, outcome

    # read from the service at scrape time
    model = metered.service.serving_model
    assert model is not None and ok.model_version == model.version
    assert value(samples, "seenext_model_info", version=model.version) == 1.0
    assert value(samples, "seenext_events_stored") == metered.service.count_events() == len(tiny_events()) + 1
    age = value(samples, "seenext_model_age_seconds")
    assert age is not None and 0 <= age < 600
    assert value(samples, "seenext_model_trained_timestamp_seconds") == model.manifest["trained_at"]


def test_every_runtime_figure_is_described(metered: Running) -> None:
    """Whoever adds a figure to Seenext.runtime_figures() describes it in server/metrics.py."""
    assert set(metered.service.runtime_figures()) <= set(RUNTIME_FIGURES)


def test_metrics_are_off_by_default_and_a_busy_port_names_the_setting(tmp_path: Path) -> None:
    running = create_server(tiny_settings(tmp_path / "off"))
    try:
        assert running.metrics is None and running.metrics_port == 0
    finally:
        running.stop(grace=0)
    port = free_port()
    refused = rf"cannot serve metrics on 127.0.0.1:{port} \(SEENEXT_METRICS_PORT\)"
    with socket.create_server(("127.0.0.1", port)), pytest.raises(OSError, match=refused):  # someone listens
        create_server(tiny_settings(tmp_path / "busy", metrics_port=port))


def test_each_process_of_serve_processes_n_has_its_own_port(tmp_path: Path) -> None:
    """`seenext serve --processes 2`: process i answers on SEENEXT_METRICS_PORT + i."""
    port, metrics = free_port(), free_port()
    while metrics + 1 == port or not _free(metrics + 1):
        metrics = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENEXT_")}
    env.update(SEENEXT_AUTH="0", SEENEXT_METRICS_PORT=str(metrics), SEENEXT_LOG_LEVEL="WARNING")
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--processes", "2",
         "--data-dir", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:  # the parent serves no metrics: two endpoints answering are the two children
        for i in range(2):
            _wait_for_metrics(metrics + i, server)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_metrics(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            samples = scrape(port)
        except OSError:
            time.sleep(0.2)
            continue
        assert value(samples, "seenext_events_stored") == 0.0
        assert value(samples, "process_cpu_seconds_total") is not None  # each process's own CPU
        return
    raise TimeoutError(f"no metrics on port {port}")


@pytest.mark.both_backends
def test_a_replica_reports_its_feed_lag_its_pool_and_its_kept_scores(
    settings: Settings, backend: str
) -> None:
    """What an operator watches on a fleet (docs/deploy.md): how far this replica's memory is behind the
    change feed the other processes write, the PostgreSQL pool's use, and the score cache's."""
    settings = replace(settings, metrics_port=free_port())
    service = Seenext(settings)
    service.upsert_items(tiny_items())
    assert not service.track_batch(tiny_events()).rejected
    service.train()
    running = create_server(settings, service)
    try:
        u0 = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="u0")
        request = recommendation_pb2.RecommendRequest(who=u0, channel=common_pb2.CHANNEL_WEB, k=3)
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            recommend = recommendation_pb2_grpc.RecommendationServiceStub(ch).Recommend
            first, second = recommend(request), recommend(request)  # the second reuses u0's scores
        assert [i.item_id for i in first.items] == [i.item_id for i in second.items]
        before = value(scrape(settings.metrics_port), "seenext_log_head_sequence")
        assert before is not None and before > 0
        # another process writes: the replica applies it from the feed, and its lag goes back to 0
        with Seenext(settings) as other:
            other.track(Event("m-other", (Identifier("CUSTOMER_ID", "u9"),), "WEB", "VIEW", "phone-2"))
        deadline = time.monotonic() + 5
        while True:
            samples = scrape(settings.metrics_port)
            head = value(samples, "seenext_log_head_sequence")
            applied = value(samples, "seenext_foldin_applied_sequence")
            if head is not None and applied is not None and applied >= head > before:
                break
            assert time.monotonic() < deadline, f"head {head}, applied {applied}"
            time.sleep(0.05)
        assert value(samples, "seenext_foldin_lag_events") == 0
        lag = value(samples, "seenext_foldin_lag_seconds")
        assert lag is not None and 0 <= lag < 5
        assert (value(samples, "seenext_score_cache_hits") or 0) >= 1
        assert (value(samples, "seenext_score_cache_misses") or 0) >= 1
        assert (value(samples, "seenext_score_cache_bytes") or 0) > 0
        pool = [value(samples, f"seenext_db_pool_{k}") for k in ("size", "in_use", "waiting")]
        if backend == "postgres":
            assert pool[0] == settings.database_pool_size and 0 <= pool[1] <= pool[0] and pool[2] == 0  # type: ignore[operator]
        else:
            assert pool == [None, None, None]  # no pool on SQLite: absent, not 0
    finally:
        running.stop(grace=1.0)
