"""The benchmark's measurements run end to end at a toy size and return well-formed figures.

No timing is asserted (timings belong in docs/benchmarks.md); these guard the benchmark code
itself: servers start and stop, load workers report, every figure is present and finite.
"""

from __future__ import annotations

import gc
import math
import shutil
from pathlib import Path

import pytest

from bench import fleet_qps, memory, merchandising, page_view, recommend, report, retrain, track, world
from bench.conditions import Conditions
from bench.load import LoadResult
from models.service import Seenext
from tests.postgres import Cluster


def _finite_positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def _well_formed(result: LoadResult) -> None:
    lat = result.latency
    assert lat.errors == 0
    assert lat.requests > 0 and _finite_positive(lat.qps, lat.p50_ms, lat.p99_ms, lat.max_ms)
    assert lat.p50_ms <= lat.p90_ms <= lat.p99_ms <= lat.max_ms
    assert result.server_cpu and all(c >= 0 for c in result.server_cpu)
    assert result.client_cpu >= 0


@pytest.fixture(scope="module")
def toy_world(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, world.WorldFigures, retrain.RetrainFigures]:
    data = tmp_path_factory.mktemp("bench") / "world"
    figures = world.build(data, items=200, customers=60, days=120)
    trained = retrain.measure(data, epochs=1, components=8, train_threads=1)
    return data, figures, trained


@pytest.fixture(scope="module")
def customers(toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures]) -> list[str]:
    service = Seenext(world.settings_for(toy_world[0]))
    try:
        return world.known_customers(service, 20)
    finally:
        service.close()


def test_world_and_retrain_figures(
    toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures],
) -> None:
    _, w, r = toy_world
    assert w.items == 200 and w.customers == 60 and 0 < w.item_events <= w.events
    assert r.item_events == w.item_events
    assert 0 < r.matrix_nnz <= r.item_events and r.users > 0 and r.items >= 200
    assert _finite_positive(r.train_seconds, r.bare_fit_seconds, r.ratio)
    assert r.fit_seconds + r.build_seconds <= r.train_seconds


def test_recommend_latency_beside_the_noop(
    toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures], customers: list[str]
) -> None:
    runs, personalised = recommend.latency_runs(
        toy_world[0], customers, k=5, duration=0.4, warmup=0.1, concurrencies=(2,), client_processes=1
    )
    assert [r.label for r in runs] == [
        "Health/Check (no-op)",
        "Recommend",
        "Health/Check (no-op), metrics on",
        "Recommend, metrics on",
    ]
    assert personalised == 1.0
    for r in runs:
        assert r.server_processes == 1 and r.result.concurrency == (1 if "metrics on" in r.label else 2)
        _well_formed(r.result)


def test_two_process_throughput_and_open_loop(
    toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures], customers: list[str]
) -> None:
    runs = recommend.throughput_runs(
        toy_world[0],
        customers,
        k=5,
        duration=0.5,
        warmup=0.1,
        concurrency=4,
        rate=50.0,
        client_processes=1,
        channels=2,
        server_processes=(2,),
    )
    closed, opened = runs
    assert closed.result.mode == "closed" and opened.result.mode == "open"
    for r in runs:
        assert r.server_processes == 2 and len(r.result.server_cpu) == 2
        _well_formed(r.result)
    assert opened.result.rate == 50.0 and opened.result.send_lag_p99_ms >= 0


def test_trackbatch_beside_bare_sqlite(tmp_path: Path) -> None:
    t = track.measure(tmp_path, events=1500, batch=500)
    assert t.events == 1500 and t.batch == 500 and t.backend == "sqlite"
    assert _finite_positive(t.grpc_eps, t.store_eps, t.bare_eps, t.grpc_client_cpu_seconds)
    assert _finite_positive(t.ratio, t.server_us_per_event, t.bare_cpu_seconds)
    assert t.inflight == 2 and _finite_positive(t.inflight_eps, t.inflight_server_us_per_event)


def test_trackbatch_beside_bare_postgres(tmp_path: Path, postgres_url: str) -> None:
    """`make bench`'s track-postgres step: the same three paths on PostgreSQL, in the report too."""
    t = track.measure(tmp_path, events=1500, batch=500, database_url=postgres_url)
    assert t.events == 1500 and t.backend == "postgresql"
    assert _finite_positive(t.grpc_eps, t.store_eps, t.bare_eps, t.ratio, t.server_us_per_event)
    results = report.Results(Conditions.now(), "python -m bench.run --toy", "now", track_postgres=t)
    assert t.inflight == 2 and _finite_positive(t.inflight_eps, t.inflight_server_us_per_event)
    text = report.markdown(results)
    assert "TrackBatch events/s (gRPC, batches of 500, PostgreSQL)" in text
    assert "TrackBatch events/s (gRPC, batches of 500, 2 calls in flight, PostgreSQL)" in text
    assert "| TrackBatch RPC from a client process, 2 calls in flight |" in text


