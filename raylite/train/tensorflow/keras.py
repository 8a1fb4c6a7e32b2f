"""A Keras callback that reports to raylite.train (Ray 2.x ``ray.train.tensorflow.keras``).

    from raylite.train.tensorflow.keras import ReportCheckpointCallback

    def train_loop(config):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            model = build_and_compile_model()
        model.fit(dataset, epochs=3, callbacks=[ReportCheckpointCallback()])

Each epoch (or batch) every worker reports Keras' logs with ``train.report``; rank 0 adds a
checkpoint holding ``{"epoch": ..., "weights": model.get_weights()}``, which
``model.set_weights(checkpoint.to_dict()["weights"])`` restores.

The class derives from ``tf.keras.callbacks.Callback`` of whichever Keras ``tf.keras`` is on
the worker, so it is built on first use: importing this module imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportCheckpointCallback"]  # noqa: F822 - built on first use, by __getattr__

WHEN = ("epoch_end", "train_batch_end")


def _build_callback_class() -> type:
    import tensorflow as tf

    from raylite import train
    from raylite.train._checkpoint import Checkpoint

    class ReportCheckpointCallback(tf.keras.callbacks.Callback):
        """Report Keras' logs (and a checkpoint of the weights) to raylite.train.

        Args:
            checkpoint_on: "epoch_end", "train_batch_end", a list of them, or None (no checkpoints).
            report_metrics_on: when to report: "epoch_end" or "train_batch_end" (or a list).
            metrics: which logs to report (a list, or a dict {reported name: log name});
                None: all of them.
        """

        def __init__(self, checkpoint_on: str | list[str] | None = "epoch_end",
                     report_metrics_on: str | list[str] = "epoch_end",
                     metrics: list[str] | dict[str, str] | None = None):
            super().__init__()
            self._checkpoint_on = _moments("checkpoint_on", checkpoint_on)
            self._report_on = _moments("report_metrics_on", report_metrics_on)
            if metrics is not None and not isinstance(metrics, (list, tuple, dict)):
                raise TypeError(f"metrics must be a list of log names or a dict "
                                f"{{reported name: log name}}, got {type(metrics).__name__}")
            self._metrics = metrics
            self._epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._handle("epoch_end", logs)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._handle("train_batch_end", logs)

        def _handle(self, moment: str, logs: dict | None) -> None:
            checkpoint = None
            if moment in self._checkpoint_on and train.world_rank() == 0:
                checkpoint = Checkpoint.from_dict({"epoch": self._epoch,
                                                   "weights": self.model.get_weights()})
            if moment in self._report_on or checkpoint is not None:
                train.report(self._select(logs or {}), checkpoint=checkpoint)

        def _select(self, logs: dict) -> dict:
            if self._metrics is None:
                chosen = dict(logs)
            elif isinstance(self._metrics, dict):
                chosen = {name: logs[key] for name, key in self._metrics.items() if key in logs}
            else:
                chosen = {key: logs[key] for key in self._metrics if key in logs}
            return {key: _plain(value) for key, value in chosen.items()}

    ReportCheckpointCallback.__module__ = __name__
    ReportCheckpointCallback.__qualname__ = "ReportCheckpointCallback"
    return ReportCheckpointCallback


def _moments(argument: str, value: Any) -> tuple[str, ...]:
    moments = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    for moment in moments:
        if moment not in WHEN:
            raise ValueError(f"{argument}={value!r}: each must be one of {', '.join(map(repr, WHEN))}")
    return moments


def _plain(value: Any) -> Any:
    """A Python number for a tensor or numpy scalar, so that reports pickle small."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def __getattr__(name: str) -> Any:
    if name == "ReportCheckpointCallback":
        cls = _build_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
