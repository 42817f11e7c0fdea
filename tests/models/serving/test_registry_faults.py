"""Damaged model files do not stop the server (issue 10, point 4): a truncated, bit-flipped or empty
current `model.npz`, or one with NaN vectors, makes start-up serve the newest intact version with one
clear log line; the watch thread survives a damaged version and picks up the next good one; training
refuses to publish NaN; CURRENT is never followed to a path.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.errors import FailedPrecondition
from models.learning import trainer
from models.learning.artifact import DamagedArtifact, ModelArtifact
from models.service import Seenext
from models.serving.registry import ModelRegistry
from models.settings import Settings


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def with_nan(path: Path) -> None:
    """Vectors with NaN written as a proper artifact: the checksum matches, the values do not serve."""
    artifact = ModelArtifact.load(path.parent)
    artifact.user_vectors = artifact.user_vectors.copy()
    artifact.user_vectors[3, 1] = np.nan
    artifact.save(path.parent)


@pytest.fixture
def two_versions(trained: Seenext) -> tuple[str, str]:
    """(older, newer): the newer one is CURRENT."""
    newer = trained.train().version
    older = trained.model_versions()[1]
    trained.close()
    return older, newer


@pytest.mark.parametrize("damage", [truncate, flip_a_bit, empty, with_nan], ids=lambda f: f.__name__)
def test_a_damaged_current_version_starts_on_the_newest_intact_one(
    two_versions: tuple[str, str],
    settings: Settings,
    damage: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    older, newer = two_versions
    damage(settings.models_dir / newer / "model.npz")
    with pytest.raises(DamagedArtifact, match=newer):
        ModelArtifact.load(settings.models_dir / newer)

    caplog.set_level(logging.INFO, logger="models.serving.registry")
    svc = Seenext(settings)
    try:
        assert svc.serving_model is not None and svc.serving_model.version == older
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert newer in errors[0] and f"serving {older}" in errors[0] and "CURRENT still names" in errors[0]
        # CURRENT keeps naming what failed, for the operator; the status says what serves
        assert (settings.models_dir / "CURRENT").read_text() == newer
        assert svc.model_info().version == older
        assert [m.version for m in svc.list_models()] == [newer, older]
        with pytest.raises(FailedPrecondition, match=f"model_version: model {newer}"):
            svc.rollback(newer)
        assert svc.serving_model.version == older
    finally:
        svc.close()


def test_every_version_damaged_starts_without_a_model(
    two_versions: tuple[str, str], settings: Settings
) -> None:
    for version in two_versions:
        truncate(settings.models_dir / version / "model.npz")
    svc = Seenext(settings)
    try:
        assert svc.serving_model is None  # popular items serve, the process is up
    finally:
        svc.close()


def test_a_current_that_names_a_path_is_not_followed(
    two_versions: tuple[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    older, newer = two_versions
    elsewhere = tmp_path_factory.mktemp("another-data-dir")
    (settings.models_dir / newer).rename(elsewhere / newer)
    (settings.models_dir / "CURRENT").write_text(str(elsewhere / newer))
    svc = Seenext(settings)
    try:
        assert svc.serving_model is not None and svc.serving_model.version == older
    finally:
        svc.close()


def test_training_refuses_a_model_with_nan_and_keeps_serving(
    trained: Seenext, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = trained.serving_model
    real_train = trainer.train

    def diverged(*args: object, **kwargs: object) -> ModelArtifact:
        artifact = real_train(*args, **kwargs)  # type: ignore[arg-type]
        artifact.item_vectors[0, 0] = np.inf
        return artifact

    monkeypatch.setattr(trainer, "train", diverged)
    with pytest.raises(FailedPrecondition, match="item_vectors holds NaN or infinite values"):
        trained.train()
    assert trained.serving_model is serving and len(trained.model_versions()) == 1


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Polls until the watch thread has done something (the deadline only stops a hung test)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_watch_thread_survives_a_damaged_version_and_picks_up_the_next_good_one(
    trained: Seenext, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="models.serving.registry")
    watcher = Seenext(settings)  # another serving process on the same data folder
    try:
        watcher.start_background()
        first = watcher.serving_model
        assert first is not None
        broken = trained.train().version
        truncate(settings.models_dir / broken / "model.npz")

        def complained() -> bool:
            return any(broken in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)

        wait_for(complained, "the damaged version to be reported")
        seen = len(caplog.records)
        time.sleep(10 * settings.reload_seconds)  # more polls: the damaged file is reported once, not each
        assert not [r for r in caplog.records[seen:] if broken in r.getMessage()]
        assert watcher.serving_model is first
        assert [t for t in threading.enumerate() if t.name == "model-watch" and t.is_alive()]

        good = trained.train().version
        wait_for(lambda: watcher.serving_model is not None and watcher.serving_model.version == good, "swap")
    finally:
        watcher.close()


def test_the_watch_thread_outlives_an_unexpected_error(
    trained: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = Seenext(settings)
    try:
        failures = []
        real_load = ModelArtifact.load

        def load_fails_once(folder: Path, **how: bool) -> ModelArtifact:
            if not failures:
                failures.append(folder)
                raise MemoryError("simulated")
            return real_load(folder, **how)

        monkeypatch.setattr(ModelArtifact, "load", staticmethod(load_fails_once))
        watcher.start_background()
        newer = trained.train().version
        wait_for(lambda: watcher.serving_model is not None and watcher.serving_model.version == newer, "swap")
        assert failures
    finally:
        watcher.close()


def test_model_versions_are_private_whatever_the_umask(trained: Seenext) -> None:
    """Issue 10 point 9: the CLI runs with umask 077, but a program using the facade directly got
    0755/0644 model folders and files; artifacts carry customers' vectors, so they are private always."""
    old = os.umask(0o022)
    try:
        version = trained.train().version
    finally:
        os.umask(old)
    folder = trained.settings.models_dir / version
    modes = {p.name: p.stat().st_mode & 0o777 for p in (folder, *folder.iterdir())}
    assert modes == {version: 0o700, "model.npz": 0o600, "manifest.json": 0o600}
    assert trained.settings.models_dir.stat().st_mode & 0o777 == 0o700


