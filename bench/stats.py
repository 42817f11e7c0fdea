"""Latency summaries: percentiles of a sample of request latencies, in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Requests completed in the measured window, the rate they completed at, and their latency
    (failed requests' waits included: a timeout is a long wait, not a missing sample)."""

    requests: int
    seconds: float
    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int = 0

    @classmethod
    def of(cls, latencies_s: np.ndarray, seconds: float, errors: int = 0) -> Latency:
        """From the latencies (seconds) of the requests completed in a window of `seconds`."""
        lat = np.asarray(latencies_s, dtype=np.float64) * 1000.0
        if len(lat) == 0:
            nan = float("nan")
            return cls(0, seconds, 0.0, nan, nan, nan, nan, errors)
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        return cls(
            len(lat),
            seconds,
            len(lat) / seconds,
            float(p50),
            float(p90),
            float(p99),
            float(lat.max()),
            errors,
        )
