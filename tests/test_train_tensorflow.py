"""raylite.train with TensorFlow: two workers train a Keras model under
tf.distribute.MultiWorkerMirroredStrategy (built from the TF_CONFIG raylite sets) and converge
to the same weights. TensorFlow takes seconds to import in each worker, so each test here is
one short run.

- ``model.fit`` runs on Keras 2 (tf_keras), which the TensorFlow backend picks when it is
  installed: Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy, with or without
  raylite ("Attempt to convert a value (PerReplica...)", keras-team/keras#20585).
- A custom loop (strategy.run + GradientTape) runs on Keras 3 (``legacy_keras=False``).
"""

import importlib.util
import os

import numpy as np
import pytest

from raylite import train
from raylite.train import RunConfig, ScalingConfig, Trainer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs tensorflow (the tf extra)")
needs_tf_keras = pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None,
                                    reason="needs tf_keras (Keras 2) for model.fit")


def quiet_tensorflow():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"


def linear_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    y = (x @ np.array([[2.0], [-3.0]], dtype="float32") + 0.5).astype("float32")
    return x, y


def keras_fit_loop(config):
    quiet_tensorflow()
    import tensorflow as tf

    from raylite.train.tensorflow.keras import ReportCheckpointCallback

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = linear_data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)  # auto-sharded over workers
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.3), loss="mse")
    history = model.fit(dataset, epochs=config["epochs"], verbose=0,
                        callbacks=[ReportCheckpointCallback(metrics={"mse": "loss"})])
    train.report({"keras": tf.keras.__name__, "replicas": strategy.num_replicas_in_sync,
                  "final_weights": [w.tolist() for w in model.get_weights()],
                  "history": history.history["loss"]})


@needs_tf_keras
def test_keras_model_fit_on_two_workers_converges(ray, tmp_path):
    from raylite.train.tensorflow import TensorflowTrainer
    result = TensorflowTrainer(keras_fit_loop, train_loop_config={"epochs": 6},
                               scaling_config=ScalingConfig(num_workers=2),
                               run_config=RunConfig(name="keras", storage_path=str(tmp_path))).fit()
    assert result.error is None
    last = result.metrics
    assert last["keras"].startswith("tf_keras") and last["replicas"] == 2  # Keras 2, both workers
    losses = [m["mse"] for m in result.metrics_history[:-1]]  # one report per epoch, then the last
    assert len(losses) == 6 and losses == last["history"]
    assert losses[-1] < 0.01 < losses[0]  # converged: y = 2 x0 - 3 x1 + 0.5
    weights, bias = last["final_weights"]
    np.testing.assert_allclose(np.ravel(weights), [2.0, -3.0], atol=0.1)
    np.testing.assert_allclose(bias, [0.5], atol=0.1)
    # the checkpoint of the last epoch holds rank 0's weights, as Keras arrays
    saved = result.checkpoint.to_dict()
    assert saved["epoch"] == 5
    for ours, theirs in zip(saved["weights"], last["final_weights"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert result.path.startswith(str(tmp_path / "keras"))


def custom_loop(config):
    quiet_tensorflow()
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = linear_data()
    global_batch = 64
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch))
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.SGD(learning_rate=0.3)
        optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(batch):
        def replica_step(inputs):
            features, targets = inputs
            with tf.GradientTape() as tape:
                error = tf.reduce_mean(tf.square(model(features, training=True) - targets), axis=-1)
                loss = tf.nn.compute_average_loss(error, global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss
        losses = strategy.run(replica_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    history = []
    for epoch in range(config["epochs"]):
        losses = [float(train_step(batch)) for batch in dataset]
        history.append(sum(losses) / len(losses))
        train.report(epoch=epoch, loss=history[-1])
    return {"loss": history, "replicas": strategy.num_replicas_in_sync, "keras": tf.keras.__name__,
            "weights": [v.numpy().copy() for v in model.trainable_variables]}


def test_custom_loop_on_keras_3_with_multi_worker_mirrored_strategy(ray, tmp_path):
    from raylite.train.tensorflow import TensorflowConfig
    trainer = Trainer(backend=TensorflowConfig(legacy_keras=False), num_workers=2, logdir=tmp_path)
    trainer.start()
    try:
        reports = []
        results = trainer.run(custom_loop, {"epochs": 6}, callbacks=[_Collect(reports)])
    finally:
        trainer.shutdown()
    assert not results[0]["keras"].startswith("tf_keras")  # legacy_keras=False: TensorFlow's own
    assert [r["replicas"] for r in results] == [2, 2]  # one strategy over both processes
    first, last = results[0]["loss"][0], results[0]["loss"][-1]
    assert last < 0.01 < first  # converged
    np.testing.assert_allclose(results[0]["weights"][0].ravel(), [2.0, -3.0], atol=0.1)
    for ours, theirs in zip(results[0]["weights"], results[1]["weights"]):  # replicas in sync
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert [[r["epoch"] for r in results] for results in reports] == [[e, e] for e in range(6)]


def test_legacy_keras_choice(monkeypatch):
    # the choice the backend makes on each worker, made here in-process
    from raylite.train._backend_tf import TensorflowConfig, choose_keras
    monkeypatch.setattr(os, "environ", dict(os.environ))  # what choose_keras sets stays here
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    have_tf_keras = importlib.util.find_spec("tf_keras") is not None
    assert choose_keras(None) == ("keras2" if have_tf_keras else "default")
    assert choose_keras(False) == "default" and os.environ["TF_USE_LEGACY_KERAS"] == "0"
    assert choose_keras(None) == "default"  # a setting already there stands
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    assert choose_keras(None) == "keras2"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="pip install tf_keras"):
        choose_keras(True)
    with pytest.raises(TypeError, match="legacy_keras"):
        TensorflowConfig(legacy_keras="yes")


def test_keras_callback_moments_are_checked():
    # the callback's argument check, without importing TensorFlow into the test process
    from raylite.train.tensorflow.keras import _moments
    assert _moments("checkpoint_on", None) == ()
    assert _moments("report_metrics_on", ["epoch_end", "train_batch_end"]) == (
        "epoch_end", "train_batch_end")
    with pytest.raises(ValueError, match="checkpoint_on='epoch'.*'epoch_end', 'train_batch_end'"):
        _moments("checkpoint_on", "epoch")


class _Collect(train.TrainingCallback):
    def __init__(self, into):
        self.into = into

    def handle_result(self, results, **info):
        self.into.append(results)
