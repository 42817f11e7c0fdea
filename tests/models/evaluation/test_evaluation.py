"""Offline evaluation: metrics on a hand-computed fixture, the split protocol, baselines, bootstrap,
and `seenext evaluate` end to end on the tiny world (table, JSON and PNG).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.domain import DAY, Item
from models.evaluation import baselines, protocol
from models.evaluation.protocol import Split
from models.service import Seenext
from models.settings import Settings
from server.cli.main import main
from tests.conftest import tiny_events, tiny_items, tiny_settings


def hand_split() -> Split:
    return Split(
        description="hand",
        train=pd.DataFrame(),
        truth={"A": {"a", "c", "e"}, "B": {"w"}},
        candidates=["a", "b", "c", "d", "e", "w", "x", "y", "z", "q"],
        owned={},
        reference_time=0.0,
    )


def test_metrics_match_the_hand_computed_answer() -> None:
    ranked = {"A": ["a", "b", "c", "d"], "B": ["x", "y", "z", "w"]}
    result = protocol.evaluate_method("m", "", hand_split(), lambda u: ranked[u], k=4)
    # A: hits at 1 and 3 of 3 relevant; B: its one relevant item at 4.
    ap_a, ap_b = (1 / 1 + 2 / 3) / 3, (1 / 4) / 1
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ndcg_b = (1 / math.log2(5)) / 1
    assert result.value("precision") == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert result.value("recall") == pytest.approx((2 / 3 + 1) / 2)
    assert result.value("map") == pytest.approx((ap_a + ap_b) / 2)
    assert result.value("ndcg") == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert result.coverage == pytest.approx(8 / 10)  # 8 distinct items shown of 10 candidates
    assert result.per_user["map"].tolist() == pytest.approx([ap_a, ap_b])


def test_bootstrap_intervals_and_paired_differences() -> None:
    split = hand_split()
    good = protocol.evaluate_method("pipeline", "", split, lambda u: ["a", "c", "e", "w"], k=4)
    same = protocol.evaluate_method("twin", "", split, lambda u: ["a", "c", "e", "w"], k=4)
    worse = protocol.evaluate_method("worse", "", split, lambda u: ["x", "y", "z", "q"], k=4)
    diffs = protocol.bootstrap([good, same, worse], resamples=200, seed=1)
    mean, low, high = good.intervals["map"]
    assert low <= mean <= high
    assert diffs["twin"]["map"] == (0.0, 0.0, 0.0, 0.0)
    d, lo, _hi, above = diffs["worse"]["map"]
    assert d == pytest.approx(good.value("map")) and lo > 0 and above == 1.0


def frame(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(f"e{n}", c, "WEB", t, i, 1, 0.0, "", "", "", at, None) for n, (c, i, t, at) in enumerate(rows)],
        columns=list(protocol.EVENT_COLUMNS),
    )


EVENTS = frame(
    [
        ("u1", "tv", "PURCHASE", 1 * DAY),
        ("u1", "milk", "PURCHASE", 2 * DAY),
        ("u2", "tv", "VIEW", 3 * DAY),
        ("u2", "milk", "PURCHASE", 9 * DAY),
        ("u3", "radio", "PURCHASE", 9.5 * DAY),
        # after the cut (day 10)
        ("u1", "radio", "PURCHASE", 11 * DAY),
        ("u2", "new", "PURCHASE", 11 * DAY),
        ("u2", "tv", "VIEW", 11 * DAY),
        ("u9", "tv", "PURCHASE", 12 * DAY),
    ]
)
CATALOG = {i: Item(i, repeatable=(i == "milk")) for i in ("tv", "milk", "radio", "new")}


def test_time_split_protocol() -> None:
    split = protocol.time_split(EVENTS, CATALOG, holdout_days=2.0)  # newest day 12 -> cut at day 10
    assert len(split.train) == 5 and split.reference_time == 9.5 * DAY
    assert split.truth == {"u1": {"radio"}, "u2": {"new"}}  # purchases only; u9 has no history
    assert split.cold_customers == 1
    assert split.candidates == ["milk", "radio", "tv"]  # "new" first sold after the cut: not a candidate
    assert split.owned == {"u1": {"tv"}, "u3": {"radio"}}  # milk is repeatable; u2 only viewed the tv
    window = protocol.time_split(EVENTS, CATALOG, 0, cutoff=10 * DAY, test_days=1.5)
    assert window.truth == {"u1": {"radio"}, "u2": {"new"}} and window.cold_customers == 0


def test_pairs_split_holds_out_exactly_the_pairs() -> None:
    split = protocol.pairs_split(EVENTS, {}, {("u1", "milk"), ("u2", "milk")}, "pairs.test")
    assert split.truth == {"u1": {"milk"}, "u2": {"milk"}}
    assert not ((split.train["item_id"] == "milk") & split.train["customer_id"].isin(["u1", "u2"])).any()
    assert "milk" not in split.candidates  # nobody else ever had it


def test_baselines_rank_as_defined() -> None:
    split = protocol.time_split(EVENTS, CATALOG, holdout_days=2.0)
    settings = Settings()
    # interest: milk 5+5, tv 5+1, radio 5
    assert baselines.popularity(split, settings, 3)("u2") == ["milk", "tv", "radio"]
    assert baselines.popularity(split, settings, 3)("u1") == ["milk", "radio"]  # u1 owns the tv
    # last 1 day before day 9.5: only u2's milk (day 9) and u3's radio (day 9.5), then the rest
    assert baselines.popularity_recent(split, settings, 3, recent_days=1)("u2") == ["milk", "radio", "tv"]
    assert baselines.popularity_repeat(split, settings, 3)("u3") == [
        "milk",
        "tv",
    ]  # radio owned, not repeatable
    assert baselines.popularity_repeat(split, settings, 2)("u2")[0] == "milk"  # own repeatable first


def test_evaluate_command_writes_table_json_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    svc = Seenext(tiny_settings(data))
    svc.upsert_items(tiny_items())
    svc.track_batch(tiny_events())
    svc.close()
    monkeypatch.setenv("SEENEXT_TRAIN_THREADS", "1")
    monkeypatch.setenv("SEENEXT_EPOCHS", "10")
    out = tmp_path / "report" / "tiny"
    code = main(
        [
            "evaluate",
            "--data-dir",
            str(data),
            "--holdout-days",
            "2",
            "-k",
            "3",
            "--bootstrap",
            "50",
            "--out",
            str(out),
            "--set",
            "components=8",
            "--stale-days",
            "2",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(out.with_suffix(".json").read_text())
    names = [m["name"] for m in report["methods"]]
    assert names == [
        "popularity",
        "popularity_recent",
        "popularity_repeat",
        "lightfm_ids",
        "lightfm_defaults",
        "pipeline",
        "pipeline_stale",
        "pipeline_stale_nofold",
    ]
    assert report["customers"] == 60 and report["settings"]["components"] == 8
    for m in report["methods"]:
        low, high = m["metrics"]["map@3"]["ci95"]
        assert low <= m["metrics"]["map@3"]["value"] <= high
        assert m["name"] in printed
    assert set(report["pipeline_minus"]) == set(names) - {"pipeline"}
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pipeline = next(m for m in report["methods"] if m["name"] == "pipeline")
    popular = next(m for m in report["methods"] if m["name"] == "popularity")
    # The tiny world has three tastes: knowing the customer must beat one list for everyone.
    assert pipeline["metrics"]["precision@3"]["value"] > popular["metrics"]["precision@3"]["value"]
    assert np.isfinite(pipeline["seconds"])
