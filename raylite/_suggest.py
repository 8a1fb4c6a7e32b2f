"""The one "did you mean ...?" helper of the package: every unknown name, key or option in
raylite is answered with the closest known ones."""

from __future__ import annotations

import difflib
from typing import Any, Iterable


def close_matches(word: Any, choices: Iterable[Any], n: int = 2, cutoff: float = 0.6) -> list[str]:
    """The known names closest to ``word`` (at most ``n``), best first."""
    return difflib.get_close_matches(str(word), sorted({str(c) for c in choices}), n=n,
                                     cutoff=cutoff)


def did_you_mean(word: Any, choices: Iterable[Any], n: int = 2, cutoff: float = 0.6) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the closest choices, or ``""`` when none is close.

    Example:
        >>> did_you_mean("num_cpu", ["num_cpus", "num_gpus", "memory"])
        "; did you mean 'num_cpus' or 'num_gpus'?"
    """
    close = close_matches(word, choices, n, cutoff)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
