"""Concatenator: several columns into one column of vectors (the model's input tensor)."""

from __future__ import annotations

from typing import Any

from raylite.data.preprocessors._base import Preprocessor


class Concatenator(Preprocessor):
    """Join ``include`` columns (default: all but ``exclude``) into one column of 1-d arrays
    named ``output_column_name``, in the batch's column order; the joined columns go.

    Example:
        >>> import pandas as pd
        >>> out = Concatenator(output_column_name="x", exclude=["y"]).transform_batch(
        ...     pd.DataFrame({"a": [1.0], "b": [2.0], "y": [0]}))
        >>> list(out.columns), out["x"][0].tolist()
        (['y', 'x'], [1.0, 2.0])
    """

    _is_fittable = False

    def __init__(self, output_column_name: str = "concat_out", include: list[str] | None = None,
                 exclude: str | list[str] | None = None, dtype: Any = None,
                 raise_if_missing: bool = False):
        if not isinstance(output_column_name, str):
            raise TypeError(f"Concatenator(output_column_name=...) takes a str, got "
                            f"{output_column_name!r}")
        self.output_column_name = output_column_name
        self.include = list(include) if include is not None else None
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude or [])
        self.dtype = dtype
        self.raise_if_missing = raise_if_missing

    def _transform_pandas(self, df: Any) -> Any:
        import numpy as np
        if self.raise_if_missing:
            missing = [c for c in (self.include or []) + self.exclude if c not in df.columns]
            if missing:
                raise ValueError(f"Concatenator: columns {missing} are missing from the batch; "
                                 f"its columns are {list(df.columns)}")
        columns = [c for c in (self.include if self.include is not None else df.columns)
                   if c not in self.exclude and c in df.columns]
        values = df[columns].to_numpy(dtype=self.dtype)
        out = df.drop(columns=columns)
        out[self.output_column_name] = list(np.ascontiguousarray(values))
        return out
