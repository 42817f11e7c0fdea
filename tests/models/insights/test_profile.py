"""GetProfile (story 5): the call-centre page, looked up by phone or e-mail."""

from __future__ import annotations

import pytest

from models.domain import Event, Identifier
from models.errors import InvalidArgument, NotFound
from models.service import Seenext
from tests.conftest import DAY, NOW, stored_rows

PHONE = Identifier("PHONE", "+44 7700 900111")


@pytest.fixture
def caller(trained: Seenext) -> Seenext:
    """u3 (a phone person) with a phone number, mails, and a consent decision."""
    trained.identify([Identifier("CUSTOMER_ID", "u3"), PHONE, Identifier("EMAIL", "u3@x.example")])
    who = (Identifier("EMAIL", "u3@x.example"),)
    trained.track_batch(
        [
            Event("m1", who, "EMAIL", "EMAIL_SENT", occurred_at=NOW - 2 * DAY),
            Event("m2", who, "EMAIL", "EMAIL_SENT", occurred_at=NOW - DAY),
            Event("m3", who, "EMAIL", "EMAIL_OPEN", occurred_at=NOW - DAY + 60),
            Event("m4", who, "EMAIL", "EMAIL_CLICK", "case-3", occurred_at=NOW - DAY + 90),
        ]
    )
    trained.set_consent(PHONE, "EMAIL", "marketing", True)
    return trained


def test_profile_by_phone_shows_the_whole_customer(caller: Seenext) -> None:
    p = caller.get_profile(Identifier("PHONE", "0044 (0)7700-900-111"))
    assert p.customer_id == "u3"
    assert sorted((i.kind, i.display) for i in p.identifiers) == [
        ("CUSTOMER_ID", "u3"),
        ("EMAIL", ""),  # only the identifier asked with is shown masked; nothing readable of the rest is held
        ("PHONE", "+*********111"),
    ]
    assert {(c.channel, c.events) for c in p.channels} == {("WEB", 4), ("POS", 1), ("EMAIL", 4)}
    assert sorted((x.channel, x.store_id) for x in p.purchases) == [("POS", "store-1"), ("WEB", "")]
    assert all(x.title.startswith("Phone") for x in p.purchases)
    assert (p.email.sent, p.email.opened, p.email.clicked) == (2, 1, 1)
    assert [(c.channel, c.purpose, c.granted) for c in p.consents] == [("EMAIL", "marketing", True)]
    assert p.last_seen == p.timeline[0].occurred_at and p.timeline[0].event_id == "m4"
    assert p.first_seen is not None and p.first_seen < p.last_seen
    offers = [r.item_id for r in p.next_best_offers]
    assert len(offers) == 5 and not {x.item_id for x in p.purchases} & set(offers)


def test_timeline_pages_through_every_event_newest_first(caller: Seenext) -> None:
    seen: list[str] = []
    token = ""
    while True:
        page = caller.get_profile(PHONE, timeline_limit=3, page_token=token, offers=0)
        seen += [e.event_id for e in page.timeline]
        token = page.next_page_token
        if not token:
            break
    times = [
        t
        for (t,) in stored_rows(
            caller.settings,
            "SELECT occurred_at FROM events WHERE customer_id='u3' ORDER BY occurred_at DESC, seq DESC",
        )
    ]
    assert len(seen) == len(set(seen)) == len(times) == 9


@pytest.mark.parametrize(
    "kw, field", [({"timeline_limit": 501}, "timeline_limit"), ({"page_token": "not-a-token"}, "page_token")]
)
def test_bad_paging_names_the_field(caller: Seenext, kw: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        caller.get_profile(PHONE, **kw)
    assert err.value.field == field


def test_unknown_identifier_is_not_found(caller: Seenext) -> None:
    with pytest.raises(NotFound, match="no customer has this EMAIL"):
        caller.get_profile(Identifier("EMAIL", "stranger@x.example"))
    with pytest.raises(InvalidArgument, match="who: is required"):
        caller.get_profile(None)
