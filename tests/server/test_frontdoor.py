"""`seenext evaluate --front-door` against a real server, on a tiny clickstream world with a known
answer: every customer carted one item before the cut-off, did not buy it, and buys it after.

"What they carted and did not buy" finds every purchase (hit rate 1); popularity and "what they
bought, then popular" find none (these customers bought nothing before, and the popular items are
others). The service's row is whatever the server answers: checked against the same Recommend calls
made here, and against what the server stored (the train events only, items without flags).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest

from models.domain import DAY, Identifier, Item
from models.evaluation import baselines, protocol
from models.learning import metrics
from models.settings import Settings
from protos.seenext.v1 import (
    common_pb2,
    model_pb2,
    model_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server.cli import frontdoor, frontdoor_client
from server.cli.main import main

T0 = 1_500_000_000.0  # 2017-07-14: a history years old, as the datasets are
CUSTOMERS = [f"c{n}" for n in range(6)]
POPULAR = {"pop-1": 8, "pop-2": 6, "pop-3": 4, "pop-4": 2}  # item -> shoppers who buy it
K = 3


def write_world(path: Path) -> None:
    """Taobao rows (user,item,category,behavior,timestamp): shoppers s0..s7 buy the popular items
    on days 1-3; customer c<n> views seen-c<n> on day 4, views and carts want-c<n> on day 5, and buys
    want-c<n> on day 7.5, after the cut-off (the newest event minus one day)."""
    rows = []
    for item, buyers in POPULAR.items():
        for s in range(buyers):
            at = T0 + DAY + s * 3 * 3600 + int(item[-1]) * 60
            rows += [(f"s{s}", item, "10", "pv", at - 60), (f"s{s}", item, "10", "buy", at)]
    for n, c in enumerate(CUSTOMERS):
        rows += [
            (c, f"seen-{c}", "30", "pv", T0 + 4 * DAY + n * 60),
            (c, f"want-{c}", "20", "pv", T0 + 5 * DAY + n * 60),
            (c, f"want-{c}", "20", "cart", T0 + 5.5 * DAY + n * 60),
            (c, f"want-{c}", "20", "buy", T0 + 7.5 * DAY + n * 60),
        ]
    lines = [f"{u},{i},{cat},{b},{int(t)}" for u, i, cat, b, t in sorted(rows, key=lambda r: r[4])]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def world(tmp_path: Path) -> Path:
    path = tmp_path / "world.csv"
    write_world(path)
    return path


@pytest.fixture
def small_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A small, single-threaded fit for the baselines here and for a server started by the harness
    (it inherits the environment)."""
    for name, value in {"EPOCHS": "10", "COMPONENTS": "8", "TRAIN_THREADS": "1"}.items():
        monkeypatch.setenv(f"SEENEXT_{name}", value)
    yield


def evaluate(world: Path, out: Path, *extra: str) -> dict[str, object]:
    code = main(
        [
            "evaluate",
            "--front-door",
            "--dataset",
            "taobao",
            "--source",
            str(world),
            "--holdout-days",
            "1",
            "-k",
            str(K),
            "--bootstrap",
            "50",
            "--metric",
            "hit_rate",
            "--out",
            str(out),
            *extra,
        ]
    )
    assert code == 0
    report: dict[str, object] = json.loads(out.with_suffix(".json").read_text())
    return report


def rows_by_name(report: dict[str, object]) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    methods = report["methods"]
    assert isinstance(methods, list)
    return {m["name"]: m["metrics"] for m in methods}


def check_rows(report: dict[str, object]) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    """Every method present, every metric with its interval around it; the baselines' known answers."""
    rows = rows_by_name(report)
    assert list(rows) == list(frontdoor.METHODS)  # the clickstream baseline too: the world has views
    for name, by_metric in rows.items():
        assert set(by_metric) == {f"{m}@{K}" for m in protocol.METRICS}, name
        for metric, cell in by_metric.items():
            low, high = cell["ci95"]  # type: ignore[misc]
            assert low <= cell["value"] <= high, (name, metric)  # type: ignore[operator]
    assert report["customers"] == len(CUSTOMERS)
    carted = rows["viewed_not_bought"]
    assert carted[f"hit_rate@{K}"]["value"] == 1.0 and carted[f"map@{K}"]["value"] == 1.0
    assert carted[f"precision@{K}"]["value"] == pytest.approx(1 / K, abs=1e-5)
    for name in ("popularity", "popularity_recent", "repeat_then_popular"):
        assert rows[name][f"hit_rate@{K}"]["value"] == 0.0, name
    assert set(report["service_minus"]) == set(frontdoor.METHODS) - {"service"}  # type: ignore[arg-type]
    return rows


