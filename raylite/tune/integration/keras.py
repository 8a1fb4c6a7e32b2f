"""Keras callbacks that report to Tune (Ray's ``ray.tune.integration.keras``).

    from raylite.tune.integration.keras import TuneReportCallback

    def train(config):
        model = build_model(config)
        model.fit(x, y, epochs=10,
                  callbacks=[TuneReportCallback({"mean_accuracy": "accuracy"})])

Keras (``import keras``, else ``tensorflow.keras``) is imported when one of the classes is
first asked for, not when this module is: the classes subclass ``keras.callbacks.Callback``
and are built then. ``on`` names the Keras hooks that report: "epoch_end" (the default),
"batch_end", "train_end", ... (any ``on_<name>`` hook of a Keras callback, without "on_").
"""

from __future__ import annotations

import os
from typing import Any

_PUBLIC = ("TuneCallback", "TuneReportCallback", "TuneReportCheckpointCallback")
__all__ = list(_PUBLIC)

_HOOKS = ("train_begin", "train_end", "epoch_begin", "epoch_end", "train_batch_begin",
          "train_batch_end", "test_begin", "test_end", "test_batch_begin", "test_batch_end",
          "predict_begin", "predict_end", "predict_batch_begin", "predict_batch_end")
_ALIASES = {"batch_begin": "train_batch_begin", "batch_end": "train_batch_end"}
_classes: dict[str, type] = {}


def _parse_on(on: str | list[str]) -> set[str]:
    names = [on] if isinstance(on, str) else list(on)
    hooks = {_ALIASES.get(name, name) for name in names}
    unknown = sorted(hooks - set(_HOOKS))
    if unknown:
        raise ValueError(f"on={unknown!r}: not a Keras callback hook; choose from "
                         f"{sorted(set(_HOOKS) | set(_ALIASES))}")
    return hooks


def select_metrics(logs: dict | None, metrics: str | list | dict | None) -> dict[str, Any]:
    """The values to report from Keras ``logs``: all of them (``metrics=None``), the named
    ones, or ``{name to report: name in logs}``; a name missing from the logs is an error.

    Example:
        >>> select_metrics({"loss": 0.5, "accuracy": 0.75}, {"acc": "accuracy"})
        {'acc': 0.75}
    """
    logs = dict(logs or {})
    if metrics is None:
        wanted = {key: key for key in logs}
    elif isinstance(metrics, str):
        wanted = {metrics: metrics}
    elif isinstance(metrics, dict):
        wanted = dict(metrics)
    else:
        wanted = {name: name for name in metrics}
    missing = sorted(source for source in wanted.values() if source not in logs)
    if missing:
        raise ValueError(f"TuneReportCallback: the Keras logs have no {missing}; they have "
                         f"{sorted(logs)} (compile the model with those metrics, or name others)")
    return {name: _plain(logs[source]) for name, source in wanted.items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _build() -> dict[str, type]:
    try:
        import keras
    except ImportError:  # an old TensorFlow with its own Keras only
        from tensorflow import keras

    class TuneCallback(keras.callbacks.Callback):
        """Base class: calls ``_handle(logs, when)`` on the hooks named by ``on``."""

        def __init__(self, on: str | list[str] = "epoch_end"):
            super().__init__()
            self._on = _parse_on(on)

        def _handle(self, logs: dict, when: str) -> None:
            raise NotImplementedError

    def hook(name: str):
        def method(self, *args: Any, logs: dict | None = None) -> None:
            # Keras passes (logs) to train/test/predict begin/end, (index, logs) to the others
            if logs is None and args and isinstance(args[-1], dict):
                logs = args[-1]
            if name in self._on:
                self._handle(logs or {}, name)
        method.__name__ = f"on_{name}"
        return method

    for name in _HOOKS:
        setattr(TuneCallback, f"on_{name}", hook(name))

    class TuneReportCallback(TuneCallback):
        """Report Keras metrics to Tune at the end of each epoch (or the hooks in ``on``).

        Args:
            metrics: None for every Keras log value; a name or list of names; or a dict
                ``{name to report: Keras log name}``.
            on: the Keras hook(s) that report: "epoch_end", "batch_end", "train_end", ...
        """

        def __init__(self, metrics: str | list | dict | None = None,
                     on: str | list[str] = "epoch_end"):
            super().__init__(on)
            self._metrics = metrics

        def _handle(self, logs: dict, when: str) -> None:
            from raylite import tune
            tune.report(**select_metrics(logs, self._metrics))

    class TuneReportCheckpointCallback(TuneCallback):
        """Save the model into a Tune checkpoint every ``frequency`` calls, then report.

        Args:
            metrics: as for :class:`TuneReportCallback`.
            filename: the model's file in the checkpoint directory (".keras" is added if it
                has no extension).
            frequency: save every this many reports (the others only report).
            on: the Keras hook(s) that report.
        """

        def __init__(self, metrics: str | list | dict | None = None, filename: str = "model",
                     frequency: int = 1, on: str | list[str] = "epoch_end"):
            super().__init__(on)
            if not isinstance(frequency, int) or frequency < 1:
                raise ValueError(f"frequency must be an int >= 1, got {frequency!r}")
            self._metrics = metrics
            self._filename = filename if os.path.splitext(filename)[1] else filename + ".keras"
            self._frequency = frequency
            self._calls = 0

        def _handle(self, logs: dict, when: str) -> None:
            from raylite import tune
            self._calls += 1
            if self._calls % self._frequency == 0:
                with tune.checkpoint_dir() as directory:
                    self.model.save(os.path.join(directory, self._filename))
            tune.report(**select_metrics(logs, self._metrics))

    return {"TuneCallback": TuneCallback, "TuneReportCallback": TuneReportCallback,
            "TuneReportCheckpointCallback": TuneReportCheckpointCallback}


def __getattr__(name: str) -> type:
    if name in _PUBLIC:
        if not _classes:
            _classes.update(_build())
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
