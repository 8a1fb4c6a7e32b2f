"""The object store's figures, for programs and tests that watch memory (what ``raylite memory``
and the dashboard show)."""

from __future__ import annotations

from typing import Any

__all__ = ["object_store_stats"]


def object_store_stats() -> dict[str, Any]:
    """The local object store now: ``objects`` held, ``shm_bytes`` in shared memory, ``limit``
    (``object_store_memory``), and since ``init``: ``spilled_bytes``, ``spill_count``,
    ``restore_count``.

    Raises RuntimeError before ``init`` and on a cluster backend (Dask keeps objects in its
    workers' memory; see its dashboard).
    """
    from raylite.core import _api
    backend = _api._backend_obj
    if backend is None:
        raise RuntimeError("raylite is not initialized: call raylite.init() first")
    summary = backend.memory_summary()
    if summary is None:
        raise RuntimeError("object_store_stats() reads the local object store; on a Dask "
                           "cluster, objects live in the workers (see Dask's dashboard)")
    return dict(summary)
