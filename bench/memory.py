"""Peak resident memory of a serving process, per 1M customers the model knows.

The benchmark world's model is widened to `customers` users with random vectors (the world's real
users keep theirs, so Recommend still answers them personally), published through ModelRegistry,
and served by `python -m server serve` (then the world's own model is put back); after warm-up
traffic, /proc/<pid>/status gives VmHWM (the peak) and VmRSS. The same server on the world's own
model is the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.load import run_load
from bench.recommend import RECOMMEND, requests
from bench.serving import ServerProcess
from models.learning.artifact import ModelArtifact
from models.serving.registry import ModelRegistry, new_version


@dataclass(frozen=True)
class MemoryFigures:
    customers: int  # users of the widened model
    baseline_customers: int  # users of the world's own model
    dim: int
    items: int
    id_bytes: int  # bytes per customer id in the artifact (fixed width)
    artifact_mb: float
    hwm_kb: int  # VmHWM of the serving process on the widened model
    rss_kb: int
    baseline_hwm_kb: int
    baseline_rss_kb: int

    @property
    def gb_per_million(self) -> float:
        """Whole peak RSS of the process, scaled to 1M customers (what the target compares)."""
        return self.hwm_kb / 1024**2 * 1_000_000 / self.customers

    @property
    def marginal_gb_per_million(self) -> float:
        """Peak RSS above the baseline server, per 1M customers added."""
        added = max(self.customers - self.baseline_customers, 1)
        return (self.hwm_kb - self.baseline_hwm_kb) / 1024**2 * 1_000_000 / added


def widen(models_dir: Path, customers: int, seed: int = 3) -> ModelArtifact:
    """The serving artifact with random users added up to `customers`, published as the current model."""
    registry = ModelRegistry(models_dir)
    current = (models_dir / "CURRENT").read_text().strip()
    base = ModelArtifact.load(models_dir / current)
    extra = max(customers - len(base.user_ids), 0)
    rng = np.random.default_rng(seed)
    scale = float(base.user_vectors.std()) or 0.1
    d = base.user_vectors.shape[1]
    artifact = ModelArtifact(
        version=new_version(),
        user_ids=np.concatenate(
            [base.user_ids.astype(str), np.array([f"synth-{i:07d}" for i in range(extra)])]
        ),
        user_vectors=np.vstack(
            [base.user_vectors, (rng.standard_normal((extra, d)) * scale).astype(np.float32)]
        ),
        user_biases=np.concatenate([base.user_biases, np.zeros(extra, dtype=np.float32)]),
        item_ids=base.item_ids,
        item_vectors=base.item_vectors,
        item_biases=base.item_biases,
        item_feature_names=base.item_feature_names,
        item_feature_vectors=base.item_feature_vectors,
        item_feature_biases=base.item_feature_biases,
        manifest=dict(base.manifest, customers=len(base.user_ids) + extra, synthetic_users=extra),
    )
    registry.publish(artifact)
    return artifact


def _serve_and_read(data_dir: Path, payloads: Sequence[bytes], warmup: float) -> dict[str, int]:
    with ServerProcess(data_dir) as server:
        run_load(
            server.target,
            RECOMMEND,
            payloads,
            duration=warmup,
            warmup=0.0,
            concurrency=4,
            client_processes=1,
            metadata=server.metadata,
        )
        return server.memory_kb()


def measure(
    data_dir: Path,
    customers: Sequence[str],
    customers_total: int = 1_000_000,
    k: int = 10,
    warmup: float = 3.0,
) -> MemoryFigures:
    models_dir = data_dir / "models"
    payloads = requests(customers, k)
    base_version = (models_dir / "CURRENT").read_text().strip()
    base = ModelArtifact.load(models_dir / base_version)
    baseline = _serve_and_read(data_dir, payloads, warmup)
    wide = widen(models_dir, customers_total)
    try:
        widened = _serve_and_read(data_dir, payloads, warmup)
        size = sum(p.stat().st_size for p in (models_dir / wide.version).iterdir())
    finally:
        ModelRegistry(models_dir).rollback(base_version)  # the world serves its own model again
    return MemoryFigures(
        customers=len(wide.user_ids),
        baseline_customers=len(base.user_ids),
        dim=int(wide.user_vectors.shape[1]),
        items=len(wide.item_ids),
        id_bytes=int(wide.user_ids.astype(str).dtype.itemsize),
        artifact_mb=size / 1024**2,
        hwm_kb=widened["VmHWM"],
        rss_kb=widened["VmRSS"],
        baseline_hwm_kb=baseline["VmHWM"],
        baseline_rss_kb=baseline["VmRSS"],
    )
