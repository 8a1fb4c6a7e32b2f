"""The book's programs and every library on a real Dask cluster: the two-worker cluster of
test_dask_backend (``raylite start --head`` + ``raylite start --address``, one per test session),
reached through ``raylite.init(address="dask://...")``. The libraries use only the public core
API, so each runs here unchanged; the budgets are tiny (a pipeline of 100 rows, 8 trials of one
report, one PPO iteration of 2 x 64 steps) so that the module stays quick on a 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

import test_book_ch3
from test_dask_backend import using_cluster
from _support import poll as _poll

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(request):
    yield from using_cluster(request)


@pytest.fixture(scope="module")
def ray(cluster):
    import raylite
    raylite.shutdown()
    raylite.init(address="dask://" + cluster[0].split("://")[1])
    yield raylite
    raylite.shutdown()


# ==========================================================================================
# the book
# ==========================================================================================
def test_book_chapter_2_script_as_written(cluster):
    """examples/ch02_core_api.py unchanged: its bare ``ray.init()`` joins the cluster named by
    RAYLITE_ADDRESS, and Example 2-10's tracker counts all 8 increments."""
    env = dict(os.environ, RAYLITE_ADDRESS="dask://" + cluster[0].split("://")[1])
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "ch02_core_api.py")],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    data = [repr(item) for item in enumerate(["Learning", "Ray", "Flexible", "Distributed",
                                               "Python", "for", "Data", "Science"])]
    runtimes = [float(m.group(1)) for m in map(re.compile(r"Runtime: (\d+\.\d+)").match, lines)
                if m]
    assert len(runtimes) == 1 + 1 + 4, lines  # Examples 2-3, 2-5 and four pairs in 2-7
    assert runtimes[0] >= 2.8 and runtimes[1] < runtimes[0]  # tasks beat the serial loop
    assert all(line in lines for line in data)
    assert "((2, 'Flexible'), (3, 'Distributed'))" in lines  # Example 2-8
    assert lines[-1] == "8"  # Example 2-10


def test_book_chapter_3_distributed_q_learning(ray):
    """Examples 3-13 to 3-15: actors roll out, a task merges nested experience refs."""
    maze = test_book_ch3.load_maze()
    maze.env_ref = ray.put(maze.Environment())
    policy = maze.train_policy_parallel(num_episodes=20)
    assert isinstance(policy, maze.Policy)
    route = test_book_ch3.greedy_route(maze, policy)
    assert route[-1] == test_book_ch3.GOAL and len(route) <= test_book_ch3.OPTIMUM + 2


# ==========================================================================================
# the libraries
# ==========================================================================================
def test_data_pipeline(ray):
    pytest.importorskip("pyarrow")
    from raylite import data

    def square(batch):
        return {"x": batch["x"], "square": batch["x"] ** 2}

    ds = (data.from_items([{"x": i} for i in range(100)], parallelism=4)
          .map_batches(square, batch_size=10, batch_format="numpy")
          .filter(lambda row: row["square"] % 2 == 0))
    assert ds.count() == 50
    assert [row["square"] for row in ds.take(3)] == [0, 4, 16]
    assert data.range(1000, parallelism=4).map(lambda x: x * 2).filter(
        lambda x: x % 3 == 0).count() == 334


def test_memory_uris_are_refused_on_a_cluster(ray):
    """memory:// is a folder in one machine's /dev/shm; a Dask cluster's workers are elsewhere."""
    pytest.importorskip("pyarrow")
    from raylite import data
    with pytest.raises(ValueError, match="memory://out.*Dask cluster.*other machines"):
        data.from_items([{"x": 1}]).write_parquet("memory://out")


def trivial_trainable(config):
    from raylite import tune
    tune.report(score=config["x"] * 10)


def test_tune_eight_trials(ray, tmp_path):
    from raylite import tune
    analysis = tune.run(trivial_trainable, config={"x": tune.uniform(0, 1)}, num_samples=8,
                        storage_path=str(tmp_path), verbose=0)
    assert len(analysis.trials) == 8
    assert {trial.status for trial in analysis.trials} == {"TERMINATED"}
    best = analysis.get_best_trial("score", "max")
    assert best.last_result["score"] == max(t.last_result["score"] for t in analysis.trials)


def report_rank():
    import torch.distributed as dist

    from raylite import train
    return train.world_rank(), train.world_size(), dist.get_world_size(), os.getpid()


def test_train_two_torch_workers(ray, tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    from raylite.train import Trainer
    trainer = Trainer(backend="torch", num_workers=2, logdir=str(tmp_path))
    trainer.start()
    try:
        results = trainer.run(report_rank)
    finally:
        trainer.shutdown()
    assert [r[:3] for r in results] == [(0, 2, 2), (1, 2, 2)]  # gloo over loopback
    assert results[0][3] != results[1][3] != os.getpid()


def test_ppo_iteration_with_two_rollout_workers(ray):
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("gymnasium") is None:
        pytest.skip("needs torch and gymnasium")
    from raylite.rllib.algorithms.ppo import PPOConfig
    config = (PPOConfig().environment("CartPole-v1")
              .env_runners(num_env_runners=2, rollout_fragment_length=32)
              .training(minibatch_size=32, train_batch_size=64, num_epochs=1,
                        model={"fcnet_hiddens": [8]}))
    algo = config.build()
    try:
        result = algo.train()
        assert result["timesteps_total"] == 64
        assert len(algo.workers.remote) == 2
    finally:
        algo.stop()


def test_serve_deployment_answers_http(ray):
    requests = pytest.importorskip("requests")
    pytest.importorskip("uvicorn")
    from raylite import serve
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve.start(detached=False, http_options={"port": port})
    try:
        @serve.deployment(route_prefix="/hello")
        class Greeter:
            def __call__(self, request):
                return {"hello": request.query_params.get("name", "world"), "pid": os.getpid()}

        Greeter.deploy()
        url = f"http://127.0.0.1:{port}/hello?name=dask"

        def answered():
            try:
                return requests.get(url, timeout=5)
            except requests.ConnectionError:
                return None
        response = _poll(answered, "the Serve proxy to answer")
        assert response.status_code == 200, response.text
        assert response.json()["hello"] == "dask" and response.json()["pid"] != os.getpid()
    finally:
        serve.shutdown()
