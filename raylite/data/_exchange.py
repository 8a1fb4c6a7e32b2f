"""All-to-all operations: slicing by row ranges, repartition, random shuffle, sort.

Each works on blocks already in the object store (RefInputs with known row counts) and returns
new RefInputs; no block passes through the driver.

    random_shuffle / sort (N input blocks, M output blocks):

        block_i ──map──► M parts (random / by key range) ─┐
                                                           ├─reduce─► output block_j
        part j of every block_i ──────────────────────────┘
"""

from __future__ import annotations

import bisect
import os
from typing import Any

import raylite
from raylite.data import _block
from raylite.data._plan import RefInput


# ==========================================================================================
# row ranges
# ==========================================================================================
def _gather(spec: list[tuple[int, int]], *blocks):
    """Concatenate ``blocks[k][start:stop]`` for each (start, stop) in ``spec``."""
    pieces = [_block.slice_block(b, start, stop) for b, (start, stop) in zip(blocks, spec)]
    block = _block.concat(pieces)
    return block, _block.metadata(block)


_gather_remote = raylite.remote(num_returns=2)(_gather)


def _submit(function, *args) -> RefInput:
    """Submit a (block, metadata) task."""
    block_ref, meta_ref = function.remote(*args)
    return RefInput(block_ref, meta_ref)


def _pieces(blocks: list[RefInput], start: int, stop: int) -> list[tuple[RefInput, int, int]]:
    """The (block, local start, local stop) pieces covering global rows [start, stop)."""
    out, offset = [], 0
    for block in blocks:
        rows = block.metadata().num_rows
        lo, hi = max(start, offset), min(stop, offset + rows)
        if lo < hi:
            out.append((block, lo - offset, hi - offset))
        offset += rows
        if offset >= stop:
            break
    return out


def slice_ranges(blocks: list[RefInput], ranges: list[tuple[int, int]],
                 merge: bool = False) -> list[list[RefInput]]:
    """The blocks holding each row range: whole blocks are reused, partial ones sliced by a
    task; ``merge=True`` makes each range exactly one block."""
    result = []
    for start, stop in ranges:
        pieces = _pieces(blocks, start, stop)
        if merge and len(pieces) > 1:
            spec = [(lo, hi) for _, lo, hi in pieces]
            refs = [block.ref for block, _, _ in pieces]
            result.append([_submit(_gather_remote, spec, *refs)])
            continue
        out = []
        for block, lo, hi in pieces:
            if lo == 0 and hi == block.metadata().num_rows:
                out.append(block)
            else:
                out.append(_submit(_gather_remote, [(lo, hi)], block.ref))
        result.append(out)
    return result


def even_ranges(total: int, parts: int, drop_remainder: bool = False) -> list[tuple[int, int]]:
    """``parts`` consecutive ranges over ``total`` rows, sizes differing by at most one
    (or all exactly ``total // parts`` with ``drop_remainder``)."""
    if drop_remainder:
        size = total // parts
        return [(i * size, (i + 1) * size) for i in range(parts)]
    base, extra = divmod(total, parts)
    ranges, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def repartition(blocks: list[RefInput], num_blocks: int) -> list[RefInput]:
    total = sum(b.metadata().num_rows for b in blocks)
    groups = slice_ranges(blocks, even_ranges(total, num_blocks), merge=True)
    return [group[0] if group else _submit(_gather_remote, []) for group in groups]


# ==========================================================================================
# zip
# ==========================================================================================
def _zip_pair(left, right):
    """Row i of ``left`` joined with row i of ``right``."""
    if not _block.num_rows(left):
        return left, _block.metadata(left)
    if not (_block.is_tabular(left) and _block.is_tabular(right)):
        block: Any = list(zip(_block.output_rows(left), _block.output_rows(right)))
        return block, _block.metadata(block)
    names = _block.column_names(left)
    renamed = {}
    for name in _block.column_names(right):
        new, suffix = name, 1
        while new in names or new in renamed.values():
            new, suffix = f"{name}_{suffix}", suffix + 1
        renamed[name] = new
    if type(left) is list and type(right) is list:
        block = [{**a, **{renamed[k]: v for k, v in b.items()}} for a, b in zip(left, right)]
    else:
        left, right = _block.to_table(left), _block.to_table(right)
        block = left
        for name in right.column_names:
            block = block.append_column(renamed[name], right.column(name))
    return block, _block.metadata(block)


_zip_remote = raylite.remote(num_returns=2)(_zip_pair)


def zip_blocks(left: list[RefInput], right: list[RefInput]) -> list[RefInput]:
    """Blocks joining ``left`` and ``right`` row by row, cut where ``left``'s blocks are."""
    left_rows = [b.metadata().num_rows for b in left]
    right_total = sum(b.metadata().num_rows for b in right)
    if sum(left_rows) != right_total:
        raise ValueError(f"zip() needs datasets with the same number of rows; this one has "
                         f"{sum(left_rows)}, the other {right_total}")
    ranges, start = [], 0
    for rows in left_rows:
        ranges.append((start, start + rows))
        start += rows
    aligned = slice_ranges(right, ranges, merge=True)
    out = []
    for block, group in zip(left, aligned):
        if not group:
            out.append(block)
            continue
        out.append(_submit(_zip_remote, block.ref, group[0].ref))
    return out


# ==========================================================================================
# random shuffle
# ==========================================================================================
def _rng(seed: Any):
    import numpy as np
    return np.random.default_rng(seed)


