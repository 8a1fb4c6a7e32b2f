"""Row-wise stages: block in, block out, fused into one task (or actor call) per block.

Each stage names itself the way the user wrote it (``map(<lambda>)``, ``map_batches(Model)``)
so that an error raised by user code says which operation failed, on which row or batch.
"""

from __future__ import annotations

import threading
import types
import uuid
from typing import Any, Callable

from raylite.data import _block
from raylite.data._block import Block
from raylite.data.context import switch_hint


def function_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def is_callable_class(fn: Any) -> bool:
    """A class whose instances are callable (it defines ``__call__``): Ray 2.x's callable
    class, constructed once per actor. Other classes (``str``, ``bool``...) are functions."""
    return isinstance(fn, type) and any("__call__" in vars(klass) for klass in fn.__mro__
                                        if klass is not object)


def annotate_error(exc: BaseException, operation: str, where: str,
                   api: int | None = None) -> BaseException:
    """Tell the user which operation failed on which row, keeping the exception's class; when
    the error looks like code written for the other Ray Data convention (``api``), also say
    which switch selects it. Runs only on the error path."""
    _add_note(exc, f"raylite.data: {operation} failed on {where}")
    if api is not None and looks_like_other_convention(exc, api):
        _add_note(exc, switch_hint(api))
    return exc


def _add_note(exc: BaseException, message: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(message)
    else:  # Python 3.10: no notes; put it in the message
        exc.args = (f"{exc} ({message})",) + tuple(exc.args[1:])


# Column names that only one of the conventions gives: range/from_items/from_numpy/read_text
# rows of Ray 2.x, and range_table/from_numpy/read_numpy columns of the book's Ray.
_RAY2_COLUMNS = ("id", "item", "data", "text")
_RAY1_COLUMNS = ("value",)


def looks_like_other_convention(exc: BaseException, api: int) -> bool:
    """Whether ``exc`` (from a user function) is what code written for the other convention
    raises: indexing a plain row or list batch by a column name under 1.9; arithmetic,
    comparisons or DataFrame methods on a dict row or batch under 2.x."""
    text = str(exc)
    if api == 1:
        if isinstance(exc, KeyError):
            return bool(exc.args) and exc.args[0] in _RAY2_COLUMNS
        return isinstance(exc, TypeError) and any(
            marker in text for marker in ("not subscriptable", "indices must be integers"))
    if isinstance(exc, KeyError):
        return bool(exc.args) and exc.args[0] in _RAY1_COLUMNS
    return isinstance(exc, (TypeError, AttributeError)) and "'dict'" in text


def not_rows_error(operation: str, returned: Any, api: int) -> TypeError:
    """Under Ray 2.x's convention a row function must return dicts (as Ray 2.x requires)."""
    return TypeError(f"{operation} returned {type(returned).__name__} {returned!r:.60}; "
                     "under Ray 2.x's convention every row is a dict: return e.g. "
                     f"{{'item': value}} instead. {switch_hint(api)}")


def describe_row(row: Any) -> str:
    text = repr(row)
    return "row " + (text if len(text) <= 200 else text[:197] + "...")


def describe_batch(piece: Block, start: int) -> str:
    first = _block.rows(_block.slice_block(piece, 0, 1))[0]
    return (f"a batch of {_block.num_rows(piece)} rows (rows {start}..) starting with "
            f"{describe_row(first)}")


def check_columns(requested: list[str], existing: list[str], operation: str) -> None:
    missing = [c for c in requested if c not in existing]
    if missing:
        raise ValueError(f"{operation}: no column {', '.join(map(repr, missing))}; the dataset "
                         f"has columns {existing}{_column_hint(missing, list(existing))}")


def _column_hint(missing: list[str], existing: list[str]) -> str:
    """The switch, when a missing column is the other convention's name for the same data:
    Ray 2.x's "id"/"item"/"data" where the book's Ray has "value", or the other way round."""
    if existing == list(_RAY1_COLUMNS) and any(c in _RAY2_COLUMNS for c in missing):
        return ". " + switch_hint(1)
    if any(c in _RAY1_COLUMNS for c in missing) and any(c in _RAY2_COLUMNS for c in existing):
        return ". " + switch_hint(2)
    return ""


class Stage:
    """A row-wise step: block in, block out. ``name`` reads like ``map(<lambda>)``.

    ``remote_args`` are task options (num_cpus, num_gpus, ...); ``compute`` is None (run in
    tasks) or an ActorPoolStrategy (run in a pool of actors that keep state between blocks).
    """

    name = "stage"
    remote_args: dict = {}
    compute: Any = None

    def __call__(self, block: Block) -> Block:
        raise NotImplementedError


# The instances of callable classes an actor of a pool has built, by stage token: set while a
# pool actor runs a block, so that each actor constructs each class once.
_actor_state = threading.local()


class UserFnStage(Stage):
    """A stage running a user's ``fn``: a function, or a callable class (Ray 2.x) that is
    instantiated with ``constructor`` once per actor when the stage runs in an actor pool
    (``compute``), once per block task otherwise."""

    operation = "stage"
    api = 1  # the Ray Data convention of the dataset this stage belongs to (set by Dataset)

    def __init__(self, fn: Callable, fn_constructor_args: tuple = (),
                 fn_constructor_kwargs: dict | None = None):
        self.fn = fn
        self.constructor = (tuple(fn_constructor_args), dict(fn_constructor_kwargs or {}))
        self.name = f"{self.operation}({function_name(fn)})"
        self.token = uuid.uuid4().hex
        self._callable: Callable | None = None

    def _function(self) -> Callable:
        if self._callable is not None:
            return self._callable
        if not is_callable_class(self.fn):
            self._callable = self.fn
            return self.fn
        instances = getattr(_actor_state, "instances", None)
        if instances is not None and self.token in instances:
            self._callable = instances[self.token]
            return self._callable
        args, kwargs = self.constructor
        try:
            self._callable = self.fn(*args, **kwargs)
        except Exception as exc:
            raise annotate_error(exc, self.name, f"constructing {function_name(self.fn)}")
        if instances is not None:
            instances[self.token] = self._callable
        return self._callable

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_callable"] = None
        return state


def _rows_block(rows: list, operation: str, api: int) -> Block:
    """The block of the rows a row function returned; under Ray 2.x's convention they must
    be dicts (one check per block)."""
    block = _block.from_rows(rows)
    if api == 2 and rows and not _block.is_dict_rows(block):
        first = next((row for row in rows if type(row) is not dict), rows[0])
        raise not_rows_error(operation, first, api)
    return block


class MapRows(UserFnStage):
    operation = "map"

    def __call__(self, block: Block) -> Block:
        fn, out, items = self._function(), [], _block.rows(block)
        append = out.append
        try:
            for row in items:
                append(fn(row))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row), self.api)  # noqa: F821
        return _rows_block(out, self.name, self.api)


