"""Model artifacts in a shared folder and one training at a time across the fleet (issue 11 point 2)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.errors import AlreadyRunning
from models.service import Seenext
from models.serving.lease import FleetLease
from models.settings import Settings
from models.storage import open_storage
from tests.conftest import tiny_events, tiny_items

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def shared(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, shared_models_dir=str(tmp_path / "mount" / "models"))


def test_every_replica_follows_the_version_trained_into_the_shared_folder(shared: Settings) -> None:
    with Seenext(shared) as trainer, Seenext(shared) as replica:
        trainer.upsert_items(tiny_items())
        trainer.track_batch(tiny_events())
        assert replica.serving_model is None
        version = trainer.train().version
        assert (Path(shared.shared_models_dir) / version / "model.npz").exists()
        assert not (shared.data_dir / "models" / version).exists()
        assert replica.reload_model() and replica.serving_model is not None
        assert replica.serving_model.version == version


def test_a_training_elsewhere_in_the_fleet_holds_training_off(trained: Seenext, settings: Settings) -> None:
    """The lease is in the database: a training on another host (its holder names that host) refuses
    this one, which trains once the lease is given back."""
    storage = open_storage(settings.db_path)
    try:
        other = "training@another-host:4242:cafe0123"
        assert storage.take_lease("training", other, 60.0, time.time())
        with pytest.raises(AlreadyRunning, match="training is already running on another replica"):
            trained.train()
        storage.release_lease("training", other)
        assert trained.train().version
        assert storage.lease_holder("training", time.time()) is None  # given back after the training
    finally:
        storage.close()


def test_a_lease_of_a_process_of_this_host_that_died_is_taken_over(
    settings: Settings, trained: Seenext
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    storage = open_storage(settings.db_path)
    try:
        assert storage.take_lease("training", f"training@{socket.gethostname()}:{pid}:0", 60.0, time.time())
        held = FleetLease(storage, "training").acquire("training", wait=False)  # not 60 s later: now
        assert held.holder.startswith("training@")
        held.release()
    finally:
        storage.close()


def test_seenext_train_runs_as_its_own_job(shared: Settings) -> None:
    with Seenext(shared) as service:
        service.upsert_items(tiny_items())
        service.track_batch(tiny_events())
    env = {
        "SEENEXT_DATA_DIR": str(shared.data_dir),
        "SEENEXT_SHARED_MODELS_DIR": shared.shared_models_dir,
        "SEENEXT_EPOCHS": "2",
        "SEENEXT_COMPONENTS": "4",
        "SEENEXT_TRAIN_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "train"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (Path(shared.shared_models_dir) / "CURRENT").exists()
