"""Chapter 3 of *Learning Ray*: the maze, serial Q-learning, and its distributed trainer.

examples/ch03_maze.py holds the book's Examples 3-1 to 3-15. It is loaded here as a module
that is not registered in ``sys.modules`` (like a notebook's ``__main__``), so its functions
and classes travel to workers by value and Example 3-13's global ``env_ref`` is read from the
module at call time, as in the book. Greedy evaluation (``explore=False``) is deterministic
given a policy, so ``greedy_route`` checks that a policy reaches the goal before the book's
``evaluate_policy`` (which would loop forever on a policy that never gets there) runs.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
from pathlib import Path

import pytest

import raylite

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "ch03_maze.py"
GOAL = 24  # observation of (4, 4)
OPTIMUM = 8  # four steps down, four steps right
ACTOR_LINE = re.compile(r"\(SimulationActor pid=(\d+)\) ((?:\|[ SG]){5}\|)")


def load_maze():
    spec = importlib.util.spec_from_file_location("learning_ray_ch3", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def greedy_route(maze, policy, max_steps: int = 50) -> list[int]:
    """Observations the exploiting policy visits from the start, stopping after max_steps."""
    env = maze.Environment()
    state, route = env.reset(), []
    while not env.is_done() and len(route) < max_steps:
        state, _, _, _ = env.step(policy.get_action(state, explore=False))
        route.append(state)
    return route


def evaluate(maze, policy, capfd, num_episodes: int = 2) -> float:
    """Run the book's evaluate_policy and read the average from the line it prints."""
    route = greedy_route(maze, policy)
    assert route and route[-1] == GOAL, f"the trained policy never reaches the goal: {route}"
    capfd.readouterr()
    maze.evaluate_policy(maze.Environment(), policy, num_episodes=num_episodes)
    printed = capfd.readouterr().out
    match = re.search(rf"(\d+\.\d+) steps on average for a total of {num_episodes} episodes\.",
                      printed)
    assert match, printed[-500:]
    return float(match.group(1))


@pytest.fixture(scope="module")
def maze():
    return load_maze()


@pytest.fixture(scope="module")
def ray():
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


@pytest.fixture(scope="module")
def distributed_maze(ray, maze):
    """Example 3-13's setup: the environment in the object store as the global ``env_ref``."""
    maze.environment = maze.Environment()
    maze.env_ref = ray.put(maze.environment)
    return maze


@pytest.fixture(scope="module")
def parallel_policy(distributed_maze):
    """Example 3-15 with 20 episodes instead of 1000 (it converges within 10 or so)."""
    return distributed_maze.train_policy_parallel(num_episodes=20)


def test_discrete_samples_every_action_and_nothing_else(maze):
    space = maze.Discrete(4)
    assert space.n == 4
    random.seed(0)
    assert {space.sample() for _ in range(200)} == {0, 1, 2, 3}


def test_environment_api(maze):
    env = maze.Environment()
    assert (env.action_space.n, env.observation_space.n) == (4, 25)
    assert env.reset() == 0 and not env.is_done() and env.get_reward() == 0
    assert env.step(2) == (0, 0, False, {"seeker": (0, 0), "goal": (4, 4)})  # up: a wall
    assert env.step(1)[0] == 0  # left: a wall
    assert env.step(0)[0] == 5  # down one row
    assert env.step(3)[0] == 6  # right one column
    for action in (0, 0, 0, 3, 3):
        assert env.step(action)[1:3] == (0, False)
    assert env.step(3)[:3] == (GOAL, 1, True)
    assert env.reset() == 0 and not env.is_done()
    with pytest.raises(ValueError, match="Invalid action"):
        env.step(4)


def test_environment_render_draws_seeker_and_goal(maze, capfd):
    env = maze.Environment()
    env.reset()
    env.step(3)
    env.render()
    rows = re.findall(r"(?:\|[ SG]){5}\|", capfd.readouterr().out)
    assert rows == ["| |S| | | |"] + ["| | | | | |"] * 3 + ["| | | | |G|"]


def test_simulation_rollout_of_an_untrained_policy(maze):
    """Example 3-9 without rendering: a random walk ends at the goal, the table stays zero."""
    random.seed(1)
    env = maze.Environment()
    untrained_policy = maze.Policy(env)
    experiences = maze.Simulation(env).rollout(untrained_policy, epsilon=1.0)
    assert experiences[-1][2:] == [1, GOAL]
    assert all(reward == 0 for _, _, reward, _ in experiences[:-1])
    assert all(previous[3] == current[0] for previous, current in zip(experiences, experiences[1:]))
    assert untrained_policy.state_action_table == [[0] * 4 for _ in range(25)]


def test_serial_training_finds_the_optimal_route(maze, capfd):
    """Examples 3-11 and 3-12: the book's '8.0 steps on average', with fewer episodes."""
    random.seed(2)
    trained_policy = maze.train_policy(maze.Environment(), num_episodes=300)
    assert len(greedy_route(maze, trained_policy)) == OPTIMUM
    assert evaluate(maze, trained_policy, capfd) == 8.0


def test_create_policy_task_reads_the_global_env_ref(ray, distributed_maze):
    policy = ray.get(distributed_maze.create_policy.remote())
    assert isinstance(policy, distributed_maze.Policy)
    assert policy.state_action_table == [[0] * 4 for _ in range(25)]


def test_update_policy_task_gets_nested_experience_refs(ray, distributed_maze):
    """Example 3-14: the policy arrives as a value, the experiences list holds refs."""
    maze = distributed_maze
    policy = maze.Policy(maze.environment)
    experiences = [ray.put([[23, 3, 1, GOAL]]), ray.put([[22, 3, 0, 23]])]
    updated = ray.get(maze.update_policy_task.remote(policy, experiences))
    assert updated.state_action_table[23][3] == pytest.approx(0.1)
    assert updated.state_action_table[22][3] == pytest.approx(0.1 * 0.9 * 0.1)


def test_distributed_training_finds_a_near_optimal_route(distributed_maze, parallel_policy,
                                                         capfd):
    """Example 3-15: the parallel trainer does as well as the serial one."""
    assert isinstance(parallel_policy, distributed_maze.Policy)
    assert len(greedy_route(distributed_maze, parallel_policy)) <= OPTIMUM + 2
    assert evaluate(distributed_maze, parallel_policy, capfd) <= OPTIMUM + 2


def test_render_inside_an_actor_reaches_the_driver_with_its_prefix(ray, distributed_maze,
                                                                  parallel_policy, capfd):
    route = greedy_route(distributed_maze, parallel_policy)
    assert route[-1] == GOAL
    sim = distributed_maze.SimulationActor.remote()
    capfd.readouterr()
    experiences = ray.get(sim.rollout.remote(parallel_policy, render=True, explore=False))
    # A second call to the same actor: its reply comes after the first call's output, which the
    # driver has forwarded by the time it reads that reply.
    ray.get(sim.rollout.remote(parallel_policy, explore=False))
    rows = ACTOR_LINE.findall(capfd.readouterr().out)
    assert len(experiences) == len(route)
    assert len(rows) == 5 * len(route), "one 5-row grid per step, each row prefixed"
    pids = {int(pid) for pid, _ in rows}
    assert len(pids) == 1 and os.getpid() not in pids  # printed by the actor's process
    assert rows[4][1] == "| | | | |G|"  # the goal, drawn after the first step
    assert rows[-1][1] == "| | | | |S|"  # the seeker on the goal after the last step
