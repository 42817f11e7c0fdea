"""InsightsService.ChannelReport and FunnelReport through the generated stubs, on simulated traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from models.demo.traffic import Behaviour, simulate
from protos.seenext.v1 import common_pb2, insights_pb2, insights_pb2_grpc
from server import convert
from tests.conftest import tiny_events, tiny_items, tiny_settings
from tests.models.insights.test_reports import grant_email_consent

pytestmark = pytest.mark.both_backends  # the store on SQLite and on PostgreSQL (tests/conftest.py)


@pytest.fixture
def insights(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[insights_pb2_grpc.InsightsServiceStub, object]]:
    from server.app import create_server

    running = create_server(tiny_settings(tmp_path, holdout=0.3, database_url=database_url))
    svc = running.service
    svc.upsert_items(tiny_items())
    svc.track_batch(tiny_events())
    svc.train()
    grant_email_consent(svc, [f"u{n}" for n in range(60)])
    tally = simulate(
        svc,
        [f"u{n}" for n in range(60)],
        visits_per_customer=3,
        seed=5,
        behaviour=Behaviour(click=0.5, cart=0.8, buy=0.8),
    )
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield insights_pb2_grpc.InsightsServiceStub(ch), tally
    running.stop(grace=1.0)


def test_channel_report_answers_per_channel_and_arm(insights: tuple) -> None:
    stub, tally = insights
    reply = stub.ChannelReport(insights_pb2.ChannelReportRequest(), timeout=10)
    assert reply.attribution_days == 7
    assert reply.period_end.seconds >= int(time.time()) - 5
    rows = {(convert.enum_name(common_pb2.Channel, r.channel, "CHANNEL_"), r.arm): r for r in reply.rows}
    assert {k: r.recommendations for k, r in rows.items()} == {
        k: n for k, n in tally.recommendations.items() if n
    }
    assert sum(r.conversions for r in reply.rows) == sum(tally.purchases.values())
    for r in reply.rows:
        assert r.impressions > 0 and r.click_through == pytest.approx(r.clicks / r.impressions)
    both = {c for c, a in rows if a == "holdout"} & {c for c, a in rows if a == "personalised"}
    for u in reply.uplift:
        assert convert.enum_name(common_pb2.Channel, u.channel, "CHANNEL_") in both
        assert u.ci_low <= u.uplift <= u.ci_high


def test_funnel_report_answers(insights: tuple) -> None:
    stub, _ = insights
    reply = stub.FunnelReport(insights_pb2.FunnelReportRequest(), timeout=10)
    funnels = {f.name: f for f in reply.funnels}
    assert set(funnels) >= {"ad -> web -> cart -> purchase", "e-mail -> visit -> purchase"}
    recs = funnels["recommendation -> click -> purchase"]
    assert [s.name for s in recs.steps] == ["impression", "click", "purchase"]
    assert recs.steps[0].customers == 60 and recs.steps[0].conversion_from_previous == 1.0
    counts = [s.customers for s in recs.steps]
    assert counts == sorted(counts, reverse=True)  # a funnel only narrows


def test_a_period_ending_before_it_starts_is_invalid(insights: tuple) -> None:
    stub, _ = insights
    now = convert.timestamp(time.time())
    earlier = convert.timestamp(time.time() - 3600)
    with pytest.raises(grpc.RpcError) as err:
        stub.ChannelReport(insights_pb2.ChannelReportRequest(period_start=now, period_end=earlier), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "period_end" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.ChannelReport(insights_pb2.ChannelReportRequest(attribution_days=400), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "attribution_days" in err.value.details()