def _shuffle_map(block, num_outputs: int, seed: Any):
    rows = _block.num_rows(block)
    assignment = _rng(seed).integers(0, num_outputs, size=rows)
    import numpy as np
    return tuple(_block.take_indices(block, np.flatnonzero(assignment == j))
                 for j in range(num_outputs))


def _shuffle_reduce(seed: Any, *parts):
    block = _block.concat(list(parts))
    order = _rng(seed).permutation(_block.num_rows(block))
    block = _block.take_indices(block, order)
    return block, _block.metadata(block)


_shuffle_map_remote = raylite.remote(_shuffle_map)
_shuffle_reduce_remote = raylite.remote(num_returns=2)(_shuffle_reduce)


def random_shuffle(blocks: list[RefInput], num_outputs: int, seed: int | None) -> list[RefInput]:
    base = seed if seed is not None else int.from_bytes(os.urandom(8), "little")
    if num_outputs == 1:
        return [_submit(_shuffle_reduce_remote, (base, 1, 0), *[b.ref for b in blocks])]
    mapper = _shuffle_map_remote.options(num_returns=num_outputs)
    parts = [mapper.remote(b.ref, num_outputs, (base, 0, i)) for i, b in enumerate(blocks)]
    return [_submit(_shuffle_reduce_remote, (base, 1, j), *[p[j] for p in parts])
            for j in range(num_outputs)]


# ==========================================================================================
# sort
# ==========================================================================================
class SortKey:
    """What to sort by: column names (tables), or None / a function of the row (lists)."""

    def __init__(self, key: Any, descending: bool):
        self.key = key
        self.descending = bool(descending)

    @property
    def columns(self) -> list[str] | None:
        if isinstance(self.key, str):
            return [self.key]
        if isinstance(self.key, (list, tuple)):
            return list(self.key)
        return None

    def check(self, schema: Any) -> None:
        """Raise a clear error when the key does not fit the data."""
        from raylite.data._plan import check_columns
        if schema is None:
            return
        tabular = hasattr(schema, "names")
        if tabular:
            if self.columns is None:
                raise ValueError(f"sort() of a tabular dataset needs key= a column name or a "
                                 f"list of them; columns: {list(schema.names)}")
            check_columns(self.columns, list(schema.names), "sort()")
        elif self.columns is not None:
            raise ValueError(f"sort(key={self.key!r}): the rows are {schema.__name__}s, not "
                             "tables; pass key=None to sort by value or a function of the row")

    def values(self, block) -> list:
        """The sort key of each row as comparable Python values (nulls last): the first sort
        column for tabular blocks, the row (or ``key(row)``) otherwise."""
        if not _block.is_tabular(block):
            if callable(self.key):
                return [self.key(row) for row in block]
            return list(block)
        return [_null_last(v) for v in _block.column_values(block, self.columns[0])]

    def sort(self, block):
        """The block sorted ascending."""
        if not _block.is_tabular(block):
            return sorted(block, key=self.key if callable(self.key) else None)
        if type(block) is list:
            names = self.columns
            return sorted(block, key=lambda row: tuple(_null_last(row[n]) for n in names))
        return block.sort_by([(name, "ascending") for name in self.columns])


def _null_last(value: Any) -> tuple:
    return (True, 0) if value is None else (False, value)


def _sample_keys(block, key: SortKey, count: int) -> list:
    values = key.values(block)
    if len(values) <= count:
        return values
    step = len(values) / count
    return [values[int(i * step)] for i in range(count)]


_sample_remote = raylite.remote(_sample_keys)


def _sort_map(block, key: SortKey, boundaries: list):
    block = key.sort(block)
    values = key.values(block)
    cuts = [bisect.bisect_right(values, b) for b in boundaries]
    edges = [0] + cuts + [len(values)]
    return tuple(_block.slice_block(block, edges[i], edges[i + 1]) for i in range(len(edges) - 1))


def _sort_reduce(key: SortKey, *parts):
    block = key.sort(_block.concat(list(parts)))
    if key.descending:
        block = block[::-1] if type(block) is list else block.take(
            _block.int64_array(range(block.num_rows - 1, -1, -1)))
    return block, _block.metadata(block)


_sort_map_remote = raylite.remote(_sort_map)
_sort_reduce_remote = raylite.remote(num_returns=2)(_sort_reduce)


def sort(blocks: list[RefInput], key: SortKey) -> list[RefInput]:
    blocks = [b for b in blocks if b.metadata().num_rows]
    if not blocks:
        return []
    num_outputs = len(blocks)
    if num_outputs == 1:
        return [_submit(_sort_reduce_remote, key, blocks[0].ref)]
    samples = sorted(v for part in raylite.get([_sample_remote.remote(b.ref, key, 32)
                                                 for b in blocks]) for v in part)
    boundaries = [samples[len(samples) * i // num_outputs] for i in range(1, num_outputs)]
    mapper = _sort_map_remote.options(num_returns=num_outputs)
    parts = [mapper.remote(b.ref, key, boundaries) for b in blocks]
    outputs = [_submit(_sort_reduce_remote, key, *[p[j] for p in parts])
               for j in range(num_outputs)]
    return outputs[::-1] if key.descending else outputs


def sort_key(key: Any, descending: bool) -> SortKey:
    if key is not None and not (isinstance(key, str) or callable(key) or (
            isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key))):
        raise TypeError(f"sort(key=...) takes a column name, a list of column names, a function "
                        f"of the row, or None; got {key!r}")
    return SortKey(key, descending)

