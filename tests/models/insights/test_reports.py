"""ChannelReport uplift on generated hold-out traffic, FunnelReport on hand-made journeys, and the
traffic simulator agreeing with the reports — each with a known answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from models.demo.traffic import Behaviour, simulate
from models.domain import Event, Identifier
from models.insights.reports import uplift
from models.service import Seenext
from models.serving.recommender import RecommendQuery, in_holdout
from tests.conftest import DAY, tiny_events, tiny_items, tiny_settings


def grant_email_consent(svc: Seenext, customers: list[str]) -> None:
    """As the demo seeds it: e-mail marketing consent recorded for these customers."""
    svc.import_consents([(Identifier("CUSTOMER_ID", c), "EMAIL", "marketing", True, 0.0) for c in customers])


def who(c: str) -> tuple[Identifier, ...]:
    return (Identifier("CUSTOMER_ID", c),)


@pytest.fixture
def holdout_service(tmp_path: Path) -> Seenext:
    svc = Seenext(tiny_settings(tmp_path, holdout=0.5))
    svc.upsert_items(tiny_items())
    svc.track_batch(tiny_events())
    yield svc  # type: ignore[misc]
    svc.close()


def test_uplift_on_generated_holdout_traffic(holdout_service: Seenext) -> None:
    """400 shoppers split by the stable hash; 30 % of the personalised and 15 % of the hold-out buy."""
    svc = holdout_service
    customers = [f"g{n:03d}" for n in range(400)]
    now = time.time()
    svc.track_batch([Event(f"visit-{c}", who(c), "WEB", "VISIT", occurred_at=now - 60) for c in customers])
    arms: dict[str, list[tuple[str, str]]] = {"personalised": [], "holdout": []}
    for c in customers:
        rec = svc.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", c), k=2))
        arm = "holdout" if rec.strategy == "holdout_popular" else "personalised"
        assert (arm == "holdout") == in_holdout(c, 0.5)
        arms[arm].append((c, rec.recommendation_id))
    buyers = {
        "personalised": int(0.30 * len(arms["personalised"])),
        "holdout": int(0.15 * len(arms["holdout"])),
    }
    purchases = [
        Event(
            f"buy-{c}",
            who(c),
            "WEB",
            "PURCHASE",
            "flowers-1",
            price=30.0,
            recommendation_id=rid,
            occurred_at=now,
        )
        for arm, pairs in arms.items()
        for c, rid in pairs[: buyers[arm]]
    ]
    svc.track_batch(purchases)
    report = svc.channel_report(now - DAY, now + DAY)
    rows = {r.arm: r for r in report.rows}
    for arm in ("personalised", "holdout"):
        assert rows[arm].recommendations == rows[arm].customers == len(arms[arm])
        assert rows[arm].conversions == buyers[arm] and rows[arm].revenue == 30.0 * buyers[arm]
    (u,) = report.uplift
    p_rate = buyers["personalised"] / len(arms["personalised"])
    h_rate = buyers["holdout"] / len(arms["holdout"])
    assert (u.personalised_rate, u.holdout_rate) == pytest.approx((p_rate, h_rate))
    assert u.uplift == pytest.approx(p_rate / h_rate - 1)
    assert u.ci_low < u.uplift < u.ci_high and u.ci_low > 0  # twice the rate on ~200 a side: clearly above 0


def test_uplift_interval_covers_no_effect_when_arms_convert_alike() -> None:
    rng = np.random.default_rng(3)
    arm = np.column_stack([np.ones(300, int), rng.random(300) < 0.2]).astype(int)
    up, low, high, p_rate, h_rate = uplift(arm, arm.copy(), resamples=500)
    assert up == 0.0 and p_rate == h_rate and low < 0 < high
    assert uplift(arm, np.array([[1, 0], [2, 0]])) is None  # a hold-out without conversions


def journey(c: str, steps: list[tuple[str, str, str]], t0: float) -> list[Event]:
    return [
        Event(f"{c}-{n}", who(c), channel, etype, item, occurred_at=t0 + n * 60)
        for n, (etype, channel, item) in enumerate(steps)
    ]


def test_funnels_known_answer(service: Seenext) -> None:
    t0 = 1_700_000_000.0
    ad, view, cart, buy = (
        ("AD_CLICK", "ADS", ""),
        ("VIEW", "WEB", "sku"),
        ("ADD_TO_CART", "WEB", "sku"),
        ("PURCHASE", "POS", "sku"),
    )
    events = (
        journey("f1", [ad, view, cart, buy], t0)  # the whole way, finished in store
        + journey("f2", [ad, view], t0)  # viewed, never carted
        + journey("f3", [ad], t0)  # clicked the ad only
        + journey("f4", [view, ad], t0)  # viewed before the ad: no step 2
        + journey("f5", [("EMAIL_CLICK", "EMAIL", ""), ("VISIT", "POS", ""), buy], t0)
        + journey("f6", [("EMAIL_CLICK", "EMAIL", ""), ("PURCHASE", "WEB", "sku")], t0)  # no visit step
        + journey("f7", [ad, view, cart, buy], t0 - 10 * DAY)  # before the period
    )
    assert not service.track_batch(events).rejected
    report = service.funnel_report(t0 - DAY, t0 + DAY)
    funnels = {f.name: f for f in report.funnels}
    ad_funnel = funnels["ad -> web -> cart -> purchase"]
    assert [s.customers for s in ad_funnel.steps] == [4, 2, 1, 1]
    assert [s.conversion_from_previous for s in ad_funnel.steps] == [1.0, 0.5, 0.5, 1.0]
    assert ad_funnel.steps[-1].channels == {"POS": 1} and ad_funnel.steps[1].channels == {"WEB": 2}
    mail = funnels["e-mail -> visit -> purchase"]
    assert [s.customers for s in mail.steps] == [2, 1, 1] and mail.steps[1].channels == {"POS": 1}
    assert [s.customers for s in funnels["view -> cart -> purchase"].steps] == [3, 1, 1]
    assert [s.customers for s in funnels["recommendation -> click -> purchase"].steps] == [0, 0, 0]


def test_simulated_traffic_is_what_the_report_counts(tmp_path: Path) -> None:
    svc = Seenext(tiny_settings(tmp_path, holdout=0.3))
    try:
        svc.upsert_items(tiny_items())
        svc.track_batch(tiny_events())
        svc.train()
        grant_email_consent(svc, [f"u{n}" for n in range(60)])
        started = time.time()
        tally = simulate(
            svc,
            [f"u{n}" for n in range(60)],
            visits_per_customer=3,
            seed=11,
            behaviour=Behaviour(click=0.5, cart=0.8, buy=0.8),
        )
        report = svc.channel_report(started - 1, time.time() + 1)
        served = {(r.channel, r.arm): r.recommendations for r in report.rows}
        assert served == {key: n for key, n in tally.recommendations.items() if n}
        assert sum(r.conversions for r in report.rows) == sum(tally.purchases.values()) > 0
        assert any(r.conversions_in_channel.get("POS") for r in report.rows if r.channel == "EMAIL")
        funnels = {f.name: f for f in svc.funnel_report(started - 1, time.time() + 1).funnels}
        assert funnels["recommendation -> click -> purchase"].steps[0].customers == 60
    finally:
        svc.close()
