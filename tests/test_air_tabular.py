"""The tabular AIR pipeline end to end: read_csv -> preprocessors -> XGBoostTrainer on 2
workers -> checkpoint -> BatchPredictor -> PredictorDeployment over HTTP; and LightGBM."""

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

xgboost = pytest.importorskip("xgboost")

from raylite.air import ScalingConfig  # noqa: E402
from raylite.data.preprocessors import Chain, OneHotEncoder, StandardScaler  # noqa: E402


def _frame(n=300, seed=0, color_matters=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    color = rng.choice(["red", "blue"], n)
    shift = (color == "red") * 1.5 - 0.7 if color_matters else 0.0
    target = ((x[:, 0] + x[:, 1] + shift) > 0).astype(int)
    return pd.DataFrame({"x0": x[:, 0] * 10 + 5, "x1": x[:, 1], "color": color,
                         "target": target})


PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "error"],
          "tree_method": "hist", "max_depth": 3, "seed": 0}


def test_xgboost_pipeline_from_csv_to_http(serve_url, tmp_path):
    import raylite as ray
    from raylite import serve
    from raylite.serve.air_integrations import PredictorDeployment
    from raylite.serve.http_adapters import pandas_read_json
    from raylite.train.batch_predictor import BatchPredictor
    from raylite.train.xgboost import XGBoostCheckpoint, XGBoostPredictor, XGBoostTrainer

    frame = _frame()
    frame.to_csv(tmp_path / "data.csv", index=False)
    dataset = ray.data.read_csv(str(tmp_path / "data.csv"))
    train_ds, valid_ds = dataset.train_test_split(test_size=0.25)
    preprocessor = Chain(StandardScaler(["x0", "x1"]), OneHotEncoder(["color"]))
    result = XGBoostTrainer(datasets={"train": train_ds, "valid": valid_ds},
                            label_column="target", params=PARAMS, num_boost_round=15,
                            preprocessor=preprocessor,
                            scaling_config=ScalingConfig(num_workers=2)).fit()
    assert result.metrics["valid-error"] < 0.15
    assert len(result.metrics_dataframe) == 15  # a report per boosting round
    checkpoint = result.checkpoint
    assert isinstance(checkpoint, XGBoostCheckpoint)
    assert checkpoint.get_preprocessor().fit_status() == "FITTED"

    # offline scoring: the raw CSV rows, the preprocessor comes from the checkpoint
    test = dataset.drop_columns(["target"])
    scored = BatchPredictor.from_checkpoint(checkpoint, XGBoostPredictor).predict(
        test, min_scoring_workers=1, max_scoring_workers=2, batch_size=64).to_pandas()
    accuracy = ((scored["predictions"].to_numpy() > 0.5) == frame["target"].to_numpy()).mean()
    assert len(scored) == len(frame) and accuracy > 0.85

    # the same predictions one batch at a time
    single = XGBoostPredictor.from_checkpoint(checkpoint).predict(frame.drop(columns="target"))
    np.testing.assert_allclose(single["predictions"], scored["predictions"], rtol=1e-6)

    # online: POST records, get predictions back
    serve.run(PredictorDeployment.options(name="xgb", ray_actor_options={"num_cpus": 0.5}).bind(
        XGBoostPredictor, checkpoint, http_adapter=pandas_read_json, batching_params=False),
        route_prefix="/xgb")
    rows = frame.drop(columns="target").iloc[:3].to_dict("records")
    request = urllib.request.Request(f"{serve_url}/xgb", data=json.dumps(rows).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert [round(r["predictions"], 5) for r in answer] == \
        [round(float(p), 5) for p in single["predictions"][:3]]


def test_xgboost_on_two_workers_matches_one_process(ray):
    """Both workers train one model together: the metrics they report (allreduced over the
    two shards) are those of xgboost.train on all the data."""
    from raylite.train.xgboost import XGBoostTrainer
    frame = _frame(color_matters=False).drop(columns="color")
    result = XGBoostTrainer(datasets={"train": ray.data.from_pandas(frame)},
                            label_column="target", params=PARAMS, num_boost_round=8,
                            scaling_config=ScalingConfig(num_workers=2)).fit()
    log = {}
    xgboost.train(PARAMS, xgboost.DMatrix(frame.drop(columns="target"), label=frame["target"]),
                  num_boost_round=8, evals=[(xgboost.DMatrix(
                      frame.drop(columns="target"), label=frame["target"]), "train")],
                  evals_result=log, verbose_eval=False)
    assert result.metrics["train-logloss"] == pytest.approx(log["train"]["logloss"][-1], rel=0.05)
    assert result.metrics["train-error"] == pytest.approx(log["train"]["error"][-1], abs=0.02)


def test_lightgbm_trainer_on_two_workers(ray):
    pytest.importorskip("lightgbm")
    from raylite.train.lightgbm import LightGBMCheckpoint, LightGBMPredictor, LightGBMTrainer
    frame = _frame(400, color_matters=False).drop(columns="color")
    train_ds, valid_ds = ray.data.from_pandas(frame).train_test_split(test_size=0.25)
    result = LightGBMTrainer(datasets={"train": train_ds, "valid": valid_ds},
                             label_column="target",
                             params={"objective": "binary", "metric": ["binary_error"],
                                     "min_data_in_leaf": 5},
                             num_boost_round=10, scaling_config=ScalingConfig(num_workers=2)).fit()
    assert result.metrics["valid-binary_error"] < 0.15
    assert isinstance(result.checkpoint, LightGBMCheckpoint)
    out = LightGBMPredictor.from_checkpoint(result.checkpoint).predict(
        frame.drop(columns="target"))
    assert ((out["predictions"] > 0.5) == frame["target"]).mean() > 0.8


def test_gbdt_bad_input_names_the_fix(ray):
    from raylite.train.xgboost import XGBoostTrainer
    ds = ray.data.from_pandas(_frame(20))
    with pytest.raises(ValueError, match=r"datasets=\{'train'"):
        XGBoostTrainer(datasets={"valid": ds}, label_column="target", params={})
    with pytest.raises(ValueError, match="num_boost_round"):
        XGBoostTrainer(datasets={"train": ds}, label_column="target", params={},
                       num_boost_round=0)
    from raylite.train import TrainingFailedError
    with pytest.raises(TrainingFailedError, match="label_column 'nope'"):
        XGBoostTrainer(datasets={"train": ds.drop_columns(["color"])}, label_column="nope",
                       params={}, num_boost_round=1).fit()
