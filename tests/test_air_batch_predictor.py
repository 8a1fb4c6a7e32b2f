"""BatchPredictor's behaviour on its actor pool: the model is loaded once per actor, batches
have the asked size, and each actor's math libraries use as many threads as it holds CPUs."""

import os

import numpy as np

from raylite.air import Checkpoint
from raylite.train.batch_predictor import BatchPredictor
from raylite.train.predictor import Predictor


class _RecordingPredictor(Predictor):
    """Scores nothing: reports, per batch, who scored it, its size and the thread setting."""

    def __init__(self, log: str):
        super().__init__()
        self.log = log

    @classmethod
    def from_checkpoint(cls, checkpoint, **kwargs):
        log = checkpoint.to_dict()["log"]
        with open(log, "a") as f:  # one line per model load, by this process
            f.write(f"{os.getpid()}\n")
        return cls(log)

    def _predict_numpy(self, data, **kwargs):
        rows = len(data)
        return {"pid": np.full(rows, os.getpid()), "rows": np.full(rows, rows),
                "omp": np.full(rows, int(os.environ.get("OMP_NUM_THREADS", "0")))}


def test_model_loaded_once_per_actor_and_batch_sizes_honoured(ray, tmp_path):
    log = str(tmp_path / "loads")
    checkpoint = Checkpoint.from_dict({"log": log})
    ds = ray.data.from_numpy(np.arange(1000, dtype=np.float32).reshape(-1, 1)).repartition(4)
    out = BatchPredictor.from_checkpoint(checkpoint, _RecordingPredictor).predict(
        ds, feature_columns=["value"], batch_size=50, min_scoring_workers=2,
        max_scoring_workers=2, num_cpus_per_worker=1).to_pandas()
    assert len(out) == 1000
    with open(log) as f:
        loads = f.read().split()
    pids = set(out["pid"])
    assert len(pids) <= 2 and sorted(loads) == sorted(str(p) for p in pids)  # once per actor
    assert set(out["rows"]) == {50}  # each 250-row block in batches of 50
    assert set(out["omp"]) == {1}  # one math thread per CPU the actor holds
