"""What a channel's call may link (issue 10 point 5) and what is kept readable of e-mail and phone (point 9).

A channel (web shop, till) may look a customer up and add to what its call proves; only a trusted
caller (call centre, CRM, operator) may change a person the call does not prove. E-mail and phone are
stored as hashes alone; a response masks the one the caller sent and shows the others by kind.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from models.domain import Event, Identifier
from models.errors import FailedPrecondition
from models.service import Seenext
from models.storage import open_storage
from models.storage.sqlite import migrations
from tests.conftest import stored_rows, tiny_settings

CID, EMAIL, PHONE, CARD, DEVICE, TOKEN = (
    "CUSTOMER_ID",
    "EMAIL",
    "PHONE",
    "LOYALTY_CARD",
    "DEVICE_ID",
    "POS_CARD_TOKEN",
)
VICTIM = Identifier(EMAIL, "Vera.Victim@Example.org")


def ids(*pairs: tuple[str, str]) -> list[Identifier]:
    return [Identifier(k, v) for k, v in pairs]


@pytest.fixture
def victim(service: Seenext) -> Seenext:
    """Vera: an account with her e-mail, phone, loyalty card, payment token and phone's device id."""
    service.identify(
        [
            Identifier(CID, "vera"),
            VICTIM,
            Identifier(PHONE, "+44 7700 900555"),
            Identifier(CARD, "6335 1111"),
            Identifier(TOKEN, "tok_vera"),
            Identifier(DEVICE, "vera-phone"),
        ]
    )
    return service


# -- what a channel may link -------------------------------------------------------------------------


def test_a_channel_may_look_a_customer_up_and_learns_nothing_else_changes(victim: Seenext) -> None:
    found = victim.identify([VICTIM], trusted=False)
    assert (found.customer_id, found.created, found.merged) == ("vera", False, False)
    both = victim.identify([VICTIM, Identifier(CARD, "63351111")], trusted=False)  # both hers: a look-up
    assert both.customer_id == "vera"


@pytest.mark.parametrize(
    "attack",
    [
        [VICTIM, Identifier(DEVICE, "attacker-laptop")],  # the campaign's attack
        [Identifier(DEVICE, "attacker-laptop"), VICTIM],
        [VICTIM, Identifier(TOKEN, "tok_attacker")],
        [VICTIM, Identifier(CARD, "6335 9999")],  # a strong identifier is no better evidence
        [Identifier(PHONE, "0044 7700 900 555"), Identifier(EMAIL, "attacker@x.example")],
        [Identifier(CID, "attacker-account"), VICTIM],  # a login proves its own account, not hers
    ],
)
def test_a_channel_cannot_link_anything_to_a_person_its_call_does_not_prove(
    victim: Seenext, attack: list[Identifier]
) -> None:
    # The attacker's device has an anonymous history of its own.
    victim.track(Event("anon", (Identifier(DEVICE, "attacker-laptop"),), "WEB", "VIEW", "i1"))
    before = stored_rows(
        victim.settings, "SELECT kind, value_key, customer_id FROM identifiers ORDER BY 1, 2"
    )
    with pytest.raises(FailedPrecondition) as err:
        victim.identify(attack, trusted=False)
    stranger = next(n for n, i in enumerate(attack) if victim.resolve(i) == "vera")
    assert (
        err.value.message.startswith(f"identifiers[{stranger}]: ")
        and "CUSTOMER_ID (a login)" in err.value.message
    )
    assert "Nothing was linked" in err.value.message
    assert (
        stored_rows(victim.settings, "SELECT kind, value_key, customer_id FROM identifiers ORDER BY 1, 2")
        == before
    )
    assert victim.resolve(Identifier(DEVICE, "attacker-laptop")) != "vera"


def test_a_login_on_the_call_lets_a_channel_link_to_its_own_customer(victim: Seenext) -> None:
    linked = victim.identify([Identifier(CID, "vera"), Identifier(DEVICE, "vera-laptop")], trusted=False)
    assert linked.customer_id == "vera" and victim.resolve(Identifier(DEVICE, "vera-laptop")) == "vera"
    with_mail = victim.identify([Identifier(CID, "vera"), VICTIM, Identifier(TOKEN, "tok_2")], trusted=False)
    assert with_mail.customer_id == "vera" and victim.resolve(Identifier(TOKEN, "tok_2")) == "vera"


def test_a_channel_may_create_customers_and_join_anonymous_histories(service: Seenext) -> None:
    for n in (1, 2):
        service.track(Event(f"v{n}", (Identifier(DEVICE, f"d-anon{n}"),), "WEB", "VIEW", "i1"))
    signup = service.identify(
        [Identifier(EMAIL, "new@x.example"), Identifier(DEVICE, "d-anon1")], trusted=False
    )
    assert not signup.created and service.resolve(Identifier(DEVICE, "d-anon1")) == signup.customer_id
    login = service.identify([Identifier(CID, "newbie"), Identifier(DEVICE, "d-anon2")], trusted=False)
    assert login.customer_id == "newbie" and service.resolve(Identifier(DEVICE, "d-anon2")) == "newbie"
    fresh = service.identify([Identifier(CARD, "777"), Identifier(TOKEN, "tok_777")], trusted=False)
    assert fresh.created
    # The known limit: d-anon1's customer holds an e-mail now (a person), so a new account on that
    # device is not joined to it by a channel: the e-mail was typed, not proven. An event or the call
    # centre can join them.
    with pytest.raises(FailedPrecondition, match=r"^identifiers\[1\]: this DEVICE_ID"):
        service.identify([Identifier(CID, "newbie2"), Identifier(DEVICE, "d-anon1")], trusted=False)


