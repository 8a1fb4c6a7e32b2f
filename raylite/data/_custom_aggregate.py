"""Aggregations written as Python accumulators (Ray's ``AggregateFn(init=..., merge=...,
accumulate_row=... or accumulate_block=..., finalize=..., name=...)``), in the same two
phases as the Arrow ones:

    block_i ──CustomPartial (fused into the block's task)──► [(group key, [state per agg])]
    partials of every block ──one reduce task: merge, finalize──► one dict row per group
"""

from __future__ import annotations

from typing import Any, Callable

from raylite.data import _block
from raylite.data._aggregate import AggregateFn
from raylite.data._block import Block
from raylite.data._stages import Stage, annotate_error, check_columns, function_name


class CustomAggregateFn(AggregateFn):
    """An aggregation from Python functions: ``init(key) -> state``, then per row
    ``accumulate_row(state, row)`` (or per block ``accumulate_block(state, pyarrow.Table)``),
    ``merge(state, state)`` across blocks, and ``finalize(state)`` for the result."""

    kind = "custom"

    def __init__(self, init: Callable, merge: Callable, name: str | None = None,
                 accumulate_row: Callable | None = None,
                 accumulate_block: Callable | None = None, finalize: Callable | None = None):
        for label, fn in (("init", init), ("merge", merge)):
            if not callable(fn):
                raise TypeError(f"AggregateFn({label}=...) needs a function, got {fn!r:.60}")
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("AggregateFn needs exactly one of accumulate_row= and "
                             "accumulate_block=")
        super().__init__(None, True, name or f"{function_name(merge)}()")
        self.init, self.merge = init, merge
        self.accumulate_row, self.accumulate_block = accumulate_row, accumulate_block
        self.finalize = finalize

    def accumulate(self, key: Any, block: Block, indices: list, rows: list) -> Any:
        state = self.init(key)
        if self.accumulate_block is not None:
            return self.accumulate_block(state, _block.to_table(_block.take_indices(block,
                                                                                    indices)))
        for index in indices:
            state = self.accumulate_row(state, rows[index])
        return state

    def __repr__(self) -> str:
        return f"AggregateFn(name={self.name!r})"


def is_custom(agg: AggregateFn) -> bool:
    return isinstance(agg, CustomAggregateFn)


class CustomPartial(Stage):
    """Per block: ``(group key, [state of each aggregation])`` for every group in it."""

    def __init__(self, keys: list[str], aggs: list[CustomAggregateFn], operation: str):
        self.keys, self.aggs, self.name = list(keys), list(aggs), operation

    def __call__(self, block: Block) -> list:
        total = _block.num_rows(block)
        if total == 0:
            return []
        if self.keys:
            check_columns(self.keys, _block.column_names(block) or [], self.name)
            keys = list(zip(*[_block.column_values(block, k) for k in self.keys]))
        else:
            keys = [()] * total
        groups: dict = {}
        for index, key in enumerate(keys):
            groups.setdefault(key, []).append(index)
        rows = _block.rows(block)
        out = []
        for key, indices in groups.items():
            user_key = key[0] if len(key) == 1 else (key or None)
            try:
                states = [agg.accumulate(user_key, block, indices, rows) for agg in self.aggs]
            except Exception as exc:
                raise annotate_error(exc, self.name, f"the group {user_key!r}", self.api)
            out.append((key, states))
        return out


def final_custom(keys: list[str], aggs: list[CustomAggregateFn], *partials: list):
    """Merge every block's states per group, finalize; one dict row per group, by key."""
    merged: dict = {}
    for partial in partials:
        for key, states in partial:
            if key in merged:
                merged[key] = [agg.merge(a, b) for agg, a, b in zip(aggs, merged[key], states)]
            else:
                merged[key] = states
    try:
        order = sorted(merged)
    except TypeError:  # keys that do not compare (None among ints): first-seen order
        order = list(merged)
    rows = []
    for key in order:
        row = dict(zip(keys, key))
        for agg, state in zip(aggs, merged[key]):
            row[agg.name] = agg.finalize(state) if agg.finalize is not None else state
        rows.append(row)
    block = _block.from_rows(rows)
    return block, _block.metadata(block)
