"""``ray.tune.logger``: ``pretty_print``, the logger callbacks, and Ray 1.x's per-trial
``Logger`` classes.

    from raylite.tune.logger import pretty_print
    print(pretty_print(algo.train()))          # the book's way of showing a result

Two generations of the same files (see ``raylite.tune._logger``):

- callbacks (Ray 2.x, Tune's defaults): ``JsonLoggerCallback``, ``CSVLoggerCallback``,
  ``TBXLoggerCallback``, or a ``LoggerCallback`` subclass of your own, in ``callbacks=[...]``;
- loggers (Ray 1.x): ``Logger(config, logdir, trial)`` objects, one per trial, fed
  ``on_result(result)``; ``JsonLogger``, ``CSVLogger``, ``TBXLogger`` write the files above.
  ``tune.run(loggers=[...])`` and ``LegacyLoggerCallback([...])`` run them for every trial.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

from raylite.tune._logger import (CSVLoggerCallback, JsonLoggerCallback, LoggerCallback,
                                  TBXLoggerCallback, _json_default)

__all__ = ["pretty_print", "Logger", "NoopLogger", "JsonLogger", "CSVLogger", "TBXLogger",
           "UnifiedLogger", "LegacyLoggerCallback", "LoggerCallback", "JsonLoggerCallback",
           "CSVLoggerCallback", "TBXLoggerCallback", "DEFAULT_LOGGERS"]


# ==========================================================================================
# pretty_print
# ==========================================================================================
_HIDDEN = ("config", "hist_stats")  # long and rarely what one wants to read, as in Ray


def _plain(value: Any) -> Any:
    """JSON-able data: numpy scalars and arrays to Python, unknown objects to their repr."""
    return json.loads(json.dumps(value, default=_json_default, allow_nan=True))


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for key in sorted(value, key=str):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml_lines(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _yaml_lines(item, indent + 1)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [pad + _scalar(value)]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)  # YAML 1.1 reads 5e-05 as a string, 5.0e-05 as a float
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    if text == "" or text.strip() != text or any(c in text for c in ":#{}[],&*!|>'\"%@`\n"):
        return json.dumps(text)
    return text


def pretty_print(result: dict, exclude: Iterable[str] | None = None) -> str:
    """A training result as YAML-style text, keys sorted, ``config`` and ``hist_stats`` left
    out (as Ray's ``pretty_print``), and any keys in ``exclude``.

    Example:
        >>> print(pretty_print({"episode_reward_mean": 1.5, "info": {"lr": 0.01},
        ...                     "config": {"lr": 0.01}}), end="")
        episode_reward_mean: 1.5
        info:
          lr: 0.01
    """
    if not isinstance(result, dict):
        raise TypeError(f"pretty_print() takes a result dict, got {type(result).__name__}")
    skip = set(_HIDDEN) | set(exclude or ())
    shown = {key: value for key, value in result.items() if key not in skip and value is not None}
    return "\n".join(_yaml_lines(_plain(shown), 0)) + "\n"


# ==========================================================================================
# Ray 1.x's Logger classes
# ==========================================================================================
class _TrialFiles:
    """What the logger callbacks read of a trial: its id, config, folder and result count."""

    def __init__(self, config: dict, logdir: str, trial: Any):
        self.trial_id = getattr(trial, "trial_id", None) or f"logger-{id(self):x}"
        self.config = config
        self.logdir = logdir
        self.num_results = 0


class Logger:
    """Ray 1.x's logger interface: one object per trial, writing into the trial's folder.

    Subclass it and override ``_init`` (open files), ``on_result(result)``, ``close()``.

    Example:
        >>> import tempfile
        >>> class Lines(Logger):
        ...     def on_result(self, result):
        ...         with open(os.path.join(self.logdir, "lines.txt"), "a") as f:
        ...             f.write(f"{result['score']}\\n")
        >>> logger = Lines({"lr": 0.1}, tempfile.mkdtemp())
        >>> logger.on_result({"score": 1})
        >>> logger.close()
    """

    def __init__(self, config: dict, logdir: str, trial: Any = None):
        self.config = config
        self.logdir = logdir
        self.trial = trial
        self._init()

    def _init(self) -> None:
        pass

    def on_result(self, result: dict) -> None:
        raise NotImplementedError("a Logger subclass implements on_result(result)")

    def update_config(self, config: dict) -> None:
        self.config = config

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class NoopLogger(Logger):
    """Writes nothing."""

    def on_result(self, result: dict) -> None:
        pass


class _CallbackLogger(Logger):
    """A Logger that writes what one of the logger callbacks writes, for one trial."""

    _callback_class: type = LoggerCallback

    def _init(self) -> None:
        os.makedirs(self.logdir, exist_ok=True)
        self._files = _TrialFiles(self.config, self.logdir, self.trial)
        self._callback = self._callback_class()
        self._callback.log_trial_start(self._files)

    def on_result(self, result: dict) -> None:
        self._files.num_results += 1
        self._callback.log_trial_result(self._files.num_results, self._files, result)

    def update_config(self, config: dict) -> None:
        self.config = self._files.config = config

    def close(self) -> None:
        self._callback.log_trial_end(self._files)


class JsonLogger(_CallbackLogger):
    """params.json (the config) and result.json (one JSON line per result)."""

    _callback_class = JsonLoggerCallback


class CSVLogger(_CallbackLogger):
    """progress.csv, one row per result."""

    _callback_class = CSVLoggerCallback


class TBXLogger(_CallbackLogger):
    """TensorBoard event files of the numeric result fields (``ray/tune/<field>``)."""

    _callback_class = TBXLoggerCallback


DEFAULT_LOGGERS = (JsonLogger, CSVLogger, TBXLogger)


class UnifiedLogger(Logger):
    """Several loggers as one (default: JSON, CSV and TensorBoard)."""

    def __init__(self, config: dict, logdir: str, trial: Any = None,
                 loggers: Iterable[type] | None = None):
        self._logger_classes = list(DEFAULT_LOGGERS if loggers is None else loggers)
        super().__init__(config, logdir, trial)

    def _init(self) -> None:
        self._loggers = [cls(self.config, self.logdir, self.trial)
                         for cls in _checked(self._logger_classes)]

    def on_result(self, result: dict) -> None:
        for logger in self._loggers:
            logger.on_result(result)

    def update_config(self, config: dict) -> None:
        self.config = config
        for logger in self._loggers:
            logger.update_config(config)

    def flush(self) -> None:
        for logger in self._loggers:
            logger.flush()

    def close(self) -> None:
        for logger in self._loggers:
            logger.close()


def _checked(classes: Iterable[Any]) -> list[type]:
    classes = list(classes)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Logger)):
            raise TypeError(f"loggers must be Logger subclasses (JsonLogger, CSVLogger, ... or "
                            f"your own), got {cls!r}; a LoggerCallback goes in callbacks=[...]")
    return classes


class LegacyLoggerCallback(LoggerCallback):
    """Runs Ray 1.x ``Logger`` classes for every trial (what ``tune.run(loggers=...)`` uses)."""

    def __init__(self, logger_classes: Iterable[type]):
        self.logger_classes = _checked(logger_classes)
        self._loggers: dict[str, list[Logger]] = {}

    def log_trial_start(self, trial: Any) -> None:
        if trial.logdir is None or trial.trial_id in self._loggers:
            return
        self._loggers[trial.trial_id] = [cls(trial.config, trial.logdir, trial)
                                         for cls in self.logger_classes]

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        for logger in self._loggers.get(trial.trial_id, ()):
            logger.on_result(result)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        for logger in self._loggers.pop(trial.trial_id, ()):
            logger.close()

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        for loggers in self._loggers.values():
            for logger in loggers:
                logger.close()
        self._loggers.clear()