def test_a_trusted_caller_keeps_linking_as_before(victim: Seenext) -> None:
    """The call centre checks who is on the line: its Identify links (the over-merging guard still holds)."""
    linked = victim.identify([VICTIM, Identifier(DEVICE, "vera-tablet")])
    assert linked.customer_id == "vera" and victim.resolve(Identifier(DEVICE, "vera-tablet")) == "vera"


# -- nothing readable at rest; masks from what the caller sent -----------------------------------------


def test_views_mask_only_what_the_caller_sent(victim: Seenext) -> None:
    by_mail = victim.identify([VICTIM]).identifiers
    assert sorted((v.kind, v.display) for v in by_mail) == sorted(
        [
            (CID, "vera"),
            (EMAIL, "v***@example.org"),
            (PHONE, ""),
            (CARD, "63351111"),
            (DEVICE, "vera-phone"),
            (TOKEN, "tok_vera"),
        ]
    )
    by_account = {
        v.kind: v.display for v in victim.get_profile(Identifier(CID, "vera"), offers=0).identifiers
    }
    assert (by_account[EMAIL], by_account[PHONE], by_account[CARD]) == ("", "", "63351111")
    by_phone = victim.get_profile(Identifier(PHONE, "0044 7700 900-555"), offers=0).identifiers
    assert {v.kind: v.display for v in by_phone}[PHONE] == "+*********555"
    assert {v.kind: v.display for v in by_phone}[EMAIL] == ""
    assert all(v.key == "" for v in by_phone)  # the hashes stay inside the graph
    exported = [d.json for d in victim.export(Identifier(EMAIL, " vera.victim@example.org"))]
    assert any('"value": "v***@example.org"' in d for d in exported)
    assert not any("+*********555" in d for d in exported)


def test_no_readable_fragment_of_an_email_or_phone_is_stored(victim: Seenext) -> None:
    rows = stored_rows(
        victim.settings, "SELECT kind, display FROM identifiers WHERE kind IN ('EMAIL', 'PHONE')"
    )
    assert sorted(rows) == [(EMAIL, ""), (PHONE, "")]


def test_migration_blanks_old_masks_and_benches_blank_identifiers(tmp_path: Path) -> None:
    """A database written before issue 10: masks in the display column, and a "-" loyalty card that had
    merged strangers. After the migration the masks are gone from the file and the card links nobody."""
    db_path = tmp_path / "seenext.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    migrations.migrate(conn, target=4)  # the schema just before migration 5 (no readable PII)
    old = [
        ("EMAIL", "h:" + "a" * 64, "c1", "w***@oldmail.example", 1.0),
        ("PHONE", "h:" + "b" * 64, "c1", "+*********987", 2.0),
        ("LOYALTY_CARD", "", "c1", "", 3.0),
        ("LOYALTY_CARD", "777", "c2", "777", 4.0),
    ]
    conn.executemany(
        "INSERT INTO identifiers (kind, value_key, customer_id, display, created_at) VALUES (?, ?, ?, ?, ?)",
        old,
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert b"oldmail.example" in db_path.read_bytes()

    storage = open_storage(db_path)
    try:
        assert storage.schema_version() == migrations.SCHEMA_VERSION
        assert storage.identifier_row("LOYALTY_CARD", "").shared  # type: ignore[union-attr]
        assert not storage.identifier_row("LOYALTY_CARD", "777").shared  # type: ignore[union-attr]
        assert sorted((v.kind, v.display) for v in storage.identifier_views("c1")) == [
            ("EMAIL", ""),
            ("LOYALTY_CARD", ""),
            ("PHONE", ""),
        ]
        storage.compact()
    finally:
        storage.close()
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        for fragment in (b"oldmail.example", b"w***@", b"*********987"):
            assert fragment not in data, (fragment, path.name)


def test_a_server_restarted_on_old_data_still_recognises_everyone(tmp_path: Path) -> None:
    """Blanking the masks touches no key: every e-mail and phone is still recognised after a restart."""
    svc = Seenext(tiny_settings(tmp_path))
    svc.identify(
        [Identifier(CID, "ann"), Identifier(EMAIL, "ann@x.example"), Identifier(PHONE, "+4477009001")]
    )
    svc.close()
    svc = Seenext(tiny_settings(tmp_path))
    try:
        assert svc.resolve(Identifier(EMAIL, "ANN@x.example")) == "ann"
        assert svc.resolve(Identifier(PHONE, "+44 7700 9001")) == "ann"
    finally:
        svc.close()
