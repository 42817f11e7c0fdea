"""A Forget interrupted after the store's erase committed is finished by a restart or a retry, and no
model version serves the customer's vector meanwhile (issue 10, point 1).

A crash is simulated by an exception at the point a kill would stop the process (after the erase
committed, before or during the rewrite of the kept model versions); the service is then closed
without any clean-up, as a killed process would leave the folder, and opened again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.domain import Event, Identifier
from models.learning.artifact import ModelArtifact
from models.privacy import rights
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings
from tests.conftest import stored_rows

U4 = Identifier("CUSTOMER_ID", "u4")


class Killed(Exception):
    """Where a kill -9 would have stopped the process."""


@pytest.fixture
def versions(trained: Seenext) -> Seenext:
    """The tiny world with three kept model versions, every one holding u4."""
    trained.train()
    trained.train()
    assert len(trained.model_versions()) == 3
    return trained


def holding(settings: Settings, user: str) -> list[str]:
    """Kept versions whose file on disk has a row for `user`."""
    folder = settings.models_dir
    kept = [p.name for p in folder.iterdir() if (p / "manifest.json").exists()]
    return [v for v in kept if user in set(ModelArtifact.load(folder / v).user_ids.tolist())]


def pending(settings: Settings) -> list[str]:
    return [r[0] for r in stored_rows(settings, "SELECT model_user_id FROM pending_erasures")]


def crash_forget(
    service: Seenext, monkeypatch: pytest.MonkeyPatch, *patches: tuple[object, str, object]
) -> None:
    """Forget u4 and 'kill' the process where the patches raise `Killed`; then the process is gone."""
    with monkeypatch.context() as m:
        for target, attr, replacement in patches:
            m.setattr(target, attr, replacement)
        with pytest.raises(Killed):
            service.forget(U4)
    service.close()


def reopen(settings: Settings) -> Iterator[Seenext]:
    svc = Seenext(settings)
    try:
        yield svc
    finally:
        svc.close()


def killed(*args: object) -> int:
    raise Killed


def disk_refuses(*args: object) -> int:
    raise OSError(28, "No space left on device")


def test_erase_committed_then_killed_before_any_rewrite_a_restart_finishes_it(
    versions: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    crash_forget(versions, monkeypatch, (rights, "erase_from_models", killed))
    assert pending(settings) == ["u4"] and len(holding(settings, "u4")) == 3  # the crash's state on disk
    assert stored_rows(settings, "SELECT COUNT(*) FROM events WHERE customer_id='u4'") == [(0,)]

    caplog.set_level(logging.DEBUG)
    for svc in reopen(settings):
        assert holding(settings, "u4") == [] and pending(settings) == []
        assert svc.serving_model is not None and svc.serving_model.user_row("u4") is None
        assert svc.serving_model.user_row("u5") is not None  # only the forgotten customer went
        # the same account comes back: it starts afresh, nothing personalised from the old vector
        svc.track(Event("back-1", (U4,), "WEB", "VIEW", "phone-1"))
        rec = svc.recommend(RecommendQuery(channel="WEB", who=U4, k=3))
        assert rec.recognised and "personalised" not in rec.strategy
    assert not [r.getMessage() for r in caplog.records if "u4" in r.getMessage()]  # ids stay out of logs


def test_a_retry_that_finds_no_customer_finishes_the_erasure(
    versions: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = versions.model_versions()
    crash_forget(versions, monkeypatch, (rights, "erase_from_models", killed))
    with monkeypatch.context() as m:  # a start that cannot finish it (the disk refuses) still starts
        m.setattr(rights, "erase_from_models", disk_refuses)
        svc = Seenext(settings)
    try:
        assert pending(settings) == ["u4"] and len(holding(settings, "u4")) == 3
        # while pending, no version made current serves u4's vector: start-up, reload, rollback
        assert svc.serving_model is not None and svc.serving_model.user_row("u4") is None
        svc.rollback(first[-1])
        assert svc.serving_model.user_row("u4") is None  # type: ignore[union-attr]
        svc.rollback(first[0])
        assert svc.serving_model.user_row("u4") is None  # type: ignore[union-attr]

        again = svc.forget(U4)  # the caller never got an answer, so it asks again
        assert again.customer_id == "" and again.model_versions == 3
        assert holding(settings, "u4") == [] and pending(settings) == []
        assert svc.forget(U4).model_versions == 0  # nothing left to do
    finally:
        svc.close()


def test_killed_half_way_through_the_versions_a_restart_finishes_the_rest(
    versions: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = ModelArtifact.save
    saved: list[Path] = []

    def save_one_then_die(self: ModelArtifact, folder: Path) -> None:
        if saved:
            raise Killed
        real_save(self, folder)
        saved.append(folder)

    crash_forget(versions, monkeypatch, (ModelArtifact, "save", save_one_then_die))
    assert len(saved) == 1 and len(holding(settings, "u4")) == 2 and pending(settings) == ["u4"]
    for svc in reopen(settings):
        assert holding(settings, "u4") == [] and pending(settings) == []
        assert svc.serving_model.user_row("u4") is None  # type: ignore[union-attr]


@pytest.mark.parametrize("step", [1, 2])
def test_killed_inside_one_rewrite_the_version_stays_intact_and_is_finished(
    versions: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    """Step 1: the new file is written, the manifest lists both checksums, the file is not replaced yet.
    Step 2: the file is replaced, the manifest still lists both checksums."""
    real_replace = os.replace
    done: list[str] = []

    def replace(src: Path, dst: Path) -> None:
        name = Path(dst).name
        if step == 1 and name == "model.npz":
            raise Killed
        if step == 2 and name == "manifest.json" and done[-1:] == ["model.npz"]:
            raise Killed
        done.append(name)
        real_replace(src, dst)

    crash_forget(versions, monkeypatch, (os, "replace", replace))
    kept = [p for p in settings.models_dir.iterdir() if (p / "manifest.json").exists()]
    for folder in kept:
        ModelArtifact.load(folder)  # every version still verifies: none looks damaged
    assert len(holding(settings, "u4")) == (3 if step == 1 else 2)
    for svc in reopen(settings):
        assert holding(settings, "u4") == [] and pending(settings) == []
        assert len(svc.model_versions()) == 3  # nothing was lost to the crash
        assert svc.serving_model.user_row("u4") is None  # type: ignore[union-attr]


def test_the_pending_record_is_written_with_the_erase_or_not_at_all(
    versions: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.storage.sqlite.privacy import SqlitePrivacy

    with monkeypatch.context() as m:
        m.setattr(SqlitePrivacy, "add_pending_erasures", killed)
        with pytest.raises(Killed):
            versions.forget(U4)
    assert versions.resolve(U4) == "u4" and pending(settings) == []  # rolled back together
    assert versions.forget(U4).model_versions == 3 and holding(settings, "u4") == []
