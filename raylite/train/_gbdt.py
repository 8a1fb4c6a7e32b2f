"""Gradient-boosted trees across worker actors: :class:`XGBoostTrainer`, :class:`LightGBMTrainer`.

One model is trained by all the workers together, each on its shard of ``datasets["train"]``,
with the library's own distributed protocol, set up by a backend when the group starts::

    XGBoost:  driver  RabitTracker(n_workers, 127.0.0.1) ── worker_args ──► every worker
              worker  with xgboost.collective.CommunicatorContext(**args, dmlc_task_id=rank):
                          xgboost.train(params, DMatrix(shard), num_boost_round)
    LightGBM: a free port per worker; every worker gets machines="ip:port,..." and
              local_listen_port, tree_learner="data": lightgbm.train(params, Dataset(shard))

After each boosting round every worker reports the evaluation metrics ("train-logloss",
"valid-error", ...) named as Ray does; rank 0's model is checkpointed at the end (and every
``CheckpointConfig.checkpoint_frequency`` rounds). A restart resumes from that model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raylite.air.checkpoint import PREPROCESSOR_KEY, Checkpoint
from raylite.air.config import RunConfig, ScalingConfig
from raylite.air.result import Result
from raylite.train._backend import BackendConfig, free_ports
from raylite.train._v2 import BaseTrainer, DataParallelTrainer
from raylite.train.predictor import Predictor

MODEL_KEY = "model"
_worker_setup: dict = {}  # on each worker: what the backend handed it


def _set_worker_setup(setup: dict) -> None:
    _worker_setup.clear()
    _worker_setup.update(setup)


# ==========================================================================================
# backends: the libraries' own distributed set-up
# ==========================================================================================
class XGBoostConfig(BackendConfig):
    """Starts xgboost's RabitTracker on the driver and hands its address to the workers."""

    name = "xgboost"

    def __init__(self) -> None:
        self._tracker = None

    def on_start(self, group: Any, use_gpu: bool) -> None:
        from xgboost.tracker import RabitTracker
        host = "127.0.0.1" if group.on_this_machine() else group.workers[0].ip
        self._tracker = RabitTracker(n_workers=len(group), host_ip=host, sortby="task")
        self._tracker.start()
        group.execute(_set_worker_setup, {"xgboost": dict(self._tracker.worker_args())})

    def on_shutdown(self, group: Any) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            tracker.free()


class LightGBMConfig(BackendConfig):
    """Gives every worker LightGBM's network parameters: a port each, the machine list."""

    name = "lightgbm"

    def on_start(self, group: Any, use_gpu: bool) -> None:
        ports = free_ports(group, list(range(len(group))))
        ips = ["127.0.0.1" if group.on_this_machine() else w.ip for w in group.workers]
        machines = ",".join(f"{ip}:{port}" for ip, port in zip(ips, ports))
        group.execute(_set_worker_setup, {"lightgbm": {"machines": machines, "ports": ports}})


# ==========================================================================================
# the loop each worker runs
# ==========================================================================================
def _gbdt_loop(config: dict) -> None:
    from raylite.air import session
    from raylite.train._session import worker_context
    framework = config["framework"]
    label = config["label_column"]
    frames = {name: _shard_frame(session.get_dataset_shard(name), name)
              for name in config["dataset_names"]}
    for name, frame in frames.items():
        if label not in frame.columns:
            raise ValueError(f"label_column {label!r} is not a column of datasets[{name!r}]; "
                             f"its columns are {list(frame.columns)}")
    resume = session.get_checkpoint()
    rank = worker_context().world_rank
    if framework == "xgboost":
        _train_xgboost(config, frames, label, resume, rank)
    else:
        _train_lightgbm(config, frames, label, resume, rank)


def _shard_frame(shard: Any, name: str) -> Any:
    import pandas as pd
    batches = list(shard.iter_batches(batch_size=None, batch_format="pandas"))
    if not batches:
        raise ValueError(f"datasets[{name!r}] gave this worker no rows: use fewer workers or "
                         "more data")
    return pd.concat(batches, ignore_index=True)


def _report(metrics: dict, checkpoint: Checkpoint | None) -> None:
    from raylite.air import session
    session.report(metrics, checkpoint=checkpoint)


