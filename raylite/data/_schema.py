"""Schema: Ray 2.x's view of a tabular dataset's columns (``ds.schema()`` under
``RAYLITE_API=2``): ``names``, ``types`` and the pyarrow schema underneath, printed as Ray
prints it. Under the book's convention ``ds.schema()`` stays the pyarrow Schema, which has
``names`` and ``types`` too."""

from __future__ import annotations

from typing import Any


class Schema:
    """The columns of a tabular dataset.

    Example:
        >>> import pyarrow as pa
        >>> print(Schema(pa.schema([("id", pa.int64())])))
        Column  Type
        ------  ----
        id      int64
    """

    def __init__(self, base_schema: Any):
        self.base_schema = base_schema  # a pyarrow.Schema (or a RowSchema Arrow cannot hold)

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list:
        return list(self.base_schema.types)

    def __getattr__(self, name: str) -> Any:  # field(), metadata, ... of the pyarrow schema
        if name == "base_schema":
            raise AttributeError(name)
        return getattr(self.base_schema, name)

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            other = other.base_schema
        return self.base_schema == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        names = self.names
        width = max([len("Column")] + [len(name) for name in names])
        lines = [f"{'Column':<{width}}  Type", f"{'------':<{width}}  ----"]
        lines += [f"{name:<{width}}  {_type_text(kind)}"
                  for name, kind in zip(names, self.types)]
        return "\n".join(lines)


def _type_text(kind: Any) -> str:
    """A column type as Ray prints it: tensor columns as ``numpy.ndarray(shape=..., dtype=...)``."""
    shape = getattr(kind, "shape", None)
    value_type = getattr(kind, "value_type", None)
    if shape is not None and value_type is not None and "tensor" in str(kind):
        return f"numpy.ndarray(shape={tuple(shape)}, dtype={value_type})"
    return str(kind)
