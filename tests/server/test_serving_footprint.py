"""What a serving process loads: the serving libraries, not the training ones.

pandas (with pyarrow), scipy and LightFM are needed to build the training matrices and fit; a replica
that only serves never uses them, and importing them made every serving process ~75-100 MB larger
(docs/performance.md, "Serving memory"): sqlite-utils imported pandas whenever it was installed, the
command line's help imported the evaluation pipeline, and serving modules imported the training
matrices' module for two small helpers.

A real fleet on one store, seeded the retailer's way (tests/server/test_fleet.py): the first replica
gets the catalogue and history through the stubs and trains (so it loads the training libraries); the
second only serves the model the first trained.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.test_fleet import Replica, backend_env, customer, seed_through_the_api, start_replica, stop

TRAINING_LIBRARIES = ("pandas", "pyarrow", "scipy", "lightfm")


def loaded_packages(pid: int) -> set[str]:
    """The installed packages whose files (extension modules, shared libraries) the process has mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return set(re.findall(r"site-packages/([A-Za-z0-9_]+)", maps))


@pytest.fixture
def trainer_and_server(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    env = backend_env(tmp_path)
    trainer = start_replica(env)
    try:
        seed_through_the_api(trainer)  # UpsertItems, TrackBatch and Train through its stubs
        server = start_replica(env)
    except BaseException:
        stop(trainer)
        raise
    yield trainer, server
    stop(trainer)
    stop(server)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's mappings from /proc")
def test_a_replica_that_only_serves_loads_no_training_library(
    trainer_and_server: tuple[Replica, Replica],
) -> None:
    trainer, server = trainer_and_server
    for u in range(4):  # answered from the model the other replica trained
        reply = server.recommend(customer(f"u{u}"), k=5)
        assert "personalised" in reply.strategy and reply.items, f"u{u}"
    assert "numpy" in loaded_packages(server.proc.pid)  # the mappings are read at all
    assert not loaded_packages(server.proc.pid) & set(TRAINING_LIBRARIES)
    # The replica that trained did load them: the check above sees them when they are there.
    assert {"pandas", "lightfm", "scipy"} <= loaded_packages(trainer.proc.pid)