def _train_xgboost(config: dict, frames: dict, label: str, resume: Any, rank: int) -> None:
    import xgboost
    matrices = {name: xgboost.DMatrix(frame.drop(columns=[label]), label=frame[label],
                                      **config["dmatrix_params"].get(name, {}))
                for name, frame in frames.items()}
    booster = XGBoostCheckpoint.from_checkpoint(resume).get_model() if resume else None
    done = booster.num_boosted_rounds() if booster is not None else 0
    rounds = config["num_boost_round"]
    frequency = config["checkpoint_frequency"]

    class ReportEachRound(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            metrics = {f"{data}-{metric}": float(values[-1]) for data, logs in evals_log.items()
                       for metric, values in logs.items()}
            last = epoch + 1 == rounds
            keep = last or (frequency and (epoch + 1) % frequency == 0)
            _report(metrics, XGBoostCheckpoint.from_model(model) if keep else None)
            return False

    args = dict(_worker_setup["xgboost"], dmlc_task_id=str(rank))
    with xgboost.collective.CommunicatorContext(**args):
        xgboost.train(config["params"], matrices["train"], num_boost_round=rounds - done,
                      evals=list((m, n) for n, m in matrices.items()), xgb_model=booster,
                      callbacks=[ReportEachRound()], verbose_eval=False)


def _train_lightgbm(config: dict, frames: dict, label: str, resume: Any, rank: int) -> None:
    import lightgbm
    network = _worker_setup["lightgbm"]
    params = {"verbose": -1, **config["params"], "tree_learner": config["params"].get(
        "tree_learner", "data"), "num_machines": len(network["ports"]),
        "machines": network["machines"], "local_listen_port": network["ports"][rank],
        "pre_partition": True, "num_threads": config["params"].get("num_threads", 1)}
    datasets = {name: lightgbm.Dataset(frame.drop(columns=[label]), label=frame[label])
                for name, frame in frames.items()}
    booster = LightGBMCheckpoint.from_checkpoint(resume).get_model() if resume else None
    done = booster.current_iteration() if booster is not None else 0
    rounds = config["num_boost_round"]
    frequency = config["checkpoint_frequency"]

    def report_each_round(env: Any) -> None:
        metrics = {f"{data}-{metric}": float(value) for data, metric, value, *_ in
                   env.evaluation_result_list}
        last = env.iteration + 1 == env.end_iteration
        keep = last or (frequency and (env.iteration + 1) % frequency == 0)
        _report(metrics, LightGBMCheckpoint.from_model(env.model) if keep else None)

    names = list(datasets)
    lightgbm.train(params, datasets["train"], num_boost_round=rounds - done,
                   valid_sets=[datasets[n] for n in names], valid_names=names,
                   init_model=booster, callbacks=[report_each_round])


# ==========================================================================================
# the trainers
# ==========================================================================================
class GBDTTrainer(BaseTrainer):
    """What XGBoostTrainer and LightGBMTrainer share (see the module docstring)."""

    _framework = ""
    _backend: Callable[[], BackendConfig]
    _default_params: dict = {}

    def __init__(self, *, datasets: dict[str, Any], label_column: str, params: dict,
                 num_boost_round: int = 10, scaling_config: ScalingConfig | None = None,
                 run_config: RunConfig | None = None, preprocessor: Any = None,
                 resume_from_checkpoint: Checkpoint | None = None,
                 dmatrix_params: dict | None = None, metadata: dict | None = None,
                 **train_kwargs: Any):
        if train_kwargs:
            raise ValueError(f"{type(self).__name__} does not take {sorted(train_kwargs)}; its "
                             "arguments are datasets, label_column, params, num_boost_round, "
                             "scaling_config, run_config, preprocessor, resume_from_checkpoint")
        super().__init__(scaling_config=scaling_config, run_config=run_config,
                         datasets=datasets, preprocessor=preprocessor,
                         resume_from_checkpoint=resume_from_checkpoint, metadata=metadata)
        if "train" not in self.datasets:
            raise ValueError(f"{type(self).__name__} needs datasets={{'train': ...}}; got "
                             f"{sorted(self.datasets) or 'none'}")
        if not isinstance(label_column, str):
            raise TypeError(f"label_column must be a column name, got {label_column!r}")
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of {self._framework} parameters, got "
                            f"{type(params).__name__}")
        if isinstance(num_boost_round, bool) or not isinstance(num_boost_round, int) \
                or num_boost_round < 1:
            raise ValueError(f"num_boost_round must be an int >= 1, got {num_boost_round!r}")
        self.label_column = label_column
        self.params = params
        self.num_boost_round = num_boost_round
        self.dmatrix_params = dict(dmatrix_params or {})

    def _run(self, datasets: dict, logdir: str | None, resume: Checkpoint | None,
             on_result: Callable | None, trial: dict | None) -> Result:
        checkpointing = self.run_config.checkpoint_config
        config = {"framework": self._framework, "label_column": self.label_column,
                  "params": {**self._default_params, **self.params},
                  "num_boost_round": self.num_boost_round, "dataset_names": list(datasets),
                  "dmatrix_params": self.dmatrix_params,
                  "checkpoint_frequency": checkpointing.checkpoint_frequency
                  if checkpointing else 0}
        inner = DataParallelTrainer(_gbdt_loop, train_loop_config=config,
                                    backend_config=self._backend(),
                                    scaling_config=self.scaling_config,
                                    run_config=self.run_config, preprocessor=self.preprocessor)
        return inner._run(datasets, logdir, resume, on_result, trial)


