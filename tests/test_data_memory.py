"""raylite.data streams in bounded memory: a pipeline over ten times more data than the object
store holds runs with the store's use bounded by the blocks in flight, spilling next to nothing.

The store's figures come from ``raylite.util.object_store_stats()`` (the numbers
``raylite memory`` and the dashboard show): ``shm_bytes`` in shared memory now, and
``spilled_bytes`` / ``spill_count`` since start.
"""

from __future__ import annotations

import pytest

import raylite

np = pytest.importorskip("numpy")
pytest.importorskip("pyarrow")

STORE_BYTES = 32 * 2**20
BLOCK_BYTES = 4 * 2**20
BLOCKS = 80  # 320 MiB through a 32 MiB store


@pytest.fixture
def small_store():
    raylite.shutdown()
    raylite.init(num_cpus=2, object_store_memory=STORE_BYTES)
    yield raylite.util.object_store_stats
    raylite.shutdown()


def _payload(batch):
    """4 MiB of float64 per block, derived from the block's ints."""
    rows = BLOCK_BYTES // 8 // 1024
    ids = np.asarray(batch)
    return {"x": np.broadcast_to(ids[:1, None].astype(np.float64), (rows, 1024)).copy()}


def test_a_pipeline_over_ten_times_the_store_runs_in_bounded_memory(small_store):
    ds = raylite.data.range(BLOCKS, parallelism=BLOCKS).map_batches(
        _payload, batch_size=None, batch_format="numpy")
    total_bytes = peak = checksum = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        total_bytes += batch["x"].nbytes
        checksum += int(batch["x"][0, 0])
        peak = max(peak, small_store()["shm_bytes"])
    stats = small_store()
    assert total_bytes == BLOCKS * BLOCK_BYTES >= 10 * STORE_BYTES
    assert checksum == sum(range(BLOCKS))  # every block, in order, once
    bound = ds._stats.max_in_flight
    assert ds._stats.peak_in_flight <= bound
    assert peak <= (bound + 2) * BLOCK_BYTES <= STORE_BYTES  # the blocks in flight, no more
    assert stats["spilled_bytes"] <= 2 * BLOCK_BYTES  # nothing (or next to nothing) spilled
    assert stats["spill_count"] <= 2
    assert stats["shm_bytes"] <= 2 * BLOCK_BYTES  # consumed blocks were freed
