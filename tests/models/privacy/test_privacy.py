"""Consent per channel and purpose, Forget (story 7) and Export, at the model level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.domain import Event, Identifier
from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.learning.artifact import ModelArtifact
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from tests.conftest import stored_rows, tiny_settings

U4 = Identifier("CUSTOMER_ID", "u4")


def test_consent_defaults_then_channel_decision_wins_over_every_channel(service: Seenext) -> None:
    cid, _ = service.set_consent(Identifier("EMAIL", "dora@x.example"), "WEB", "profiling", True)
    assert service.has_consent(cid, "EMAIL", "marketing") is False  # default: marketing needs consent
    assert service.has_consent(cid, "POS", "profiling") is True  # default: profiling allowed
    service.set_consent(Identifier("EMAIL", "dora@x.example"), "", "marketing", True)  # every channel
    service.set_consent(Identifier("EMAIL", "dora@x.example"), "POS", "marketing", False)
    assert [service.has_consent(cid, ch, "marketing") for ch in ("EMAIL", "WEB", "POS")] == [
        True,
        True,
        False,
    ]
    assert service.with_consent([cid, "nobody", cid], "POS", "marketing") == set()
    assert service.with_consent([cid, "nobody"], "EMAIL", "marketing") == {cid}


def test_consent_defaults_are_settings(tmp_path: Path) -> None:
    svc = Seenext(tiny_settings(tmp_path, consent_default_marketing=True, consent_default_profiling=False))
    try:
        assert svc.has_consent("anyone", "EMAIL", "marketing") and not svc.has_consent(
            "anyone", "WEB", "profiling"
        )
    finally:
        svc.close()


@pytest.mark.parametrize(
    "channel, purpose, field", [("WEB", "spam", "purpose"), ("FAX", "marketing", "channel")]
)
def test_bad_consent_names_the_field(service: Seenext, channel: str, purpose: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        service.set_consent(U4, channel, purpose, True)
    assert err.value.field == field


def test_an_opt_out_before_any_event_is_honoured_when_the_customer_turns_up(trained: Seenext) -> None:
    trained.set_consent(Identifier("CUSTOMER_ID", "u5"), "", "profiling", False)
    rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u5"), k=3))
    assert rec.recognised and rec.strategy == "popular"
    new, _ = trained.set_consent(Identifier("PHONE", "+44 7700 900555"), "", "profiling", False)
    assert (
        trained.track(
            Event("x", (Identifier("PHONE", "+447700900555"),), "WEB", "VIEW", "phone-1")
        ).customer_id
        == new
    )
    assert not trained.has_consent(new, "WEB", "profiling")


def test_profiling_opt_out_in_one_channel_keeps_the_others_personalised(trained: Seenext) -> None:
    trained.set_consent(U4, "WEB", "profiling", False)
    web = trained.recommend(RecommendQuery(channel="WEB", who=U4, k=3, item_ids=["flowers-1"]))
    app = trained.recommend(RecommendQuery(channel="APP", who=U4, k=3))
    assert (
        web.strategy == "similar_items" and web.recognised
    )  # this request's context only, not their history
    assert app.strategy == "personalised"


def test_forget_erases_every_row_and_the_model_vector(trained: Seenext) -> None:
    trained.identify([U4, Identifier("EMAIL", "u4@x.example"), Identifier("DEVICE_ID", "d-u4")])
    trained.set_consent(U4, "EMAIL", "marketing", True)
    trained.recommend(RecommendQuery(channel="WEB", who=U4, k=2))
    trained.flush_served()
    version = trained.serving_model.version  # type: ignore[union-attr]
    assert trained.serving_model.user_row("u4") is not None  # type: ignore[union-attr]

    result = trained.forget(Identifier("EMAIL", "U4@x.example"))
    assert (result.customer_id, result.events, result.identifiers, result.consents) == ("u4", 5, 3, 1)
    assert result.recommendations >= 1 and result.model_versions == 1
    for (name,) in stored_rows(trained.settings, "SELECT name FROM sqlite_master WHERE type='table'"):
        for row in stored_rows(trained.settings, f'SELECT * FROM "{name}"'):
            assert not [v for v in row if str(v) == "u4" or str(v).startswith("u4-")], (name, row)
    assert trained.serving_model.user_row("u4") is None  # type: ignore[union-attr]
    on_disk = ModelArtifact.load(trained.settings.models_dir / version)
    assert "u4" not in set(on_disk.user_ids.tolist()) and len(on_disk.user_ids) == 59
    assert np.isfinite(on_disk.user_vectors).all()
    for who in (U4, Identifier("EMAIL", "u4@x.example"), Identifier("DEVICE_ID", "d-u4")):
        assert trained.resolve(who) is None
    rec = trained.recommend(RecommendQuery(channel="WEB", who=U4, k=2))
    assert not rec.recognised and rec.customer_id == ""
    assert trained.forget(U4).customer_id == ""  # nothing left: nothing erased, no error


def test_forget_by_a_shared_device_is_refused(service: Seenext) -> None:
    for n, account in enumerate(("a1", "a2")):
        service.track(
            Event(
                f"e{n}", (Identifier("CUSTOMER_ID", account), Identifier("DEVICE_ID", "tab")), "WEB", "VISIT"
            )
        )
    with pytest.raises(FailedPrecondition, match="shared by several customers"):
        service.forget(Identifier("DEVICE_ID", "tab"))


def test_export_returns_everything_held_and_masks_the_email(trained: Seenext) -> None:
    trained.identify([Identifier("CUSTOMER_ID", "u7"), Identifier("EMAIL", "Seven@X.example")])
    trained.set_consent(Identifier("CUSTOMER_ID", "u7"), "EMAIL", "marketing", True)
    docs = [(d.kind, json.loads(d.json)) for d in trained.export(Identifier("EMAIL", "seven@x.example"))]
    kinds = [k for k, _ in docs]
    assert kinds[0] == "customer" and docs[0][1]["customer_id"] == "u7"
    assert kinds.count("event") == 5 and kinds.count("consent") == 1 and kinds.count("identifier") == 2
    idents = {(d["kind"], d["value"]) for k, d in docs if k == "identifier"}
    assert idents == {("CUSTOMER_ID", "u7"), ("EMAIL", "s***@x.example")}
    assert "seven@x.example" not in json.dumps(docs).lower()
    event = next(d for k, d in docs if k == "event")
    assert event["occurred_at"].endswith("Z") and event["customer_id"] == "u7"
    with pytest.raises(NotFound):
        list(trained.export(Identifier("EMAIL", "nobody@x.example")))
