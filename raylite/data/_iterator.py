"""DataIterator: Ray 2.x's handle for consuming a dataset (``ds.iterator()``): the iter_*
methods of the Dataset, without its transforms. It pickles as the dataset's block tasks, so
it can be handed to a task or an actor."""

from __future__ import annotations

from typing import Any, Iterator


class DataIterator:
    """Iterate over one dataset's rows or batches.

    Example:
        >>> import raylite as ray
        >>> next(iter(ray.data.range_table(3).iterator().iter_rows()))
        ArrowRow({'value': 0})
    """

    def __init__(self, dataset: Any):
        self._dataset = dataset

    def iter_rows(self) -> Iterator[Any]:
        return self._dataset.iter_rows()

    def iter_batches(self, **options: Any) -> Iterator[Any]:
        return self._dataset.iter_batches(**options)

    def iter_torch_batches(self, **options: Any) -> Iterator[Any]:
        return self._dataset.iter_torch_batches(**options)

    def to_tf(self, *args: Any, **options: Any) -> Any:
        return self._dataset.to_tf(*args, **options)

    def materialize(self) -> Any:
        return self._dataset.materialize()

    def stats(self) -> str:
        return self._dataset.stats()

    def __repr__(self) -> str:
        return f"DataIterator({self._dataset!r})"
