"""Attribution on a hand-made fixture: direct ids, the cross-channel window rule, and what is left out."""

from __future__ import annotations

import pytest

from models.domain import Event, Identifier
from models.insights.attribution import attribute
from models.service import Seenext
from models.serving.served import Served
from tests import channel_world as world
from tests.conftest import DAY

T = 1_700_000_000.0


def served(service: Seenext) -> None:
    """Recommendations served on known dates, written through the storage interface (the service
    itself only logs what it serves now)."""
    with world.storage_of(service) as storage:
        storage.record_served(
            [
                Served(rid, customer, channel, "home", items, "personalised", "v1", arm, at)
                for rid, customer, channel, items, arm, at in [
                    ("r1", "c1", "EMAIL", ["a", "b"], "personalised", T),
                    ("r2", "c1", "WEB", ["c"], "personalised", T + DAY),
                    ("r3", "c2", "WEB", ["a"], "holdout", T),
                    ("r-old", "c3", "WEB", ["z"], "personalised", T - 40 * DAY),
                ]
            ]
        )


def ev(
    eid: str,
    customer: str,
    channel: str,
    etype: str,
    item: str,
    at: float,
    rec: str = "",
    price: float = 0.0,
    qty: int = 1,
) -> Event:
    return Event(
        eid,
        (Identifier("CUSTOMER_ID", customer),),
        channel,
        etype,
        item,
        quantity=qty,
        price=price,
        recommendation_id=rec,
        occurred_at=at,
    )


EVENTS = [
    ev("e1", "c1", "EMAIL", "IMPRESSION", "a", T + 60, "r1"),
    ev("e2", "c1", "EMAIL", "CLICK", "b", T + 120, "r1"),
    ev("e3", "c1", "POS", "PURCHASE", "b", T + 3 * DAY, price=10.0, qty=2),  # mailed, bought in store
    ev("e4", "c1", "WEB", "PURCHASE", "a", T + 10 * DAY, price=5.0),  # r1 offered it, too late
    ev("e5", "c1", "WEB", "PURCHASE", "c", T + DAY + 600, "r2", price=7.0),  # direct
    ev("e6", "c2", "POS", "PURCHASE", "a", T + 2 * DAY, price=3.0),  # hold-out offer, in store
    ev("e7", "c2", "WEB", "PURCHASE", "q", T + 2 * DAY, price=99.0),  # never recommended
    ev("e8", "c3", "WEB", "CLICK", "z", T + DAY, "r-old"),  # served before the period
    ev("e9", "c1", "WEB", "PURCHASE", "c", T + 20 * DAY, "r2", price=7.0),  # direct id, beyond the window
    ev("e10", "c2", "WEB", "VIEW", "a", T + 60, "r3"),  # not an attributable type
]


def test_attribution_known_answer(service: Seenext) -> None:
    served(service)
    assert not service.track_batch(EVENTS).rejected
    with world.storage_of(service) as storage:
        recs, found = attribute(storage, T - DAY, T + 2 * DAY, window_days=7)
    assert set(recs) == {"r1", "r2", "r3"}
    got = sorted(
        (a.recommendation_id, a.event_type, a.event_channel, a.item_id, a.revenue, a.direct) for a in found
    )
    assert got == [
        ("r1", "CLICK", "EMAIL", "b", 0.0, True),
        ("r1", "IMPRESSION", "EMAIL", "a", 0.0, True),
        ("r1", "PURCHASE", "POS", "b", 20.0, False),
        ("r2", "PURCHASE", "WEB", "c", 7.0, True),
        ("r3", "PURCHASE", "POS", "a", 3.0, False),
    ]


def test_channel_report_counts_per_channel_and_arm(service: Seenext) -> None:
    served(service)
    service.track_batch(EVENTS)
    report = service.channel_report(T - DAY, T + 2 * DAY, attribution_days=7)
    rows = {(r.channel, r.arm): r for r in report.rows}
    assert list(rows) == [("EMAIL", "personalised"), ("WEB", "personalised"), ("WEB", "holdout")]
    email = rows[("EMAIL", "personalised")]
    assert (email.recommendations, email.impressions, email.clicks, email.conversions) == (1, 1, 1, 1)
    assert email.revenue == 20.0 and email.conversions_in_channel == {"POS": 1} and email.click_through == 1.0
    web = rows[("WEB", "personalised")]
    assert (web.recommendations, web.conversions, web.revenue, web.conversion_rate) == (1, 1, 7.0, 1.0)
    (uplift,) = report.uplift
    assert uplift.channel == "WEB" and uplift.uplift == 0.0  # one of one converted in both arms
    # A 2-day window loses the store purchase three days after the mail.
    short = service.channel_report(T - DAY, T + 2 * DAY, attribution_days=2)
    assert {(r.channel, r.arm): r.conversions for r in short.rows}[("EMAIL", "personalised")] == 0


@pytest.mark.parametrize("days", [-1, 366])
def test_bad_attribution_window_names_the_field(service: Seenext, days: int) -> None:
    from models.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="attribution_days"):
        service.channel_report(T - DAY, T, attribution_days=days)
    with pytest.raises(InvalidArgument, match="period_end"):
        service.channel_report(T, T - DAY)


def test_an_email_list_counts_only_what_was_sent(service: Seenext) -> None:
    """Issue 9 point 10: two campaign runs answered the list twice; only the mails sent (an EMAIL_SENT
    quoting the recommendation) count, so the run nobody sent no longer dilutes the rate."""
    with world.storage_of(service) as storage:
        storage.record_served(
            [
                Served(
                    "run1-c1", "c1", "EMAIL", "newsletter", ["a"], "personalised", "v1", "personalised", T
                ),
                Served(
                    "run2-c1",
                    "c1",
                    "EMAIL",
                    "newsletter",
                    ["a"],
                    "personalised",
                    "v1",
                    "personalised",
                    T + 60,
                ),
                Served("web-c2", "c2", "WEB", "home", ["b"], "personalised", "v1", "personalised", T),
            ]
        )
    service.track_batch(
        [
            ev("sent", "c1", "EMAIL", "EMAIL_SENT", "", T + 120, "run2-c1"),
            ev("buy", "c1", "WEB", "PURCHASE", "a", T + DAY, price=5.0),
        ]
    )
    report = service.channel_report(T - DAY, T + 2 * DAY, attribution_days=7)
    rows = {(r.channel, r.arm): r for r in report.rows}
    assert rows[("EMAIL", "personalised")].recommendations == 1  # run 1 was never sent
    assert rows[("EMAIL", "personalised")].conversions == 1
    assert rows[("WEB", "personalised")].recommendations == 1  # shown on the page: served is shown
    assert report.warnings == []


def test_a_hold_out_share_changed_within_the_period_is_reported(service: Seenext) -> None:
    with world.storage_of(service) as storage:
        storage.record_served(
            [
                Served("p", "c1", "WEB", "home", ["a"], "personalised", "v1", "personalised", T),
                Served("h", "c1", "WEB", "home", ["a"], "holdout_popular", "v1", "holdout", T + DAY),
            ]
        )
    report = service.channel_report(T - DAY, T + 2 * DAY, attribution_days=7)
    assert report.warnings and report.warnings[0].startswith("WEB: 1 customers were served in both arms")
