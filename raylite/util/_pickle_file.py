"""Reading back the pickled files Tune and Train write (checkpoints, an experiment's state),
with one clear line when a file is damaged instead of a raw ``UnpicklingError`` traceback.

    load_pickle(path, "checkpoint")
        ok          -> the value
        empty       -> DamagedFileError: checkpoint <path> is empty (0 bytes) ...
        cut short   -> DamagedFileError: checkpoint <path> is truncated or corrupt (...) ...
        old code    -> DamagedFileError: checkpoint <path> needs code this process cannot
                       import (...) ...
"""

from __future__ import annotations

import pickle
from typing import Any, Callable


class DamagedFileError(ValueError):
    """A file raylite wrote cannot be read back; the message names the file and the problem."""


FIX = "use an earlier one, or start afresh"


def load_pickle(path: str, what: str = "checkpoint",
                loads: Callable[[bytes], Any] | None = None, fix: str = FIX) -> Any:
    """The value pickled in ``path``; DamagedFileError (one line, ending with ``fix``) if it
    cannot be read back."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DamagedFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not data:
        raise DamagedFileError(f"{what} {path} is empty (0 bytes): it was cut short while "
                               f"being written; {fix}")
    try:
        return (loads or pickle.loads)(data)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise DamagedFileError(f"{what} {path} needs code this process cannot import "
                               f"({type(exc).__name__}: {exc}); run from the folder, or with the "
                               "modules, that wrote it") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, EOFError, ValueError, ...
        raise DamagedFileError(f"{what} {path} is truncated or corrupt ({type(exc).__name__}: "
                               f"{_first_line(exc)}); {fix}") from None


def damaged(path: str, what: str, exc: BaseException, fix: str = FIX) -> DamagedFileError:
    """The error for a file of another format (JSON, text) that does not parse."""
    return DamagedFileError(f"{what} {path} is truncated or corrupt ({type(exc).__name__}: "
                            f"{_first_line(exc)}); {fix}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