def test_front_door_starts_its_own_server_and_reports_every_baseline(
    world: Path, tmp_path: Path, small_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate(world, tmp_path / "out" / "world")
    check_rows(report)
    printed = capsys.readouterr().out
    for name in frontdoor.METHODS:
        assert name in printed
    door = report["front_door"]
    assert isinstance(door, dict)
    assert door["server"].startswith("an empty server started here")
    # Only the train part went in, every event accepted, the catalogue at the cut-off.
    sent = door["sent"]
    assert sent["events"] == sent["accepted"] == report["train_events"] and sent["rejected"] == 0
    assert sent["items"] == report["candidates"]
    assert door["events_in_store_before"] == 0
    assert door["time_shift_days"] > 3000  # 2017 moved to today
    assert sum(door["strategies"].values()) == len(CUSTOMERS) and "error" not in door["strategies"]


def test_front_door_against_a_running_server_measures_what_it_answers(
    world: Path, tmp_path: Path, small_model: None, server: object, channel: grpc.Channel
) -> None:
    port = server.port  # type: ignore[attr-defined]
    report = evaluate(world, tmp_path / "world", "--target", f"127.0.0.1:{port}")
    rows = check_rows(report)
    door = report["front_door"]
    assert isinstance(door, dict) and door["server"] == f"the running server 127.0.0.1:{port}"

    # The server holds the train events and nothing after the cut-off: no purchase of a want- item.
    status = model_pb2_grpc.ModelServiceStub(channel).GetModelStatus(model_pb2.GetModelStatusRequest())
    assert status.events_stored == report["train_events"]
    service = server.service  # type: ignore[attr-defined]
    for c in CUSTOMERS:
        customer = service.resolve(Identifier("CUSTOMER_ID", c))
        assert customer is not None
        assert f"want-{c}" not in {item for item, _ in service.purchased_items(customer)}
        stored = service.get_item(f"want-{c}")
        assert stored.repeatable is None and stored.active  # sent without flags: learned, on sale

    # The service's row is the server's own answers, unfiltered: the same calls give the same figures.
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    hits, precision = [], []
    for c in CUSTOMERS:
        reply = stub.Recommend(
            recommendation_pb2.RecommendRequest(
                who=common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=c),
                channel=common_pb2.CHANNEL_WEB,
                placement="home",
                k=K,
            )
        )
        ranked = [it.item_id for it in reply.items]
        hits.append(metrics.hit_rate_at_k(ranked, {f"want-{c}"}, K))
        precision.append(metrics.precision_at_k(ranked, {f"want-{c}"}, K))
    assert rows["service"][f"hit_rate@{K}"]["value"] == pytest.approx(sum(hits) / len(hits), abs=1e-5)
    assert rows["service"][f"precision@{K}"]["value"] == pytest.approx(
        sum(precision) / len(precision), abs=1e-5
    )


def test_items_go_out_without_flags_and_dates_move_by_whole_days() -> None:
    msg = frontdoor_client.item_msg(
        Item("a", title="A", category="c", price=2.0, repeatable=True, active=False)
    )
    assert msg.item_id == "a" and msg.category == "c" and msg.price == 2.0
    assert not msg.HasField("repeatable") and not msg.HasField("active")
    assert frontdoor_client.item_msg(Item("a"), repeatable=True).repeatable  # the reference run only
    split = protocol.Split("s", pd.DataFrame(), {}, [], {}, reference_time=T0 + 0.25 * DAY)
    shift = frontdoor.shift_for(split, now=T0 + 10.5 * DAY)
    assert shift == 10 * DAY  # the newest train event lands in the day before now


def frame(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(f"e{n}", c, "WEB", t, i, 1, 0.0, "", "", "", at, None) for n, (c, i, t, at) in enumerate(rows)],
        columns=list(protocol.EVENT_COLUMNS),
    )


def test_the_front_door_baselines_rank_as_defined() -> None:
    events = frame(
        [
            ("u1", "tea", "PURCHASE", 1 * DAY),
            ("u1", "mug", "PURCHASE", 2 * DAY),
            ("u1", "pot", "VIEW", 3 * DAY),
            ("u1", "cup", "ADD_TO_CART", 3.5 * DAY),
            ("u1", "spoon", "VIEW", 4 * DAY),
            ("u1", "tea", "VIEW", 4.5 * DAY),  # viewed again, but bought: not "looked at, not bought"
            ("u2", "tea", "PURCHASE", 5 * DAY),
            ("u2", "tea", "PURCHASE", 5.5 * DAY),
            ("u1", "pot", "PURCHASE", 11 * DAY),  # after the cut
        ]
    )
    split = protocol.time_split(events, {}, holdout_days=5.0)  # cut at day 6
    settings = Settings()
    # interest: tea 5+1+5+5, mug 5, cup 3, pot 1, spoon 1; nothing is flagged: u1 "owns" tea and mug
    assert baselines.repeat_then_popular(split, settings, 4)("u1") == ["mug", "tea", "cup", "pot"]
    assert baselines.viewed_not_bought(split, settings, 4)("u1") == ["cup", "spoon", "pot"]
    assert baselines.popularity(split, settings, 2)("u1") == ["cup", "pot"]
    assert metrics.hit_rate_at_k(["a", "b", "c"], {"c"}, 3) == 1.0
    assert metrics.hit_rate_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
