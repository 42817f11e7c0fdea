"""The e-mail system's client against a real server: campaign offers streamed, consent, reminders."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from clients.email import EmailClient
from clients.email import main as email_main
from models.domain import Event, Identifier


def test_offers_stream_one_answer_per_customer_in_order_across_chunks(channel: grpc.Channel) -> None:
    campaign = ["alice", "c01", "c02", "nobody-known", "c04"]
    replies = list(EmailClient(channel).offers(campaign, k=3, chunk_size=2))
    assert [r.customer_id or "?" for r in replies] == ["alice", "c01", "c02", "?", "c04"]
    by = dict(zip(campaign, replies, strict=True))  # one reply per customer asked
    assert by["c01"].items == [] and by["c01"].strategy == "no_consent"  # no consent recorded
    assert by["nobody-known"].items == [] and not by["nobody-known"].recognised
    assert len(by["c02"].items) == 3 and all(i.reasons[0].text for i in by["c02"].items)
    assert "phone-1" not in [i.item_id for i in by["alice"].items]


def test_a_reader_that_stops_early_gets_what_it_read(channel: grpc.Channel) -> None:
    stream = EmailClient(channel).offers([f"c{n:02d}" for n in range(0, 60, 2)], k=2)
    first = next(stream)
    stream.close()  # cancels the call; the server stops producing
    assert first.customer_id == "c00"


def test_bad_campaigns_are_refused_naming_the_field(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(EmailClient(channel).offers(["c00", ""], k=2))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
        "who[1].value"
    )
    with pytest.raises(grpc.RpcError) as err:
        list(EmailClient(channel).offers(["c00"], k=500))
    assert err.value.details().startswith("k:")


def test_reminders_for_a_window(running: object, channel: grpc.Channel) -> None:
    last_year = dt.datetime.now(dt.UTC).replace(hour=12) - dt.timedelta(days=365)
    running.service.track_batch(
        [  # type: ignore[attr-defined]
            Event(
                f"{who}-flowers",
                (Identifier("CUSTOMER_ID", who),),
                "WEB",
                "PURCHASE",
                f"flowers-{n + 1}",
                occurred_at=last_year.timestamp() - n * 86400,
            )
            for n, who in enumerate(["alice", "ann", "amy", "ava"])
        ]
    )  # a season: many bought flowers then
    now = dt.datetime.now(dt.UTC)
    reminders = list(
        EmailClient(channel).reminders(now - dt.timedelta(days=3), now + dt.timedelta(days=3), k=2)
    )
    alice = next(r for r in reminders if r.customer_id == "alice")
    assert alice.reason.startswith("You bought flowers around") and alice.reason.endswith("last year")
    assert [i.category for i in alice.items] == ["flowers", "flowers"]


def test_the_command_line_prints_offers_and_throughput(
    running: object, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{running.port}"  # type: ignore[attr-defined]
    email_main(
        [
            "--target",
            target,
            "offers",
            "--prefix",
            "c",
            "--width",
            "2",
            "--first",
            "0",
            "--count",
            "6",
            "--show",
            "2",
            "-k",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert "c00 —" in out and "6 customers, 3 with offers" in err and "customers/s" in err


def test_a_bad_reminder_window_is_refused_naming_the_field(channel: grpc.Channel) -> None:
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(grpc.RpcError) as err:
        list(EmailClient(channel).reminders(now, now - dt.timedelta(days=1)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
        "window_end:"
    )
