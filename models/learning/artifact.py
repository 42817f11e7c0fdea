"""The model artifact: one folder per version holding `model.npz` (arrays only, loaded with
allow_pickle=False) and `manifest.json` (version, time, sizes, metrics, hyper-parameters).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


@dataclass
class ModelArtifact:
    version: str
    user_ids: np.ndarray  # str, rows of user_vectors
    user_vectors: np.ndarray  # float32 users x d: user features @ feature embeddings
    user_biases: np.ndarray  # float32 users
    item_ids: np.ndarray  # str, rows of item_vectors
    item_vectors: np.ndarray  # float32 items x d
    item_biases: np.ndarray  # float32 items
    # Embeddings of the non-identity item features, to place items the model has not seen.
    item_feature_names: np.ndarray  # str
    item_feature_vectors: np.ndarray  # float32 features x d
    item_feature_biases: np.ndarray  # float32 features
    manifest: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "model.tmp.npz"
        np.savez(
            tmp,
            format_version=np.array(FORMAT_VERSION),
            user_ids=self.user_ids.astype(str),
            user_vectors=self.user_vectors,
            user_biases=self.user_biases,
            item_ids=self.item_ids.astype(str),
            item_vectors=self.item_vectors,
            item_biases=self.item_biases,
            item_feature_names=self.item_feature_names.astype(str),
            item_feature_vectors=self.item_feature_vectors,
            item_feature_biases=self.item_feature_biases,
        )
        _fsync(tmp)
        os.replace(tmp, folder / "model.npz")
        self.manifest.update(version=self.version, format_version=FORMAT_VERSION)
        _write_atomic(folder / "manifest.json", json.dumps(self.manifest, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> ModelArtifact:
        manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / "model.npz", allow_pickle=False) as z:
            fmt = int(z["format_version"])
            if fmt != FORMAT_VERSION:
                raise ValueError(f"{folder}: model format {fmt} is not supported (expected {FORMAT_VERSION})")
            arrays = {k: z[k] for k in z.files if k != "format_version"}
        return cls(version=manifest["version"], manifest=manifest, **arrays)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so readers see the old or the new content, never half."""
    _write_atomic(path, text)