def test_memory_of_a_widened_model(
    toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures], customers: list[str]
) -> None:
    data = toy_world[0]
    before = (data / "models" / "CURRENT").read_text()
    m = memory.measure(data, customers, customers_total=5000, k=5, warmup=0.3)
    assert m.customers == 5000 and m.baseline_customers < 5000
    assert m.hwm_kb >= m.rss_kb > 0 and m.baseline_hwm_kb > 0
    assert _finite_positive(m.gb_per_million, m.artifact_mb)
    assert (data / "models" / "CURRENT").read_text() == before  # the world's own model serves again


def test_report_has_every_target(toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures]) -> None:
    _, w, r = toy_world
    results = report.Results(Conditions.now(), "python -m bench.run --toy", "now", world=w, retrain=r)
    text = report.markdown(results)
    assert "full retrain / bare LightFM.fit" in text and "## Conditions" in text
    [line] = [t.line() for t in report.targets(results)]
    assert line.startswith(("PASS", "MISS"))


def test_two_replicas_on_one_postgres(tmp_path: Path, postgres_cluster: Cluster) -> None:
    f = fleet_qps.measure(
        tmp_path, items=200, customers=60, sample=20, duration=0.4, warmup=0.1, rounds=1, epochs=1,
        cluster=postgres_cluster, freshness_trials=5,
    )  # fmt: skip
    assert [a.replicas for a in f.arms] == [1, 2] and f.items == 200 and f.events > 0
    for arm in f.arms:
        assert arm.errors == 0 and len(arm.replica_cpu) == 2
        assert _finite_positive(arm.qps, arm.serving_cpu, arm.qps_per_cpu)
        # the database's CPU is context: in a 0.4 s window with everything in memory it may read 0 ticks
        assert math.isfinite(arm.postgres_cpu) and arm.postgres_cpu >= 0
    assert f.of(2)[0].replica_cpu[1] > 0  # B served in arm two
    assert math.isfinite(f.ratio) and f.ratio > 0
    # a purchase on A is seen on B: every trial ends (bench/fleet.py raises after 10 s), in under 10 s
    assert f.freshness_ms and all(0 < ms < 10_000 for ms in f.freshness_ms)
    text = "\n".join(fleet_qps.lines(f))
    assert "QPS per server CPU-second" in text and "freshness" in text
    assert text.splitlines()[-1].startswith(("PASS", "MISS"))


def test_recommend_beside_the_noop_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """`make bench`'s PostgreSQL pair: the world seeded into a fresh database there, one server on it."""
    from dataclasses import replace

    from bench.run import TOY, postgres_latency

    scale = replace(TOY, items=200, customers=60, sample=20, duration=0.4, warmup=0.1, epochs=1)
    runs, note = postgres_latency(scale, tmp_path, postgres_url)
    assert note == ""
    assert [r.label for r in runs] == ["Health/Check (no-op)", "Recommend"]
    for r in runs:
        assert r.result.concurrency == 1
        _well_formed(r.result)
    results = report.Results(Conditions.now(), "python -m bench.run --toy", "now", latency_postgres=runs)
    [line] = [t.line() for t in report.targets(results)]
    assert "(PostgreSQL)" in line and line.startswith(("PASS", "MISS"))


def test_merchandising_cost_runs_as_a_server_and_puts_the_process_back(
    tmp_path: Path, toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures], customers: list[str]
) -> None:
    """The rules' cost is measured with the serving process's collector settings (bench/merchandising.py);
    `make bench` runs its other steps in the same process, which get Python's own back. The folder is a
    copy: the measurement leaves its (switched-off) rules in the store."""
    folder = tmp_path / "world"
    shutil.copytree(toy_world[0], folder)
    threshold = gc.get_threshold()
    f = merchandising.measure(folder, customers, k=5, calls=30)
    assert f.calls == 30 and f.items >= 200
    assert _finite_positive(f.before_p50_us, f.after_p50_us, f.matches_seconds)
    assert all(math.isfinite(v) for v in (f.cost_us, f.context_rule_cost_us, f.cpu_cost_us))
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_a_page_view_on_two_servers_kept_and_computed(
    toy_world: tuple[Path, world.WorldFigures, retrain.RetrainFigures], customers: list[str]
) -> None:
    service = Seenext(world.settings_for(toy_world[0]))
    try:
        items = page_view.page_items(service, 5)
    finally:
        service.close()
    f = page_view.measure(toy_world[0], customers[:6], items, k=5, rounds=1)
    assert f.customers == 6 and f.rounds == 1 and len(items) == 5
    for figures in (f.kept_p50_ms, f.computed_p50_ms):
        assert set(figures) == set(page_view.PLACEMENTS) and _finite_positive(*figures.values())
    assert all(math.isfinite(v) for v in f.saved_ms.values())
    text = "\n".join(page_view.lines(f))
    assert "saved (paired median)" in text and "cart" in text
