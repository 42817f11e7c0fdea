"""Process-wide settings a serving process needs before it takes traffic."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> None:
    """Runs BLAS (numpy's matrix-vector products) on the calling thread only.

    A Recommend scores ~20k items with one matrix-vector product (~0.15 ms): too small to split,
    while OpenBLAS's own worker threads spin and contend with the RPC threads for the cores, which
    made one product take 2-10 ms under load. Concurrency comes from requests, not from BLAS.
    LightFM training threads (OpenMP) are not affected.
    """
    threadpool_limits(limits=1, user_api="blas")