class FilterRows(UserFnStage):
    operation = "filter"

    def __call__(self, block: Block) -> Block:
        fn, keep, items = self._function(), [], _block.rows(block)
        append = keep.append
        try:
            for row in items:
                append(fn(row))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row), self.api)  # noqa: F821
        if type(block) is list:
            return [item for item, kept in zip(items, keep) if kept]
        return _block.filter_block(block, keep)


class FlatMapRows(UserFnStage):
    operation = "flat_map"

    def __call__(self, block: Block) -> Block:
        fn, out, items = self._function(), [], _block.rows(block)
        extend = out.extend
        try:
            for row in items:
                extend(fn(row))
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_row(row), self.api)  # noqa: F821
        return _rows_block(out, self.name, self.api)


class MapBatches(UserFnStage):
    """``map_batches``: the function sees slices of ``batch_size`` rows in ``batch_format``."""

    operation = "map_batches"

    def __init__(self, fn: Callable, batch_size: int | None, batch_format: str,
                 fn_args: tuple = (), fn_kwargs: dict | None = None,
                 fn_constructor_args: tuple = (), fn_constructor_kwargs: dict | None = None,
                 remote_args: dict | None = None, compute: Any = None):
        super().__init__(fn, fn_constructor_args, fn_constructor_kwargs)
        self.batch_size = batch_size
        self.batch_format = batch_format
        self.fn_args = tuple(fn_args)
        self.fn_kwargs = dict(fn_kwargs or {})
        self.remote_args = dict(remote_args or {})
        self.compute = compute

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        fn, size = self._function(), self.batch_size or total
        outputs = []
        for start in range(0, total, size):
            piece = _block.slice_block(block, start, start + size)
            batch = _block.to_batch(piece, self.batch_format)
            outputs.append(self._apply(fn, batch, piece, start))
        return _block.concat(outputs)

    def run_on_array(self, array) -> Block:
        """The stage on rows given as one ndarray (the book's ``range`` with
        ``batch_format="numpy"``) or as a dict of column arrays (Ray 2.x's ``range``): the
        batches are slices of it, as ``to_batch`` would have made them."""
        columns = array if type(array) is dict else None
        total = len(next(iter(columns.values()))) if columns else len(array)
        if total == 0:
            return []
        fn, size = self._function(), self.batch_size or total
        outputs = []
        for start in range(0, total, size):
            stop = start + size
            batch = ({name: values[start:stop] for name, values in columns.items()}
                     if columns is not None else array[start:stop])
            outputs.append(self._apply(fn, batch, None, start))
        return _block.concat(outputs)

    def _apply(self, fn: Callable, batch: Any, piece: Block, start: int) -> Block:
        try:
            result = fn(batch, *self.fn_args, **self.fn_kwargs)
            if type(result) is types.GeneratorType:  # Ray 2.x: a function may yield batches
                return _block.concat([self._block_of(item) for item in result])
        except Exception as exc:
            if piece is None:
                piece = _block.from_batch(batch, self.name)
            raise annotate_error(exc, self.name, describe_batch(piece, start), self.api)
        return self._block_of(result)

    def _block_of(self, result: Any) -> Block:
        block = _block.from_batch(result, self.name)
        if self.api == 2 and type(block) is list and block and not _block.is_dict_rows(block):
            raise TypeError(f"{self.name} returned {type(result).__name__}; under Ray 2.x's "
                            "convention a batch is a dict of column arrays (e.g. {'data': "
                            "array}), a pandas DataFrame or a pyarrow Table. "
                            + switch_hint(self.api))
        return block