def test_a_poll_that_read_current_before_this_process_swapped_never_serves_the_older_model(
    two_versions: tuple[str, str], settings: Settings
) -> None:
    """The watch thread read CURRENT, then this process rolled back (or published) before the poll acted
    on the read: the poll must not swap the model it read about back in. It did, for one poll period, and
    a Train answered with the version it had replaced (test_grpc's model swap failed on PostgreSQL)."""
    older, newer = two_versions
    registry = ModelRegistry(settings.models_dir)
    registry.refresh()
    assert registry.current is not None and registry.current.version == newer
    other = ModelRegistry(settings.models_dir)  # another process rolls back to the older version
    other.rollback(older)

    read, go = threading.Event(), threading.Event()
    real = registry._holds_forgotten

    def pause_after_the_first_read(model: object) -> bool:  # called right after CURRENT is read
        if not read.is_set():
            read.set()
            assert go.wait(10)
        return real(model)  # type: ignore[arg-type]

    registry._holds_forgotten = pause_after_the_first_read  # type: ignore[method-assign]
    poll = threading.Thread(target=registry.refresh)
    poll.start()
    assert read.wait(10)  # the poll has read CURRENT = older
    # this process's operator chooses the newer one again, while the poll holds its read: the rollback
    # either waits for the poll to finish or (when the poll read outside the registry's lock) is done
    # before the poll acts; a second is ample for the latter
    roll = threading.Thread(target=registry.rollback, args=(newer,))
    roll.start()
    roll.join(1.0)
    go.set()
    poll.join(10)
    roll.join(10)
    assert not poll.is_alive() and not roll.is_alive()
    assert registry.current is not None and registry.current.version == newer
    assert (settings.models_dir / "CURRENT").read_text().strip() == newer
