"""TensorflowCheckpoint and TensorflowPredictor (Ray 2.2's doc example: a one-weight model)."""

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")


def build_model():
    return tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])


def test_tensorflow_checkpoint_and_predictor(ray):
    from raylite.air import Checkpoint
    from raylite.data.preprocessors import BatchMapper
    from raylite.train.batch_predictor import BatchPredictor
    from raylite.train.tensorflow import TensorflowCheckpoint, TensorflowPredictor
    model = build_model()
    model.set_weights([np.array([[2.0]], dtype=np.float32), np.array([1.0], dtype=np.float32)])
    doubler = BatchMapper(lambda df: df * 1.0, batch_format="pandas")
    checkpoint = TensorflowCheckpoint.from_model(model, preprocessor=doubler)
    loaded = Checkpoint.from_directory(checkpoint.to_directory())
    assert isinstance(loaded, TensorflowCheckpoint)
    predictor = TensorflowPredictor.from_checkpoint(loaded, model_definition=build_model)
    out = predictor.predict(np.array([[1.0], [2.0]], dtype=np.float32))
    np.testing.assert_allclose(out[:, 0], [3.0, 5.0])
    frame = predictor.predict(pd.DataFrame({"x": [0.0, 3.0]}))
    np.testing.assert_allclose(np.stack(frame["predictions"].to_list())[:, 0], [1.0, 7.0])
    scored = BatchPredictor.from_checkpoint(loaded, TensorflowPredictor,
                                            model_definition=build_model).predict(
        ray.data.from_pandas(pd.DataFrame({"x": [float(i) for i in range(6)]})),
        feature_columns=["x"], keep_columns=["x"]).to_pandas()
    np.testing.assert_allclose(np.stack(scored["predictions"].to_list())[:, 0],
                               2 * scored["x"] + 1, rtol=1e-6)
    with pytest.raises(ValueError, match="model_definition"):
        loaded.get_model()
