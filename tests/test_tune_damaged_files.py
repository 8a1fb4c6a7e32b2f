"""A truncated or corrupt file under an experiment (a trial's checkpoint, the experiment's state)
gives one line naming the file and the problem when Tune takes the experiment up, never a raw
UnpicklingError traceback."""

from __future__ import annotations

import os
import pickle

import pytest

from raylite import tune
from raylite.util._pickle_file import DamagedFileError


class Steps(tune.Trainable):
    """Counts; checkpoints a dict every iteration; fails at iteration 3 while ``fail`` exists."""

    def setup(self, config):
        self.count = 0

    def step(self):
        self.count += 1
        if self.count == 3 and os.path.exists(self.config["fail"]):
            raise RuntimeError("planned failure")
        return {"count": self.count, "done": self.count >= 4}

    def save_checkpoint(self, checkpoint_dir):
        return {"count": self.count}

    def load_checkpoint(self, checkpoint):
        self.count = checkpoint["count"]


def _run(tmp_path, **kwargs):
    return tune.run(Steps, name="damaged", storage_path=str(tmp_path / "results"), verbose=0,
                    config={"fail": str(tmp_path / "fail")}, checkpoint_freq=1, **kwargs)


@pytest.fixture
def errored(ray, tmp_path):
    """An experiment whose one trial failed at iteration 3, with checkpoints of 1 and 2."""
    (tmp_path / "fail").touch()
    analysis = _run(tmp_path, raise_on_failed_trial=False)
    [trial] = analysis.trials
    assert trial.status == "ERROR" and trial.checkpoint
    (tmp_path / "fail").unlink()
    return tmp_path, trial


def _cut(path: str, keep: float = 0.5) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])


def test_a_truncated_trial_checkpoint_is_named_when_the_trial_resumes(errored):
    tmp_path, trial = errored
    checkpoint_file = os.path.join(trial.checkpoint, "dict_checkpoint.pkl")
    assert pickle.load(open(checkpoint_file, "rb")) == {"count": 2}
    _cut(checkpoint_file)
    with pytest.raises(tune.TuneError) as failure:
        _run(tmp_path, resume="ERRORED_ONLY")
    message = str(failure.value)
    line = next(line for line in message.splitlines() if checkpoint_file in line)
    assert "is truncated or corrupt (UnpicklingError" in line or "(EOFError" in line, message
    assert "Traceback" not in line


def test_a_damaged_experiment_state_is_one_line_for_run_and_tuner_restore(errored):
    tmp_path, _ = errored
    experiment = str(tmp_path / "results" / "damaged")
    state_file = os.path.join(experiment, "experiment_state.pkl")
    _cut(state_file)
    with pytest.raises(DamagedFileError) as failure:
        _run(tmp_path, resume=True)
    text = str(failure.value)
    assert "\n" not in text and failure.value.__cause__ is None
    assert text.startswith(f"experiment state {state_file} is truncated or corrupt (")
    assert isinstance(failure.value, ValueError)
    with pytest.raises(DamagedFileError, match="experiment state .* is truncated or corrupt"):
        tune.Tuner.restore(experiment, trainable=Steps)
    open(state_file, "wb").close()
    with pytest.raises(DamagedFileError, match=r"is empty \(0 bytes\)"):
        tune.Tuner.restore(experiment, trainable=Steps)


def test_damaged_searcher_state_and_json_state_name_their_file(errored):
    from raylite.tune._experiment_state import load_json_state, restore_searcher
    tmp_path, _ = errored
    experiment = str(tmp_path / "results" / "damaged")
    searcher_file = os.path.join(experiment, "searcher_state.pkl")
    with open(searcher_file, "wb") as f:
        f.write(b"\x80\x05garbage")
    with pytest.raises(DamagedFileError, match="searcher state .*searcher_state.pkl is truncated"):
        restore_searcher(object(), experiment)
    json_file = os.path.join(experiment, "experiment_state.json")
    _cut(json_file)
    with pytest.raises(DamagedFileError, match="experiment_state.json is truncated or corrupt "
                                               r"\(JSONDecodeError"):
        load_json_state(experiment)


def _pickle_of_a_gone_class() -> bytes:
    import sys
    import types
    module = types.ModuleType("gone_module")

    class Gone:
        pass
    Gone.__module__, Gone.__qualname__ = "gone_module", "Gone"
    module.Gone = Gone
    sys.modules["gone_module"] = module
    try:
        return pickle.dumps({"model": Gone()})
    finally:
        del sys.modules["gone_module"]


def test_train_checkpoint_of_a_damaged_file_names_it(tmp_path):
    from raylite.train import Checkpoint
    folder = Checkpoint.from_dict({"epoch": 3}).to_directory(str(tmp_path / "checkpoint"))
    checkpoint_file = os.path.join(folder, "dict_checkpoint.pkl")
    _cut(checkpoint_file, 0.7)
    with pytest.raises(DamagedFileError) as failure:
        Checkpoint.from_directory(folder).to_dict()
    assert str(failure.value).startswith(f"checkpoint {checkpoint_file} is truncated or corrupt")
    with open(checkpoint_file, "wb") as f:  # a pickle of a class no longer importable
        f.write(_pickle_of_a_gone_class())
    with pytest.raises(DamagedFileError, match="needs code this process cannot import"):
        Checkpoint.from_directory(folder).to_dict()
