"""raylite.train.tensorflow: TensorFlow on raylite.train (TensorFlow is imported only when used).

    import tensorflow as tf
    from raylite.train.tensorflow import TensorflowTrainer
    from raylite.train.tensorflow.keras import ReportCheckpointCallback

    def train_loop(config):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()   # reads the TF_CONFIG set up for it
        with strategy.scope():
            model = build_and_compile_model()
        model.fit(dataset, epochs=config["epochs"], callbacks=[ReportCheckpointCallback()])

    TensorflowTrainer(train_loop, scaling_config=ScalingConfig(num_workers=2)).fit()

``tf.keras`` on the workers is Keras 2 (the ``tf_keras`` package) when it is installed: Keras 3's
``model.fit`` fails under MultiWorkerMirroredStrategy (see ``TensorflowConfig(legacy_keras=...)``).
"""

from raylite.train._backend_tf import TensorflowConfig, prepare_dataset_shard
from raylite.train._tf_predictor import TensorflowCheckpoint, TensorflowPredictor
from raylite.train._v2 import TensorflowTrainer

__all__ = ["TensorflowTrainer", "TensorflowConfig", "TensorflowCheckpoint",
           "TensorflowPredictor", "prepare_dataset_shard", "keras"]


def __getattr__(name: str):
    if name == "keras":
        import importlib
        module = importlib.import_module("raylite.train.tensorflow.keras")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'raylite.train.tensorflow' has no attribute {name!r}")
