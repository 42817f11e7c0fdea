"""Model versions on disk and the one serving in memory.

`models/<version>/` holds each artifact, `models/CURRENT` names the serving one. Every serving
process polls CURRENT, so a model trained (or rolled back) by any process is picked up by all.
Swapping is one reference assignment: a request holds the model it started with to the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from models.errors import NotFound
from models.learning.artifact import ModelArtifact, write_atomic
from models.serving.embeddings import RankingModel

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, folder: Path, keep: int = 5) -> None:
        self.folder = folder
        self.keep = keep
        folder.mkdir(parents=True, exist_ok=True)
        self._current: RankingModel | None = None
        self._loaded_pointer: str | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> RankingModel | None:
        return self._current

    def publish(self, artifact: ModelArtifact) -> RankingModel:
        """Writes a new version, points CURRENT at it, swaps it in, prunes old versions."""
        artifact.save(self.folder / artifact.version)
        model = self._activate(artifact.version, RankingModel(artifact))
        self._prune()
        return model

    def rollback(self, version: str) -> RankingModel:
        if not (self.folder / version / "manifest.json").exists():
            raise NotFound(
                f"model_version: {version!r} is not kept (kept: {', '.join(self.versions()) or 'none'})"
            )
        return self._activate(version, RankingModel(ModelArtifact.load(self.folder / version)))

    def versions(self) -> list[str]:
        """Kept versions, newest first (names sort by time)."""
        return sorted((p.name for p in self.folder.iterdir() if (p / "manifest.json").exists()), reverse=True)

    def manifest(self, version: str) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.folder / version / "manifest.json").read_text())
        return manifest

    def refresh(self) -> bool:
        """Loads the version CURRENT names if it is not the one serving. True if it swapped."""
        pointer = self._pointer()
        if pointer is None or pointer == self._loaded_pointer:
            return False
        with self._lock:
            if pointer == self._loaded_pointer:
                return False
            try:
                model = RankingModel(ModelArtifact.load(self.folder / pointer))
            except (OSError, ValueError, KeyError) as exc:
                log.error("cannot load model %s named by CURRENT: %s", pointer, exc)
                self._loaded_pointer = pointer  # do not retry a broken artifact every poll
                return False
            self._current = model
            self._loaded_pointer = pointer
            log.info("model %s loaded", pointer)
            return True

    def watch(self, every: float, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(every):
                self.refresh()

        thread = threading.Thread(target=loop, name="model-watch", daemon=True)
        thread.start()
        return thread

    def _activate(self, version: str, model: RankingModel) -> RankingModel:
        with self._lock:
            write_atomic(self.folder / "CURRENT", version)
            self._current = model
            self._loaded_pointer = version
        log.info("model %s serving", version)
        return model

    def _pointer(self) -> str | None:
        try:
            return (self.folder / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _prune(self) -> None:
        serving = self._loaded_pointer
        for old in self.versions()[self.keep :]:
            if old != serving:
                shutil.rmtree(self.folder / old, ignore_errors=True)


def new_version() -> str:
    """Sortable by time to the microsecond (trainings are serialised), e.g. 20261122T224059.123456Z."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