def require_table(block: Block, operation: str, api: int = 1):
    """The block if it is tabular, None if it is empty; else an error (saying, under the
    book's convention, which switch gives dict rows)."""
    if not _block.is_tabular(block):
        if not block:
            return None
        raise ValueError(f"{operation} needs a tabular dataset (rows that are dicts), but the "
                         f"rows are {type(block[0]).__name__}s. {switch_hint(api)}")
    return block


class AddColumn(Stage):
    """``add_column``: ``fn(batch)`` gives the new column's values for a batch in
    ``batch_format`` (pandas by default, as in Ray; "numpy" a dict of arrays; "pyarrow" a
    Table)."""

    api = 1

    def __init__(self, column: str, fn: Callable, batch_format: str = "pandas"):
        self.column, self.fn, self.batch_format = column, fn, batch_format
        self.name = f"add_column({column!r}, {function_name(fn)})"

    def __call__(self, block: Block) -> Block:
        table = require_table(block, self.name, self.api)
        if table is None or _block.num_rows(table) == 0:
            return block
        batch = _block.to_batch(table, self.batch_format)
        try:
            values = self.fn(batch)
        except Exception as exc:
            raise annotate_error(exc, self.name, describe_batch(table, 0), self.api)
        if self.batch_format == "pyarrow":
            table = _block.to_table(table)
            names = table.column_names
            array = _block.column_array(values)
            if self.column in names:
                return table.set_column(names.index(self.column), self.column, array)
            return table.append_column(self.column, array)
        batch[self.column] = values
        return _block.from_batch(batch, self.name)


class SelectColumns(Stage):
    api = 1

    def __init__(self, columns: list[str], drop: bool):
        self.columns, self.drop = list(columns), drop
        self.name = f"{'drop' if drop else 'select'}_columns({self.columns})"

    def __call__(self, block: Block) -> Block:
        table = require_table(block, self.name, self.api)
        if table is None or _block.num_rows(table) == 0:
            return block
        check_columns(self.columns, _block.column_names(table), self.name)
        if self.drop:
            return _block.drop_columns(table, self.columns)
        return _block.select_columns(table, self.columns)


class RenameColumns(Stage):
    """``rename_columns``: ``{old: new}`` (names not listed stay)."""

    api = 1

    def __init__(self, names: dict):
        self.names = dict(names)
        self.name = f"rename_columns({self.names})"

    def __call__(self, block: Block) -> Block:
        table = require_table(block, self.name, self.api)
        if table is None or _block.num_rows(table) == 0:
            return block
        existing = _block.column_names(table)
        check_columns(list(self.names), existing, self.name)
        new_names = [self.names.get(name, name) for name in existing]
        if type(table) is not list:
            return table.rename_columns(new_names)
        return [dict(zip(new_names, row.values())) for row in table]


class SampleRows(Stage):
    """``random_sample``: keep each row with probability ``fraction``. A seeded sample draws
    from a generator seeded with the seed and the block's row count, so it repeats."""

    api = 1

    def __init__(self, fraction: float, seed: int | None):
        self.fraction, self.seed = fraction, seed
        self.name = f"random_sample({fraction})"

    def __call__(self, block: Block) -> Block:
        total = _block.num_rows(block)
        if total == 0:
            return block
        np = _block.np()
        rng = np.random.default_rng(None if self.seed is None else [self.seed, total])
        return _block.filter_block(block, (rng.random(total) < self.fraction).tolist())
