"""raylite.train.tensorflow: TensorFlow on raylite.train (TensorFlow is imported only when used).

    import tensorflow as tf
    from raylite.train.tensorflow import TensorflowTrainer

    def train_loop(config):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()   # reads the TF_CONFIG set up for it
        with strategy.scope():
            model = build_and_compile_model()
        model.fit(dataset, epochs=config["epochs"])

    TensorflowTrainer(train_loop, scaling_config=ScalingConfig(num_workers=2)).fit()
"""

from raylite.train._backend_tf import TensorflowConfig, prepare_dataset_shard
from raylite.train._v2 import TensorflowTrainer

__all__ = ["TensorflowTrainer", "TensorflowConfig", "prepare_dataset_shard"]
