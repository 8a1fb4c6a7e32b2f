"""raylite.tune: hyperparameter tuning (Ray Tune's API, 1.x and 2.x names).

    from raylite import tune

    def training_function(config):
        tune.report(score=(config["x"] ** 2 + config["y"] ** 2) ** 0.5)

    analysis = tune.run(training_function,
                        config={"x": tune.grid_search([-1, 0, 1]), "y": tune.uniform(-1, 1)})
    print(analysis.get_best_config(metric="score", mode="min"))

Trials run as actors (reused from trial to trial); results stream back to the driver as they
are reported, and every trial event is journaled in the experiment folder so that
``resume="AUTO"`` / ``Tuner.restore`` finish an interrupted run. Searchers: ``tune.search``
(also ``tune.suggest``: grid/random, Optuna, HyperOpt, BayesOpt, ConcurrencyLimiter,
Repeater); schedulers: ``tune.schedulers`` (FIFO, ASHA, HyperBand, median stopping, PBT);
stoppers: ``tune.stopper``; loggers and ``pretty_print``: ``tune.logger``; Keras callbacks:
``tune.integration.keras``. Optuna, HyperOpt, bayes_opt, Keras and pandas are imported only
when used.
"""

from raylite.tune import logger, schedulers, search, session, stopper, suggest
from raylite.tune._analysis import ExperimentAnalysis, Result, ResultGrid
from raylite.tune._logger import (Callback, CSVLoggerCallback, JsonLoggerCallback, LoggerCallback,
                                  TBXLoggerCallback)
from raylite._registry import register_env, register_trainable
from raylite.tune._progress import CLIReporter, JupyterNotebookReporter, ProgressReporter
from raylite.tune._run import run
from raylite.tune._runner import TuneError
from raylite.tune._search_space import (choice, grid_search, lograndint, loguniform, qlograndint,
                                        qloguniform, qrandint, qrandn, quniform, randint, randn,
                                        sample_from, uniform)
from raylite.tune._session import (Checkpoint, checkpoint_dir, get_checkpoint, get_trial_dir,
                                   get_trial_id, get_trial_name, get_trial_resources,
                                   is_session_enabled, report)
from raylite.tune._stopper import Stopper
from raylite.tune._trainable import (PlacementGroupFactory, Trainable, with_parameters,
                                     with_resources)
from raylite.tune._trial import Trial
from raylite.tune._tuner import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner

__all__ = [
    # running experiments
    "run", "Tuner", "TuneConfig", "RunConfig", "FailureConfig", "CheckpointConfig",
    "ExperimentAnalysis", "ResultGrid", "Result", "Trial", "TuneError",
    # inside trainables
    "report", "checkpoint_dir", "get_checkpoint", "get_trial_id", "get_trial_name",
    "get_trial_dir", "get_trial_resources", "is_session_enabled", "Checkpoint", "session",
    "Trainable", "with_parameters", "with_resources", "PlacementGroupFactory",
    # search spaces
    "grid_search", "choice", "uniform", "quniform", "loguniform", "qloguniform", "randint",
    "qrandint", "lograndint", "qlograndint", "randn", "qrandn", "sample_from",
    # plugins and output
    "Stopper", "Callback", "LoggerCallback", "JsonLoggerCallback", "CSVLoggerCallback",
    "TBXLoggerCallback", "CLIReporter", "JupyterNotebookReporter", "ProgressReporter",
    "schedulers", "search", "suggest", "stopper", "logger", "register_env", "register_trainable",
]
