"""Column operations of a tabular Dataset: add_column, drop_columns, select_columns (Ray 1.x
and 2.x) and with_column / with_columns from ``raylite.data.expressions`` (Ray 2.x). A mixin
of Dataset; each one appends a row-wise stage, fused into the block tasks like map."""

from __future__ import annotations

from typing import Any, Callable

from raylite.data.context import switch_hint
from raylite.data._arguments import check_function, check_remote_args, column_list
from raylite.data._stages import AddColumn, RenameColumns, SelectColumns, check_columns

ADD_COLUMN_FORMATS = ("pandas", "numpy", "default", "pyarrow")


class ColumnMethods:
    """Dataset methods that add, drop, keep or compute columns."""

    def add_column(self, col: str, fn: Callable[[Any], Any], *, batch_format: str = "pandas",
                   compute: Any = None, concurrency: Any = None,
                   **ray_remote_args: Any) -> "Dataset":  # noqa: F821
        """Add (or replace) column ``col`` with ``fn(batch)``: a pandas DataFrame by default
        (as in Ray), a dict of numpy arrays for ``batch_format="numpy"`` (or "default"), a
        pyarrow Table for ``"pyarrow"``.

        Example:
            >>> import raylite as ray
            >>> ray.data.range_table(2).add_column("double", lambda df: df["value"] * 2).take()
            [ArrowRow({'value': 0, 'double': 0}), ArrowRow({'value': 1, 'double': 2})]
        """
        if not isinstance(col, str):
            raise TypeError(f"add_column() needs a column name (str), got {col!r}")
        check_function(fn, "add_column")
        if batch_format not in ADD_COLUMN_FORMATS:
            raise ValueError(f"add_column(batch_format=...) must be one of "
                             f"{', '.join(map(repr, ADD_COLUMN_FORMATS))}, got {batch_format!r}")
        self._check_tabular("add_column")
        stage = AddColumn(col, fn, "numpy" if batch_format == "default" else batch_format)
        stage.remote_args = check_remote_args(ray_remote_args, "add_column")
        return self._with_stage(stage)

    def drop_columns(self, cols: list[str] | str, *, compute: Any = None,
                     concurrency: Any = None, **ray_remote_args: Any) -> "Dataset":  # noqa: F821
        """Remove the named columns.

        Example:
            >>> import raylite as ray
            >>> ray.data.from_items([{"a": 1, "b": 2}]).drop_columns(["b"]).take()
            [ArrowRow({'a': 1})]
        """
        check_remote_args(ray_remote_args, "drop_columns")
        return self._select(column_list(cols, "drop_columns"), drop=True)

    def select_columns(self, cols: list[str] | str, *, compute: Any = None,
                       concurrency: Any = None, **ray_remote_args: Any) -> "Dataset":  # noqa
        """Keep only the named columns, in that order.

        Example:
            >>> import raylite as ray
            >>> ray.data.from_items([{"a": 1, "b": 2}]).select_columns(["b"]).take()
            [ArrowRow({'b': 2})]
        """
        check_remote_args(ray_remote_args, "select_columns")
        return self._select(column_list(cols, "select_columns"), drop=False)

    def rename_columns(self, names: dict | list, *, concurrency: Any = None,
                       **ray_remote_args: Any) -> "Dataset":  # noqa: F821
        """Rename columns: ``{old: new}``, or the list of all new names in order.

        Example:
            >>> import raylite as ray
            >>> ray.data.from_items([{"a": 1, "b": 2}]).rename_columns({"a": "x"}).take()
            [ArrowRow({'x': 1, 'b': 2})]
        """
        if isinstance(names, (list, tuple)):
            columns = self.columns() or []
            if len(names) != len(columns) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"rename_columns() with a list needs one new name per column "
                                 f"({columns}), got {list(names)}")
            names = dict(zip(columns, names))
        if not isinstance(names, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
            raise TypeError(f"rename_columns() takes {{old name: new name}}, got {names!r:.80}")
        self._check_tabular("rename_columns")
        schema = self._known_schema()
        if schema is not None and hasattr(schema, "names"):
            check_columns(list(names), list(schema.names), "rename_columns")
        stage = RenameColumns(names)
        stage.remote_args = check_remote_args(ray_remote_args, "rename_columns")
        return self._with_stage(stage)

    def with_column(self, column_name: str, expr: Any, **ray_remote_args: Any
                    ) -> "Dataset":  # noqa: F821
        """Add (or replace) the column ``column_name`` computed by an expression of
        ``raylite.data.expressions`` (``col``, ``lit`` and operators).

        Example:
            >>> import raylite as ray
            >>> from raylite.data.expressions import col
            >>> ds = ray.data.from_items([{"price": 10, "quantity": 2}])
            >>> ds.with_column("total", col("price") * col("quantity")).take_all()
            [ArrowRow({'price': 10, 'quantity': 2, 'total': 20})]
        """
        if not isinstance(column_name, str):
            raise TypeError(f"with_column() needs a column name (str), got {column_name!r}")
        return self.with_columns({column_name: expr}, **ray_remote_args)

    def with_columns(self, exprs: dict, **ray_remote_args: Any) -> "Dataset":  # noqa: F821
        """Add (or replace) several columns at once: ``{name: expression}``, in that order.

        Example:
            >>> import raylite as ray
            >>> from raylite.data.expressions import col
            >>> ds = ray.data.from_items([{"x": 1}])
            >>> ds.with_columns({"x2": col("x") * 2, "x3": col("x") * 3}).take_all()
            [ArrowRow({'x': 1, 'x2': 2, 'x3': 3})]
        """
        from raylite.data.expressions import WithColumns, check_expression
        if not isinstance(exprs, dict) or not exprs:
            raise TypeError(f"with_columns() needs a dict of {{column name: expression}}, got "
                            f"{exprs!r:.80}")
        for name, expr in exprs.items():
            if not isinstance(name, str):
                raise TypeError(f"with_columns(): column names must be strings, got {name!r}")
            check_expression(expr, f"with_column({name!r}, ...)")
        self._check_tabular("with_column")
        self._check_expression_columns(exprs.values(), "with_column")
        stage = WithColumns(dict(exprs))
        stage.remote_args = check_remote_args(ray_remote_args, "with_column")
        return self._with_stage(stage)

    def _check_expression_columns(self, exprs: Any, operation: str) -> None:
        schema = self._known_schema()
        if schema is not None and hasattr(schema, "names"):
            needed = sorted({name for expr in exprs for name in expr.columns()})
            check_columns(needed, list(schema.names), operation)

    def _select(self, columns: list[str], drop: bool) -> "Dataset":  # noqa: F821
        stage = SelectColumns(columns, drop)
        self._check_tabular(stage.name)
        schema = self._known_schema()
        if schema is not None:
            check_columns(columns, list(schema.names), stage.name)
        return self._with_stage(stage)

    def _check_tabular(self, operation: str) -> None:
        schema = self._known_schema()
        if schema is not None and not hasattr(schema, "names"):
            raise ValueError(f"{operation} needs a tabular dataset (rows that are dicts), but "
                             f"the rows are {schema.__name__}s. {switch_hint(self._api)}")
