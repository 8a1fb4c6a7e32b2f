"""tune.integration.keras: the callbacks report Keras metrics (and save the model) through a
trial session. Run in-process with a tiny model: importing Keras is the slow part."""

import os

import numpy as np
import pytest

from raylite.tune import _session
from raylite.tune.integration import keras as tune_keras


def test_select_metrics_names_what_is_missing():
    logs = {"loss": np.float32(0.5), "accuracy": 0.75}
    assert tune_keras.select_metrics(logs, None) == {"loss": 0.5, "accuracy": 0.75}
    assert tune_keras.select_metrics(logs, ["loss"]) == {"loss": 0.5}
    with pytest.raises(ValueError, match=r"no \['mae'\].*\['accuracy', 'loss'\]"):
        tune_keras.select_metrics(logs, {"error": "mae"})


def test_keras_callbacks_report_and_checkpoint(tmp_path):
    keras = pytest.importorskip("keras")  # tensorflow (the tf extra)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with pytest.raises(ValueError, match="not a Keras callback hook"):
        tune_keras.TuneReportCallback(on="epoch_finish")
    session = _session.TrialSession({"trial_id": "t0", "trial_name": "t0",
                                     "logdir": str(tmp_path)})
    _session.activate(session)
    try:
        model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
        model.fit(x, x.sum(axis=1), epochs=3, batch_size=16, verbose=0, callbacks=[
            tune_keras.TuneReportCallback({"mean_error": "mae"}),
            tune_keras.TuneReportCheckpointCallback("loss", frequency=2)])
    finally:
        _session.activate(None)
    results, _, _ = session.take(timeout=0)
    assert [r["training_iteration"] for r, _ in results] == [1, 2, 3, 4, 5, 6]
    assert [sorted(set(r) & {"mean_error", "loss"}) for r, _ in results] == \
        [["mean_error"], ["loss"]] * 3
    assert all(isinstance(r.get("mean_error", r.get("loss")), float) for r, _ in results)
    checkpoints = [path for _, path in results]
    assert checkpoints[:3] == [None] * 3 and checkpoints[4:] == [None, None]  # every 2nd epoch
    restored = keras.models.load_model(os.path.join(checkpoints[3], "model.keras"))
    assert restored.predict(x[:4], verbose=0).shape == (4, 1)