class XGBoostTrainer(GBDTTrainer):
    """Train one XGBoost model across ``scaling_config.num_workers`` actors (Ray 2.2's
    ``ray.train.xgboost.XGBoostTrainer``).

    Example:
        >>> trainer = XGBoostTrainer(                                   # doctest: +SKIP
        ...     datasets={"train": train_ds, "valid": valid_ds}, label_column="target",
        ...     params={"objective": "binary:logistic", "eval_metric": ["logloss"]},
        ...     num_boost_round=20, scaling_config=ScalingConfig(num_workers=2))
        >>> result = trainer.fit(); result.metrics["valid-logloss"]
    """

    _framework = "xgboost"
    _backend = XGBoostConfig
    _default_params = {"nthread": 1}


class LightGBMTrainer(GBDTTrainer):
    """Train one LightGBM model across ``scaling_config.num_workers`` actors (data-parallel
    tree learner over LightGBM's own sockets on 127.0.0.1)."""

    _framework = "lightgbm"
    _backend = LightGBMConfig


# ==========================================================================================
# checkpoints and predictors
# ==========================================================================================
class XGBoostCheckpoint(Checkpoint):
    """A checkpoint of an ``xgboost.Booster`` (its JSON model) and a preprocessor."""

    @classmethod
    def from_model(cls, booster: Any, *, preprocessor: Any = None) -> XGBoostCheckpoint:
        return cls.from_dict({MODEL_KEY: bytes(booster.save_raw("json")),
                              PREPROCESSOR_KEY: preprocessor})

    def get_model(self) -> Any:
        import xgboost
        booster = xgboost.Booster()
        booster.load_model(bytearray(_model_of(self)))
        return booster


class LightGBMCheckpoint(Checkpoint):
    """A checkpoint of a ``lightgbm.Booster`` (its model string) and a preprocessor."""

    @classmethod
    def from_model(cls, booster: Any, *, preprocessor: Any = None) -> LightGBMCheckpoint:
        return cls.from_dict({MODEL_KEY: booster.model_to_string(),
                              PREPROCESSOR_KEY: preprocessor})

    def get_model(self) -> Any:
        import lightgbm
        return lightgbm.Booster(model_str=_model_of(self))


def _model_of(checkpoint: Checkpoint) -> Any:
    data = checkpoint.to_dict()
    if MODEL_KEY not in data:
        raise ValueError(f"this checkpoint holds no model (keys: {sorted(data)}); make it with "
                         f"{type(checkpoint).__name__}.from_model")
    return data[MODEL_KEY]


class XGBoostPredictor(Predictor):
    """Predict with an xgboost Booster on pandas or numpy batches."""

    def __init__(self, model: Any, preprocessor: Any = None):
        super().__init__(preprocessor)
        self.model = model

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> XGBoostPredictor:
        checkpoint = XGBoostCheckpoint.from_checkpoint(checkpoint)
        return cls(checkpoint.get_model(), checkpoint.get_preprocessor())

    def _predict_pandas(self, df: Any, dmatrix_kwargs: dict | None = None,
                        **predict_kwargs: Any) -> Any:
        import pandas as pd
        import xgboost
        predictions = self.model.predict(xgboost.DMatrix(df, **(dmatrix_kwargs or {})),
                                         **predict_kwargs)
        return _predictions_frame(pd, predictions)


class LightGBMPredictor(Predictor):
    """Predict with a lightgbm Booster on pandas or numpy batches."""

    def __init__(self, model: Any, preprocessor: Any = None):
        super().__init__(preprocessor)
        self.model = model

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> LightGBMPredictor:
        checkpoint = LightGBMCheckpoint.from_checkpoint(checkpoint)
        return cls(checkpoint.get_model(), checkpoint.get_preprocessor())

    def _predict_pandas(self, df: Any, **predict_kwargs: Any) -> Any:
        import pandas as pd
        return _predictions_frame(pd, self.model.predict(df, **predict_kwargs))


def _predictions_frame(pd: Any, predictions: Any) -> Any:
    if getattr(predictions, "ndim", 1) > 1:
        return pd.DataFrame({"predictions": list(predictions)})
    return pd.DataFrame({"predictions": predictions})
