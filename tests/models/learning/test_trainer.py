"""Training and the model registry: known-answer fit, artifact round trip, versions, rollback."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from models.errors import FailedPrecondition, NotFound
from models.learning.artifact import ModelArtifact
from models.service import Seenext
from models.settings import Settings
from tests.conftest import GROUPS, N_USERS, tiny_events, tiny_items


def test_each_taste_group_is_ranked_its_own_items_first(trained: Seenext) -> None:
    model = trained.serving_model
    assert model is not None
    space = model.items(trained.catalog_snapshot())
    hits = 0
    for u in range(N_USERS):
        scores = model.score_user(space, model.user_row(f"u{u}"))
        top = [space.ids[j] for j in np.argsort(-scores)[:3]]
        hits += sum(i.startswith(GROUPS[u % 3]) for i in top)
    assert hits / (3 * N_USERS) > 0.9


def test_artifact_is_arrays_and_json_only(trained: Seenext, settings: Settings) -> None:
    version = trained.serving_model.version  # type: ignore[union-attr]
    folder = settings.models_dir / version
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == version and manifest["customers"] == N_USERS and manifest["items"] == 20
    with zipfile.ZipFile(folder / "model.npz") as z:
        for name in z.namelist():
            with z.open(name) as fh:
                np.lib.format.read_magic(fh)
                header = np.lib.format.read_array_header_1_0(fh)
                assert header[2] != np.dtype(object), name  # nothing that would need pickle
    again = ModelArtifact.load(folder)
    assert again.user_vectors.shape == (N_USERS, settings.components)
    assert set(again.item_ids) == {it.item_id for it in tiny_items()}


def test_training_without_events_is_a_failed_precondition(service: Seenext) -> None:
    with pytest.raises(FailedPrecondition, match="no interactions"):
        service.train()


def test_rollback_restores_the_previous_answers(trained: Seenext) -> None:
    first = trained.serving_model
    assert first is not None
    space = first.items(trained.catalog_snapshot())
    before = first.score_user(space, first.user_row("u1"))
    second = trained.train()
    assert second.version != first.version
    assert trained.model_versions()[:2] == [second.version, first.version]
    trained.rollback(first.version)
    now = trained.serving_model
    assert now is not None and now.version == first.version
    np.testing.assert_allclose(
        now.score_user(now.items(trained.catalog_snapshot()), now.user_row("u1")), before
    )
    with pytest.raises(NotFound, match="'nope' is not kept"):
        trained.rollback("nope")


def test_old_versions_are_pruned(settings: Settings) -> None:
    svc = Seenext(Settings(**{**settings.__dict__, "models_kept": 2}))
    try:
        svc.track_batch(tiny_events())
        versions = [svc.train().version for _ in range(3)]
        assert svc.model_versions() == versions[::-1][:2]
    finally:
        svc.close()


def test_another_process_model_is_picked_up(trained: Seenext, settings: Settings) -> None:
    other = Seenext(settings)
    try:
        assert other.serving_model.version == trained.serving_model.version  # type: ignore[union-attr]
        newer = trained.train()
        assert other.reload_model() is True
        assert other.serving_model.version == newer.version  # type: ignore[union-attr]
    finally:
        other.close()


def test_holdout_metrics_are_reported(settings: Settings) -> None:
    svc = Seenext(Settings(**{**settings.__dict__, "eval_holdout_days": 4}))
    try:
        svc.upsert_items(tiny_items())
        svc.track_batch(tiny_events())
        metrics = svc.train().metrics
        assert {"precision@10", "recall@10", "ndcg@10", "popularity.precision@10"} <= set(metrics)
        assert metrics["holdout_customers"] > 0
    finally:
        svc.close()


def test_recency_is_anchored_no_later_than_now(settings: Settings) -> None:
    """Issue 9 point 8: history stored with dates weeks ahead (an earlier release accepted them) anchored
    the model's reference time in the future, so a known customer's live events were not fresh until the
    clock reached it. The reference is the earlier of the training time and the newest event."""
    import dataclasses
    import time

    from models.learning import trainer

    ahead = [dataclasses.replace(e, occurred_at=(e.occurred_at or 0) + 40 * 86400.0) for e in tiny_events()]
    from models.events import InteractionLog

    cols = {
        "customer_id": np.array([e.identifiers[0].value for e in ahead if e.item_id], dtype=object),
        "item_id": np.array([e.item_id for e in ahead if e.item_id], dtype=object),
        "type": np.array([e.type for e in ahead if e.item_id], dtype=object),
        "channel": np.array([e.channel for e in ahead if e.item_id], dtype=object),
        "occurred_at": np.array([e.occurred_at for e in ahead if e.item_id], dtype=np.float64),
        "order_id": np.array([e.order_id for e in ahead if e.item_id], dtype=object),
    }
    started = time.time()
    art = trainer.train(InteractionLog(**cols), tiny_items(), settings, "future")
    assert cols["occurred_at"].max() > started + 30 * 86400.0
    assert started <= art.manifest["reference_time"] <= time.time()
